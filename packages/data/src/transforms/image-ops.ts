/**
 * Geometric and filtering primitives on HWC float32 images (`h × w × c`) and H×W uint8 labels.
 * Every function returns new arrays and leaves its input untouched, so a loader may cache decoded
 * samples safely.
 */

/** Per-channel values from a scalar or list (a 1-element list broadcasts like numpy). */
export function channelValues(value: number | readonly number[], c: number): Float32Array {
  const out = new Float32Array(c);
  if (typeof value === 'number') {
    out.fill(value);
    return out;
  }
  if (value.length !== 1 && value.length !== c) {
    throw new Error(`padding value has ${value.length} entries but the image has ${c} channels`);
  }
  for (let i = 0; i < c; i++) out[i] = value[value.length === 1 ? 0 : i] ?? 0;
  return out;
}

export function flipHorizontal(img: Float32Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(img.length);
  for (let y = 0; y < h; y++) {
    const row = y * w * c;
    for (let x = 0; x < w; x++) {
      const s = row + x * c;
      const d = row + (w - 1 - x) * c;
      for (let ch = 0; ch < c; ch++) out[d + ch] = img[s + ch] ?? 0;
    }
  }
  return out;
}

export function flipVertical(img: Float32Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(img.length);
  const rowLen = w * c;
  for (let y = 0; y < h; y++) out.set(img.subarray(y * rowLen, (y + 1) * rowLen), (h - 1 - y) * rowLen);
  return out;
}

export function flipLabelHorizontal(label: Uint8Array, h: number, w: number): Uint8Array {
  const out = new Uint8Array(label.length);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) out[row + w - 1 - x] = label[row + x] ?? 0;
  }
  return out;
}

export function flipLabelVertical(label: Uint8Array, h: number, w: number): Uint8Array {
  const out = new Uint8Array(label.length);
  for (let y = 0; y < h; y++) out.set(label.subarray(y * w, (y + 1) * w), (h - 1 - y) * w);
  return out;
}

/** Pads bottom/right to `th × tw` with a constant per channel (`cv2.copyMakeBorder`, BORDER_CONSTANT). */
export function padImage(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  th: number,
  tw: number,
  value: Float32Array,
): Float32Array {
  const out = new Float32Array(th * tw * c);
  for (let i = 0; i < th * tw; i++) out.set(value, i * c);
  const rowLen = w * c;
  for (let y = 0; y < h; y++) out.set(img.subarray(y * rowLen, (y + 1) * rowLen), y * tw * c);
  return out;
}

export function padLabel(
  label: Uint8Array,
  h: number,
  w: number,
  th: number,
  tw: number,
  value: number,
): Uint8Array {
  const out = new Uint8Array(th * tw).fill(value);
  for (let y = 0; y < h; y++) out.set(label.subarray(y * w, (y + 1) * w), y * tw);
  return out;
}

/** Crops rows `[y0, y0+ch)` and columns `[x0, x0+cw)`; the window must lie inside the image. */
export function cropImage(
  img: Float32Array,
  w: number,
  c: number,
  y0: number,
  x0: number,
  ch: number,
  cw: number,
): Float32Array {
  const out = new Float32Array(ch * cw * c);
  const len = cw * c;
  for (let y = 0; y < ch; y++) {
    const s = ((y0 + y) * w + x0) * c;
    out.set(img.subarray(s, s + len), y * len);
  }
  return out;
}

/**
 * The `ch × cw` window at `(y0, x0)` of the image padded bottom/right with `value`: pad-then-crop
 * in one pass, without building the padded image.
 */
export function cropPaddedImage(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  y0: number,
  x0: number,
  ch: number,
  cw: number,
  value: Float32Array,
): Float32Array {
  const out = new Float32Array(ch * cw * c);
  const inW = Math.max(Math.min(w - x0, cw), 0);
  for (let y = 0; y < ch; y++) {
    const o = y * cw * c;
    const sy = y0 + y;
    let x = 0;
    if (sy < h && inW > 0) {
      const s = (sy * w + x0) * c;
      out.set(img.subarray(s, s + inW * c), o);
      x = inW;
    }
    for (; x < cw; x++) out.set(value, o + x * c);
  }
  return out;
}

export function cropLabel(
  label: Uint8Array,
  w: number,
  y0: number,
  x0: number,
  ch: number,
  cw: number,
): Uint8Array {
  const out = new Uint8Array(ch * cw);
  for (let y = 0; y < ch; y++) {
    const s = (y0 + y) * w + x0;
    out.set(label.subarray(s, s + cw), y * cw);
  }
  return out;
}

/** A 2×3 affine matrix `[a, b, c, d, e, f]`: dst = (a·x + b·y + c, d·x + e·y + f). */
export type Affine = readonly [number, number, number, number, number, number];

/** `cv2.getRotationMatrix2D(center, angleDeg, scale)`: positive angles rotate counter-clockwise. */
export function rotationMatrix(cx: number, cy: number, angleDeg: number, scale = 1): Affine {
  const rad = (angleDeg * Math.PI) / 180;
  const alpha = Math.cos(rad) * scale;
  const beta = Math.sin(rad) * scale;
  return [alpha, beta, (1 - alpha) * cx - beta * cy, -beta, alpha, beta * cx + (1 - alpha) * cy];
}

function invertAffine(m: Affine): Affine {
  const [a, b, c, d, e, f] = m;
  let det = a * e - b * d;
  det = det !== 0 ? 1 / det : 0;
  const ia = e * det;
  const ib = -b * det;
  const id = -d * det;
  const ie = a * det;
  return [ia, ib, -ia * c - ib * f, id, ie, -id * c - ie * f];
}

/**
 * `cv2.warpAffine(img, m, (dw, dh), INTER_LINEAR, BORDER_CONSTANT, value)`: each output pixel samples
 * the source at `m⁻¹·(x, y)`; taps outside the source read the border value. Like OpenCV, the
 * source position is quantised to 1/32 pixel.
 */
export function warpAffineImage(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  m: Affine,
  dh: number,
  dw: number,
  border: Float32Array,
): Float32Array {
  const [a, b, cc, d, e, f] = invertAffine(m);
  const out = new Float32Array(dh * dw * c);
  const px = new Float64Array(4);
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      const qx = Math.floor((a * x + b * y + cc) * 32 + 0.5);
      const qy = Math.floor((d * x + e * y + f) * 32 + 0.5);
      const x0 = qx >> 5;
      const y0 = qy >> 5;
      const fx = (qx & 31) / 32;
      const fy = (qy & 31) / 32;
      const o = (y * dw + x) * c;
      const in00 = x0 >= 0 && x0 < w && y0 >= 0 && y0 < h;
      const in01 = x0 + 1 >= 0 && x0 + 1 < w && y0 >= 0 && y0 < h;
      const in10 = x0 >= 0 && x0 < w && y0 + 1 >= 0 && y0 + 1 < h;
      const in11 = x0 + 1 >= 0 && x0 + 1 < w && y0 + 1 >= 0 && y0 + 1 < h;
      const s00 = (y0 * w + x0) * c;
      for (let ch = 0; ch < c; ch++) {
        const bv = border[ch] ?? 0;
        px[0] = in00 ? (img[s00 + ch] ?? 0) : bv;
        px[1] = in01 ? (img[s00 + c + ch] ?? 0) : bv;
        px[2] = in10 ? (img[s00 + w * c + ch] ?? 0) : bv;
        px[3] = in11 ? (img[s00 + w * c + c + ch] ?? 0) : bv;
        out[o + ch] =
          ((px[0] ?? 0) * (1 - fx) + (px[1] ?? 0) * fx) * (1 - fy) +
          ((px[2] ?? 0) * (1 - fx) + (px[3] ?? 0) * fx) * fy;
      }
    }
  }
  return out;
}

/** `cv2.warpAffine` with INTER_NEAREST (source position rounded) and a constant border. */
export function warpAffineLabel(
  label: Uint8Array,
  h: number,
  w: number,
  m: Affine,
  dh: number,
  dw: number,
  border: number,
): Uint8Array {
  const [a, b, cc, d, e, f] = invertAffine(m);
  const out = new Uint8Array(dh * dw);
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      const sx = Math.floor(a * x + b * y + cc + 0.5);
      const sy = Math.floor(d * x + e * y + f + 0.5);
      out[y * dw + x] = sx >= 0 && sx < w && sy >= 0 && sy < h ? (label[sy * w + sx] ?? 0) : border;
    }
  }
  return out;
}

/**
 * numpy's float → uint8 cast as PaddleSeg uses it (`img.astype('uint8')`): truncation toward zero.
 * Values outside [0, 255] are clipped (numpy leaves them undefined).
 */
export function toUint8(img: Float32Array): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let i = 0; i < img.length; i++) {
    const v = img[i] ?? 0;
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return out;
}

/** BORDER_REFLECT_101 index (`gfedcb|abcdefgh|gfedcba`). */
function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
  }
  return i;
}

/** A separable filter with kernel `k` (odd length), BORDER_REFLECT_101, rounded to uint8. */
function separableFilterU8(img: Uint8Array, h: number, w: number, c: number, k: Float64Array): Uint8Array {
  const r = (k.length - 1) / 2;
  const tmp = new Float64Array(img.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * c;
      for (let t = -r; t <= r; t++) {
        const s = (y * w + reflect101(x + t, w)) * c;
        const wt = k[t + r] ?? 0;
        for (let ch = 0; ch < c; ch++) tmp[o + ch] = (tmp[o + ch] ?? 0) + wt * (img[s + ch] ?? 0);
      }
    }
  }
  const out = new Uint8Array(img.length);
  const rowLen = w * c;
  const acc = new Float64Array(rowLen);
  for (let y = 0; y < h; y++) {
    acc.fill(0);
    for (let t = -r; t <= r; t++) {
      const s = reflect101(y + t, h) * rowLen;
      const wt = k[t + r] ?? 0;
      for (let i = 0; i < rowLen; i++) acc[i] = (acc[i] ?? 0) + wt * (tmp[s + i] ?? 0);
    }
    for (let i = 0; i < rowLen; i++) {
      const v = Math.round(acc[i] ?? 0);
      out[y * rowLen + i] = Math.min(Math.max(v, 0), 255);
    }
  }
  return out;
}

/**
 * `cv2.getGaussianKernel(ksize, 0)`: the fixed binomial-like tables for ksize ≤ 7, otherwise a sampled
 * Gaussian with sigma = 0.3·((ksize−1)/2 − 1) + 0.8, normalised.
 */
export function gaussianKernel(ksize: number): Float64Array {
  const small: Record<number, readonly number[]> = {
    1: [1],
    3: [0.25, 0.5, 0.25],
    5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
    7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
  };
  const fixed = small[ksize];
  if (fixed) return Float64Array.from(fixed);
  const sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8;
  const k = new Float64Array(ksize);
  let sum = 0;
  for (let i = 0; i < ksize; i++) {
    const x = i - (ksize - 1) / 2;
    const v = Math.exp(-(x * x) / (2 * sigma * sigma));
    k[i] = v;
    sum += v;
  }
  for (let i = 0; i < ksize; i++) k[i] = (k[i] ?? 0) / sum;
  return k;
}

/** `cv2.GaussianBlur(u8, (k, k), 0)`. */
export function gaussianBlurU8(img: Uint8Array, h: number, w: number, c: number, ksize: number): Uint8Array {
  return separableFilterU8(img, h, w, c, gaussianKernel(ksize));
}

/** `cv2.blur(u8, (k, k))`: normalised box filter. */
export function boxBlurU8(img: Uint8Array, h: number, w: number, c: number, ksize: number): Uint8Array {
  return separableFilterU8(img, h, w, c, new Float64Array(ksize).fill(1 / ksize));
}

/**
 * `cv2.medianBlur(u8, k)`: per-channel median of the k×k window, BORDER_REPLICATE. A sliding
 * histogram per row (Huang) with 16 coarse bins keeps it O(k + 32) per pixel.
 */
export function medianBlurU8(img: Uint8Array, h: number, w: number, c: number, ksize: number): Uint8Array {
  const r = (ksize - 1) / 2;
  const out = new Uint8Array(img.length);
  const fine = new Int32Array(256);
  const coarse = new Int32Array(16);
  const half = (ksize * ksize - 1) / 2;
  const addColumn = (y: number, x: number, ch: number, delta: number): void => {
    const sx = Math.min(Math.max(x, 0), w - 1);
    for (let dy = -r; dy <= r; dy++) {
      const sy = Math.min(Math.max(y + dy, 0), h - 1);
      const v = img[(sy * w + sx) * c + ch] ?? 0;
      fine[v] = (fine[v] ?? 0) + delta;
      coarse[v >> 4] = (coarse[v >> 4] ?? 0) + delta;
    }
  };
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      fine.fill(0);
      coarse.fill(0);
      for (let dx = -r; dx <= r; dx++) addColumn(y, dx, ch, 1);
      for (let x = 0; x < w; x++) {
        if (x > 0) {
          addColumn(y, x - r - 1, ch, -1);
          addColumn(y, x + r, ch, 1);
        }
        let seen = 0;
        let b = 0;
        for (; b < 15; b++) {
          const n = coarse[b] ?? 0;
          if (seen + n > half) break;
          seen += n;
        }
        let v = b << 4;
        for (; v < (b << 4) + 15; v++) {
          seen += fine[v] ?? 0;
          if (seen > half) break;
        }
        out[(y * w + x) * c + ch] = v;
      }
    }
  }
  return out;
}

/** A standard normal draw (Box–Muller) from a uniform source in [0, 1). */
export function normalPair(next: () => number): [number, number] {
  const u1 = 1 - next(); // (0, 1]: log is finite
  const u2 = next();
  const r = Math.sqrt(-2 * Math.log(u1));
  return [r * Math.cos(2 * Math.PI * u2), r * Math.sin(2 * Math.PI * u2)];
}
