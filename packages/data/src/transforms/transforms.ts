/**
 * PaddleSeg's transforms (paddleseg/transforms/transforms.py, 2.8 semantics) over our `Sample`.
 *
 * Random draws map one-to-one onto PaddleSeg's calls (`random.random()` → `next()`,
 * `np.random.randint(n)` → `int(0, n-1)`, `np.random.uniform` → `uniform`) but all come from the
 * sample's own stream, so a sample is reproducible from (seed, epoch, index).
 * Geometric ops move the label only when `sample.transformLabel` is set (PaddleSeg's `gt_fields`).
 */

import type { TransformConfig } from '@segtrain/config';
import type { Sample, Transform, TransInfo } from '../types.js';
import { enhanceBrightness, enhanceColor, enhanceContrast, enhanceSharpness, shiftHue } from './color.js';
import {
  boxBlurU8,
  channelValues,
  cropImage,
  cropLabel,
  cropPaddedImage,
  flipHorizontal,
  flipLabelHorizontal,
  flipLabelVertical,
  flipVertical,
  gaussianBlurU8,
  medianBlurU8,
  normalPair,
  padImage,
  padLabel,
  rotationMatrix,
  toUint8,
  warpAffineImage,
  warpAffineLabel,
} from './image-ops.js';
import { linspace, randBelow, roundHalfEven, shuffle } from './pymath.js';
import { type Interp, resizeImage, resizeLabelNearest } from './resize.js';

type Cfg<T extends TransformConfig['type']> = Extract<TransformConfig, { type: T }>;

/** `[w, h]` from PaddleSeg's `int | [w, h]` size. */
function sizeWH(size: number | readonly [number, number]): [number, number] {
  return typeof size === 'number' ? [size, size] : [size[0], size[1]];
}

function movesLabel(s: Sample): s is Sample & { label: Uint8Array } {
  return s.transformLabel && s.label !== null;
}

function withInfo(s: Sample, info: TransInfo): TransInfo[] {
  return [...s.transInfo, info];
}

/** Resizes image (with `interp`) and, in train, the label (nearest) to `h × w`. */
function resizeSample(s: Sample, h: number, w: number, interp: Interp): Sample {
  const img = resizeImage(s.img, s.height, s.width, s.channels, h, w, interp);
  if (!movesLabel(s)) return { ...s, img, height: h, width: w };
  const label = resizeLabelNearest(s.label, s.labelHeight, s.labelWidth, h, w);
  return { ...s, img, height: h, width: w, label, labelHeight: h, labelWidth: w };
}

/** `functional.resize_long` / `resize_short`: scale so that the long (short) side becomes `size`. */
function resizeSide(s: Sample, size: number, side: 'long' | 'short'): Sample {
  const ref = side === 'long' ? Math.max(s.height, s.width) : Math.min(s.height, s.width);
  const scale = size / ref;
  const w = Math.max(1, roundHalfEven(s.width * scale));
  const h = Math.max(1, roundHalfEven(s.height * scale));
  return resizeSample(s, h, w, 'LINEAR');
}

/** Pads bottom/right to `th × tw` (image with `imPad` per channel, label with `labelPad`). */
function padSample(s: Sample, th: number, tw: number, imPad: Float32Array, labelPad: number): Sample {
  const img = padImage(s.img, s.height, s.width, s.channels, th, tw, imPad);
  if (!movesLabel(s)) return { ...s, img, height: th, width: tw };
  const label = padLabel(s.label, s.labelHeight, s.labelWidth, th, tw, labelPad);
  return { ...s, img, height: th, width: tw, label, labelHeight: th, labelWidth: tw };
}

function cropSample(s: Sample, y0: number, x0: number, ch: number, cw: number): Sample {
  const img = cropImage(s.img, s.width, s.channels, y0, x0, ch, cw);
  if (!movesLabel(s)) return { ...s, img, height: ch, width: cw };
  const label = cropLabel(s.label, s.labelWidth, y0, x0, ch, cw);
  return { ...s, img, height: ch, width: cw, label, labelHeight: ch, labelWidth: cw };
}

function u8ToFloat(u8: Uint8Array): Float32Array {
  return Float32Array.from(u8);
}

function resizeStepScaling(c: Cfg<'ResizeStepScaling'>): Transform {
  const { min_scale_factor: lo, max_scale_factor: hi, scale_step_size: step } = c;
  // int(...) truncates, as PaddleSeg computes the number of steps.
  const factors = lo !== hi && step !== 0 ? linspace(lo, hi, Math.trunc((hi - lo) / step + 1)) : [];
  return {
    type: c.type,
    apply(s, random) {
      let scale: number;
      if (lo === hi) scale = lo;
      else if (step === 0) scale = random.uniform(lo, hi);
      else scale = factors[random.int(0, factors.length - 1)] ?? lo;
      // Python round (ties to even); a zero size would make cv2.resize fail, so keep at least 1.
      const w = Math.max(1, roundHalfEven(scale * s.width));
      const h = Math.max(1, roundHalfEven(scale * s.height));
      return resizeSample(s, h, w, 'LINEAR');
    },
  };
}

/** Largest single-class share of a label window, ignoring `ignore`; `null` if < 2 classes remain. */
function maxClassShare(
  label: Uint8Array,
  w: number,
  y0: number,
  x0: number,
  ch: number,
  cw: number,
  ignore: number,
): number | null {
  const counts = new Int32Array(256);
  for (let y = 0; y < ch; y++) {
    const row = (y0 + y) * w + x0;
    for (let x = 0; x < cw; x++) {
      const v = label[row + x] ?? 0;
      counts[v] = (counts[v] ?? 0) + 1;
    }
  }
  let classes = 0;
  let max = 0;
  let total = 0;
  for (let v = 0; v < 256; v++) {
    const n = counts[v] ?? 0;
    if (n === 0 || v === ignore) continue;
    classes++;
    total += n;
    if (n > max) max = n;
  }
  return classes > 1 ? max / total : null;
}

function randomPaddingCrop(c: Cfg<'RandomPaddingCrop'>): Transform {
  const [cw, ch] = c.crop_size;
  return {
    type: c.type,
    apply(s, random) {
      if (s.height === ch && s.width === cw) return s;
      // Pad bottom/right up to the crop size, then crop. The image is padded virtually
      // (cropPaddedImage); the label, one byte per pixel, is padded for the class check.
      const ph = Math.max(ch, s.height);
      const pw = Math.max(cw, s.width);
      const label = movesLabel(s)
        ? ph !== s.labelHeight || pw !== s.labelWidth
          ? padLabel(s.label, s.labelHeight, s.labelWidth, ph, pw, c.label_padding_value)
          : s.label
        : null;
      let hOff = random.int(0, ph - ch);
      let wOff = random.int(0, pw - cw);
      if (c.category_max_ratio < 1 && label !== null) {
        // Redraw crops dominated by one class; after loop_times failures the last redraw is kept
        // unchecked (PaddleSeg's loop). PaddleSeg 2.8 then assigns the label crop to the image on
        // success and skips the image crop on failure, a bug: we crop both with the same window.
        for (let i = 0; i < c.loop_times; i++) {
          const share = maxClassShare(label, pw, hOff, wOff, ch, cw, c.ignore_index);
          if (share !== null && share < c.category_max_ratio) break;
          hOff = random.int(0, ph - ch);
          wOff = random.int(0, pw - cw);
        }
      }
      const pad = channelValues(c.im_padding_value, s.channels);
      const img = cropPaddedImage(s.img, s.height, s.width, s.channels, hOff, wOff, ch, cw, pad);
      if (label === null) return { ...s, img, height: ch, width: cw };
      const cropped = cropLabel(label, pw, hOff, wOff, ch, cw);
      return { ...s, img, height: ch, width: cw, label: cropped, labelHeight: ch, labelWidth: cw };
    },
  };
}

function randomCenterCrop(c: Cfg<'RandomCenterCrop'>): Transform {
  const [rw, rh] = c.retain_ratio;
  return {
    type: c.type,
    apply(s, random) {
      if (rw === 1 && rh === 1) return s;
      // np.random.randint(W·(1−r)) with a float bound; PaddleSeg errors on an empty range, we use 0.
      const randw = randBelow(s.width * (1 - rw), random);
      const randh = randBelow(s.height * (1 - rh), random);
      const offw = randw === 0 ? 0 : random.int(0, randw - 1);
      const offh = randh === 0 ? 0 : random.int(0, randh - 1);
      return cropSample(s, offh, offw, s.height - randh, s.width - randw);
    },
  };
}

function randomFlip(c: Cfg<'RandomHorizontalFlip'> | Cfg<'RandomVerticalFlip'>): Transform {
  const horizontal = c.type === 'RandomHorizontalFlip';
  return {
    type: c.type,
    apply(s, random) {
      if (!(random.next() < c.prob)) return s;
      const img = horizontal
        ? flipHorizontal(s.img, s.height, s.width, s.channels)
        : flipVertical(s.img, s.height, s.width, s.channels);
      if (!movesLabel(s)) return { ...s, img };
      const label = horizontal
        ? flipLabelHorizontal(s.label, s.labelHeight, s.labelWidth)
        : flipLabelVertical(s.label, s.labelHeight, s.labelWidth);
      return { ...s, img, label };
    },
  };
}

type DistortOp = 'brightness' | 'contrast' | 'saturation' | 'hue' | 'sharpness';

function randomDistort(c: Cfg<'RandomDistort'>): Transform {
  const params: Record<DistortOp, { lo: number; hi: number; prob: number }> = {
    brightness: { lo: 1 - c.brightness_range, hi: 1 + c.brightness_range, prob: c.brightness_prob },
    contrast: { lo: 1 - c.contrast_range, hi: 1 + c.contrast_range, prob: c.contrast_prob },
    saturation: { lo: 1 - c.saturation_range, hi: 1 + c.saturation_range, prob: c.saturation_prob },
    hue: { lo: -c.hue_range, hi: c.hue_range, prob: c.hue_prob },
    sharpness: { lo: 1 - c.sharpness_range, hi: 1 + c.sharpness_range, prob: c.sharpness_prob },
  };
  return {
    type: c.type,
    apply(s, random) {
      // PaddleSeg's list order before random.shuffle; a grayscale (2-D) image has no hue op.
      const order: DistortOp[] = ['brightness', 'contrast', 'saturation', 'sharpness'];
      if (s.channels > 1) order.push('hue');
      const ops = shuffle(order, random);
      // `astype('uint8')` happens whether or not any op fires.
      let u8 = toUint8(s.img);
      for (const op of ops) {
        const p = params[op];
        if (!(random.next() < p.prob)) continue;
        const f = random.uniform(p.lo, p.hi);
        if (op === 'brightness') u8 = enhanceBrightness(u8, s.channels, f);
        else if (op === 'contrast') u8 = enhanceContrast(u8, s.channels, f);
        else if (op === 'saturation') u8 = enhanceColor(u8, s.channels, f);
        else if (op === 'hue') u8 = shiftHue(u8, s.channels, f);
        else u8 = enhanceSharpness(u8, s.height, s.width, s.channels, f);
      }
      return { ...s, img: u8ToFloat(u8) };
    },
  };
}

function randomRotation(c: Cfg<'RandomRotation'>): Transform {
  return {
    type: c.type,
    apply(s, random) {
      if (!(c.max_rotation > 0)) return s;
      const { height: h, width: w } = s;
      const angle = random.uniform(-c.max_rotation, c.max_rotation);
      const cx = Math.floor(w / 2);
      const cy = Math.floor(h / 2);
      const m = [...rotationMatrix(cx, cy, angle)] as [number, number, number, number, number, number];
      const cos = Math.abs(m[0]);
      const sin = Math.abs(m[1]);
      // Enlarge the canvas to hold the whole rotated image, centred (PaddleSeg's RandomRotation).
      const nw = Math.trunc(h * sin + w * cos);
      const nh = Math.trunc(h * cos + w * sin);
      m[2] += nw / 2 - cx;
      m[5] += nh / 2 - cy;
      const img = warpAffineImage(
        s.img,
        h,
        w,
        s.channels,
        m,
        nh,
        nw,
        channelValues(c.im_padding_value, s.channels),
      );
      if (!movesLabel(s)) return { ...s, img, height: nh, width: nw };
      const label = warpAffineLabel(s.label, s.labelHeight, s.labelWidth, m, nh, nw, c.label_padding_value);
      return { ...s, img, height: nh, width: nw, label, labelHeight: nh, labelWidth: nw };
    },
  };
}

function randomBlur(c: Cfg<'RandomBlur'>): Transform {
  // PaddleSeg fires with probability 1/int(1/prob), not exactly prob.
  const n = c.prob <= 0 ? 0 : c.prob >= 1 ? 1 : Math.trunc(1 / c.prob);
  return {
    type: c.type,
    apply(s, random) {
      if (n === 0 || random.int(0, n - 1) !== 0) return s;
      let k = random.int(3, 9);
      if (k % 2 !== 1) k += 1;
      if (k > 9) k = 9;
      const u8 = toUint8(s.img);
      let kind: 'gaussian' | 'median' | 'blur' = c.blur_type === 'random' ? 'gaussian' : c.blur_type;
      if (c.blur_type === 'random') {
        const sel = random.next();
        kind = sel < 0.3 ? 'gaussian' : sel < 0.6 ? 'median' : 'blur';
      }
      const { height: h, width: w, channels: ch } = s;
      const out =
        kind === 'gaussian'
          ? gaussianBlurU8(u8, h, w, ch, k)
          : kind === 'median'
            ? medianBlurU8(u8, h, w, ch, k)
            : boxBlurU8(u8, h, w, ch, k);
      return { ...s, img: u8ToFloat(out) };
    },
  };
}

function randomNoise(c: Cfg<'RandomNoise'>): Transform {
  return {
    type: c.type,
    apply(s, random) {
      if (!(random.next() < c.prob)) return s;
      const sigma = random.next() * c.max_sigma;
      const img = new Float32Array(s.img.length);
      const next = (): number => random.next();
      for (let i = 0; i < img.length; i += 2) {
        const [z0, z1] = normalPair(next);
        const a = (s.img[i] ?? 0) + sigma * z0;
        img[i] = Math.min(Math.max(a, 0), 255);
        if (i + 1 < img.length) {
          const b = (s.img[i + 1] ?? 0) + sigma * z1;
          img[i + 1] = Math.min(Math.max(b, 0), 255);
        }
      }
      return { ...s, img };
    },
  };
}

function randomScaleAspect(c: Cfg<'RandomScaleAspect'>): Transform {
  return {
    type: c.type,
    apply(s, random) {
      if (c.min_scale === 0 || c.aspect_ratio === 0) return s;
      const { height: H, width: W } = s;
      for (let i = 0; i < 10; i++) {
        const target = H * W * random.uniform(c.min_scale, 1);
        const ar = random.uniform(c.aspect_ratio, 1 / c.aspect_ratio);
        let dw = Math.trunc(Math.sqrt(target * ar));
        let dh = Math.trunc(Math.sqrt(target / ar));
        if (random.int(0, 9) < 5) [dw, dh] = [dh, dw];
        // dh, dw > 0 as well: an empty crop would make cv2.resize fail.
        if (dh < H && dw < W && dh > 0 && dw > 0) {
          const h1 = random.int(0, H - dh - 1);
          const w1 = random.int(0, W - dw - 1);
          return resizeSample(cropSample(s, h1, w1, dh, dw), H, W, 'LINEAR');
        }
      }
      return s;
    },
  };
}

function normalize(c: Cfg<'Normalize'>): Transform {
  const { mean, std } = c;
  return {
    type: c.type,
    apply(s) {
      const ch = s.channels;
      for (const [name, v] of [
        ['mean', mean],
        ['std', std],
      ] as const) {
        if (v.length !== 1 && v.length !== ch) {
          throw new Error(`Normalize: ${name} has ${v.length} values but the image has ${ch} channels`);
        }
      }
      const m = channelValues(mean, ch);
      const sd = channelValues(std, ch);
      const img = new Float32Array(s.img.length);
      for (let i = 0; i < img.length; i += ch) {
        for (let k = 0; k < ch; k++) {
          img[i + k] = ((s.img[i + k] ?? 0) / 255 - (m[k] ?? 0)) / (sd[k] ?? 1);
        }
      }
      return { ...s, img };
    },
  };
}

const RANDOM_INTERPS: readonly Interp[] = ['NEAREST', 'LINEAR', 'CUBIC', 'AREA', 'LANCZOS4'];

function resize(c: Cfg<'Resize'>): Transform {
  const [tw, th] = sizeWH(c.target_size);
  return {
    type: c.type,
    apply(s, random) {
      const interp = c.interp === 'RANDOM' ? (RANDOM_INTERPS[random.int(0, 4)] ?? 'LINEAR') : c.interp;
      let w = tw;
      let h = th;
      if (c.keep_ratio) {
        // functional.rescale_size: the largest scale that fits the image inside the target box.
        const scale = Math.min(
          Math.max(tw, th) / Math.max(s.width, s.height),
          Math.min(tw, th) / Math.min(s.width, s.height),
        );
        w = Math.max(1, roundHalfEven(s.width * scale));
        h = Math.max(1, roundHalfEven(s.height * scale));
      }
      if (c.size_divisor !== null) {
        w = Math.ceil(w / c.size_divisor) * c.size_divisor;
        h = Math.ceil(h / c.size_divisor) * c.size_divisor;
      }
      const info: TransInfo = { op: 'resize', height: s.height, width: s.width };
      return { ...resizeSample(s, h, w, interp), transInfo: withInfo(s, info) };
    },
  };
}

function resizeByShort(c: Cfg<'ResizeByShort'>): Transform {
  return {
    type: c.type,
    apply(s) {
      const info: TransInfo = { op: 'resize', height: s.height, width: s.width };
      return { ...resizeSide(s, c.short_size, 'short'), transInfo: withInfo(s, info) };
    },
  };
}

function resizeByLong(c: Cfg<'ResizeByLong'>): Transform {
  return {
    type: c.type,
    apply(s) {
      const info: TransInfo = { op: 'resize', height: s.height, width: s.width };
      return { ...resizeSide(s, c.long_size, 'long'), transInfo: withInfo(s, info) };
    },
  };
}

function limitLong(c: Cfg<'LimitLong'>): Transform {
  if (c.max_long !== null && c.min_long !== null && c.min_long > c.max_long) {
    throw new Error(`LimitLong: max_long (${c.max_long}) must not be smaller than min_long (${c.min_long})`);
  }
  return {
    type: c.type,
    apply(s) {
      // Recorded even when nothing changes, as PaddleSeg does.
      const transInfo = withInfo(s, { op: 'resize', height: s.height, width: s.width });
      const long = Math.max(s.height, s.width);
      let target = long;
      if (c.max_long !== null && long > c.max_long) target = c.max_long;
      else if (c.min_long !== null && long < c.min_long) target = c.min_long;
      const out = target !== long ? resizeSide(s, target, 'long') : s;
      return { ...out, transInfo };
    },
  };
}

function resizeRangeScaling(c: Cfg<'ResizeRangeScaling'>): Transform {
  if (c.min_value > c.max_value) {
    throw new Error(
      `ResizeRangeScaling: min_value (${c.min_value}) must not exceed max_value (${c.max_value})`,
    );
  }
  return {
    type: c.type,
    apply(s, random) {
      const size =
        c.min_value === c.max_value
          ? c.max_value
          : Math.trunc(random.uniform(c.min_value, c.max_value) + 0.5);
      return resizeSide(s, size, 'long');
    },
  };
}

function paddingTo(
  s: Sample,
  tw: number,
  th: number,
  imPad: number | readonly number[],
  labelPad: number,
): Sample {
  if (th < s.height || tw < s.width) {
    throw new Error(
      `Padding: the size of image should be less than \`target_size\`, but the size of image (${s.width}, ${s.height}) is larger than \`target_size\` (${tw}, ${th}) (sizes are width, height)`,
    );
  }
  const transInfo = withInfo(s, { op: 'padding', height: s.height, width: s.width });
  return { ...padSample(s, th, tw, channelValues(imPad, s.channels), labelPad), transInfo };
}

function padding(c: Cfg<'Padding'>): Transform {
  const [tw, th] = sizeWH(c.target_size);
  return {
    type: c.type,
    apply: (s) => paddingTo(s, tw, th, c.im_padding_value, c.label_padding_value),
  };
}

function paddingByAspectRatio(c: Cfg<'PaddingByAspectRatio'>): Transform {
  return {
    type: c.type,
    apply(s) {
      let h = s.height;
      let w = s.width;
      const ratio = w / h;
      if (ratio === c.aspect_ratio) return s;
      if (ratio > c.aspect_ratio) h = Math.trunc(w / c.aspect_ratio);
      else w = Math.trunc(h * c.aspect_ratio);
      return paddingTo(s, w, h, c.im_padding_value, c.label_padding_value);
    },
  };
}

function scalePadding(c: Cfg<'ScalePadding'>): Transform {
  const [tw, th] = sizeWH(c.target_size);
  return {
    type: c.type,
    apply(s) {
      const { height: h, width: w, channels: ch } = s;
      const side = Math.max(h, w);
      // Centre the image on a square canvas along its short side.
      const top = h > w ? 0 : Math.trunc((w - h) / 2);
      const left = h > w ? Math.trunc((h - w) / 2) : 0;
      const sq = new Float32Array(side * side * ch);
      const pad = channelValues(c.im_padding_value, ch);
      for (let i = 0; i < side * side; i++) sq.set(pad, i * ch);
      for (let y = 0; y < h; y++)
        sq.set(s.img.subarray(y * w * ch, (y + 1) * w * ch), ((y + top) * side + left) * ch);
      // np.uint8(...) truncates; cv2.resize of a uint8 image rounds and saturates.
      const canvas = u8ToFloat(toUint8(sq));
      const resized = resizeImage(canvas, side, side, ch, th, tw, 'CUBIC');
      const img = new Float32Array(resized.length);
      for (let i = 0; i < img.length; i++) {
        const v = Math.round(resized[i] ?? 0);
        img[i] = Math.min(Math.max(v, 0), 255);
      }
      if (!movesLabel(s)) return { ...s, img, height: th, width: tw };
      const lsq = new Uint8Array(side * side).fill(c.label_padding_value);
      for (let y = 0; y < h; y++) lsq.set(s.label.subarray(y * w, (y + 1) * w), (y + top) * side + left);
      // PaddleSeg resizes the label with INTER_CUBIC, which invents class ids at boundaries; nearest keeps ids valid.
      const label = resizeLabelNearest(lsq, side, side, th, tw);
      return { ...s, img, height: th, width: tw, label, labelHeight: th, labelWidth: tw };
    },
  };
}

/** Builds one transform from its resolved config. */
export function buildTransform(c: TransformConfig): Transform {
  switch (c.type) {
    case 'ResizeStepScaling':
      return resizeStepScaling(c);
    case 'RandomPaddingCrop':
      return randomPaddingCrop(c);
    case 'RandomCenterCrop':
      return randomCenterCrop(c);
    case 'RandomHorizontalFlip':
    case 'RandomVerticalFlip':
      return randomFlip(c);
    case 'RandomDistort':
      return randomDistort(c);
    case 'RandomRotation':
      return randomRotation(c);
    case 'RandomBlur':
      return randomBlur(c);
    case 'RandomNoise':
      return randomNoise(c);
    case 'RandomScaleAspect':
      return randomScaleAspect(c);
    case 'Normalize':
      return normalize(c);
    case 'Resize':
      return resize(c);
    case 'ResizeByShort':
      return resizeByShort(c);
    case 'ResizeByLong':
      return resizeByLong(c);
    case 'LimitLong':
      return limitLong(c);
    case 'ResizeRangeScaling':
      return resizeRangeScaling(c);
    case 'Padding':
      return padding(c);
    case 'PaddingByAspectRatio':
      return paddingByAspectRatio(c);
    case 'ScalePadding':
      return scalePadding(c);
    default: {
      const unknown: never = c;
      throw new Error(`unknown transform type ${(unknown as { type: string }).type}`);
    }
  }
}
