/**
 * Inference as PaddleSeg's `infer.py` does it (spec c.3): whole image, sliding windows, and
 * multi-scale / flip augmentation, then the recorded trans_info undone on the logits.
 * Windows and augmentations are accumulated on the host (they are few and small); everything
 * else stays on the GPU.
 */
import type { Batch, TransInfo } from '@segtrain/data';
import type { SegModel } from '@segtrain/models';
import {
  argmax,
  type Device,
  noGrad,
  resizeBilinear,
  slice,
  softmax,
  type Tensor,
  tensor,
  tidy,
} from '@segtrain/tensor';

export interface InferenceOptions {
  /** Sliding-window inference with `cropSize` windows every `stride` (both [w, h]). */
  readonly isSlide?: boolean;
  readonly cropSize?: readonly [number, number] | null;
  readonly stride?: readonly [number, number] | null;
  /** Multi-scale / flip augmentation (`aug_eval`). */
  readonly aug?: boolean;
  readonly scales?: number | readonly number[];
  readonly flipHorizontal?: boolean;
  readonly flipVertical?: boolean;
}

/** A host image: NCHW float32 with N = 1. */
export interface HostImage {
  readonly data: Float32Array;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

/** Host logits, C×H×W float32. */
export interface HostLogits {
  readonly data: Float32Array;
  readonly classes: number;
  readonly height: number;
  readonly width: number;
}

/** The model's main output (logits at the input size, PaddleSeg models resize to the input). */
function mainLogits(model: SegModel, x: Tensor): Tensor {
  return noGrad(() =>
    tidy(() => {
      const out = model.forward(x)[0];
      if (!out) throw new Error('the model returned no logits');
      return out;
    }).keep(),
  );
}

async function readAndDispose(t: Tensor): Promise<HostLogits> {
  const [, classes = 0, height = 0, width = 0] = t.shape;
  try {
    return { data: (await t.data()) as Float32Array, classes, height, width };
  } finally {
    t.dispose();
  }
}

/**
 * Window origins along one axis (PaddleSeg slide_inference): `ceil((size − crop)/stride) + 1`
 * windows, the last shifted back to end at the border; one window when the image fits.
 */
export function windowStarts(size: number, crop: number, stride: number): number[] {
  const count = size <= crop ? 1 : Math.ceil((size - crop) / stride) + 1;
  const starts: number[] = [];
  for (let i = 0; i < count; i++) {
    const end = Math.min(i * stride + crop, size);
    starts.push(Math.max(end - crop, 0));
  }
  return starts;
}

/** Logits of `x` (1×C×H×W on the GPU) by whole-image or sliding-window inference. */
async function inferOnce(model: SegModel, x: Tensor, o: InferenceOptions): Promise<HostLogits> {
  if (!o.isSlide) return readAndDispose(mainLogits(model, x));
  const [cropW, cropH] = o.cropSize ?? [];
  const [strideW, strideH] = o.stride ?? [];
  if (!cropW || !cropH || !strideW || !strideH)
    throw new Error('sliding-window inference needs crop_size and stride ([w, h])');
  const [, , height = 0, width = 0] = x.shape;
  let sum: Float32Array | null = null;
  let classes = 0;
  const count = new Uint16Array(height * width);
  for (const y0 of windowStarts(height, cropH, strideH)) {
    for (const x0 of windowStarts(width, cropW, strideW)) {
      const h = Math.min(cropH, height - y0);
      const w = Math.min(cropW, width - x0);
      const crop = noGrad(() => tidy(() => slice(slice(x, 2, y0, h), 3, x0, w)).keep());
      const window = await readAndDispose(mainLogits(model, crop));
      crop.dispose();
      classes = window.classes;
      sum ??= new Float32Array(classes * height * width);
      for (let c = 0; c < classes; c++)
        for (let yy = 0; yy < h; yy++) {
          const src = (c * h + yy) * w;
          const dst = (c * height + y0 + yy) * width + x0;
          for (let xx = 0; xx < w; xx++) (sum[dst + xx] as number) += window.data[src + xx] as number;
        }
      for (let yy = 0; yy < h; yy++)
        for (let xx = 0; xx < w; xx++) (count[(y0 + yy) * width + x0 + xx] as number)++;
    }
  }
  if (!sum) throw new Error('sliding-window inference produced no windows');
  const plane = height * width;
  for (let i = 0; i < plane; i++) {
    const n = count[i] as number;
    if (n === 0)
      throw new Error('sliding-window inference left a pixel uncovered (check crop_size and stride)');
    for (let c = 0; c < classes; c++) (sum[c * plane + i] as number) /= n;
  }
  return { data: sum, classes, height, width };
}

/** Mirrors an NCHW (N = 1) or CHW host array left-right and/or top-bottom. */
export function flipHost(
  data: Float32Array,
  channels: number,
  height: number,
  width: number,
  horizontal: boolean,
  vertical: boolean,
): Float32Array {
  if (!horizontal && !vertical) return data;
  const out = new Float32Array(data.length);
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < height; y++) {
      const sy = vertical ? height - 1 - y : y;
      for (let x = 0; x < width; x++) {
        const sx = horizontal ? width - 1 - x : x;
        out[(c * height + y) * width + x] = data[(c * height + sy) * width + sx] as number;
      }
    }
  return out;
}

/** The flip combinations of aug_inference: none, H, then V and HV when flip_vertical. */
function flipCombos(o: InferenceOptions): [boolean, boolean][] {
  const combos: [boolean, boolean][] = [[false, false]];
  if (o.flipHorizontal) combos.push([true, false]);
  if (o.flipVertical) {
    combos.push([false, true]);
    if (o.flipHorizontal) combos.push([true, true]);
  }
  return combos;
}

/**
 * Logits of one image at its (transformed) input size. With `aug`, softmax probabilities are
 * averaged over scales × flips as PaddleSeg's aug_inference does (it sums them; the argmax is the
 * same). Unlike PaddleSeg, every scale resizes the original input (PaddleSeg resizes the previous
 * scale's image again, a quirk that blurs later scales).
 */
export async function inferImage(
  device: Device,
  model: SegModel,
  image: HostImage,
  o: InferenceOptions = {},
): Promise<HostLogits> {
  const { channels, height, width } = image;
  if (!o.aug) {
    const x = tensor(device, image.data, [1, channels, height, width]);
    try {
      return await inferOnce(model, x, o);
    } finally {
      x.dispose();
    }
  }
  const scales = typeof o.scales === 'number' ? [o.scales] : (o.scales ?? [1]);
  const combos = flipCombos(o);
  let acc: Float32Array | null = null;
  let classes = 0;
  for (const s of scales) {
    const h = Math.floor(height * s + 0.5);
    const w = Math.floor(width * s + 0.5);
    for (const [fh, fv] of combos) {
      const flipped = flipHost(image.data, channels, height, width, fh, fv);
      const x = tensor(device, flipped, [1, channels, height, width]);
      const scaled = s === 1 ? x : noGrad(() => tidy(() => resizeBilinear(x, [h, w])).keep());
      let logits: HostLogits;
      try {
        logits = await inferOnce(model, scaled, o);
      } finally {
        if (scaled !== x) scaled.dispose();
        x.dispose();
      }
      classes = logits.classes;
      const back = tensor(device, logits.data, [1, classes, logits.height, logits.width]);
      const probs = await readAndDispose(
        noGrad(() => tidy(() => softmax(resizeBilinear(back, [height, width]), 1)).keep()),
      );
      back.dispose();
      const unflipped = flipHost(probs.data, classes, height, width, fh, fv);
      acc ??= new Float32Array(unflipped.length);
      for (let i = 0; i < acc.length; i++) (acc[i] as number) += unflipped[i] as number;
    }
  }
  if (!acc) throw new Error('aug inference needs at least one scale');
  const n = scales.length * combos.length;
  for (let i = 0; i < acc.length; i++) (acc[i] as number) /= n;
  return { data: acc, classes, height, width };
}

/**
 * Undoes the recorded transforms on the logits (last first): a resize is undone by a bilinear
 * resize back, a padding by a crop (PaddleSeg reverse_transform), then argmax over classes.
 * Returns the class index per pixel at the original image size.
 */
export async function predictLabels(
  device: Device,
  logits: HostLogits,
  transInfo: readonly TransInfo[],
): Promise<{ pred: Int32Array; height: number; width: number }> {
  const x = tensor(device, logits.data, [1, logits.classes, logits.height, logits.width]);
  const result = noGrad(() =>
    tidy(() => {
      let t = x;
      for (const info of [...transInfo].reverse()) {
        if (info.op === 'resize') t = resizeBilinear(t, [info.height, info.width]);
        else t = slice(slice(t, 2, 0, info.height), 3, 0, info.width);
      }
      return argmax(t, 1);
    }).keep(),
  );
  x.dispose();
  const [, height = 0, width = 0] = result.shape;
  const pred = (await result.data()) as Int32Array;
  result.dispose();
  return { pred, height, width };
}

/** Class per pixel of a collated one-image batch, at the image's size before its transforms. */
export async function predictBatch(
  device: Device,
  model: SegModel,
  batch: Batch,
  options: InferenceOptions,
): Promise<{ pred: Int32Array; height: number; width: number }> {
  const [, channels, height, width] = batch.shape;
  const logits = await inferImage(device, model, { data: batch.img, channels, height, width }, options);
  return predictLabels(device, logits, batch.transInfo[0] ?? []);
}
