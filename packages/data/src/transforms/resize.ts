/**
 * Resizing with OpenCV `cv2.resize` semantics on HWC float32 images and H×W uint8 labels.
 *
 * Every interpolation except NEAREST is separable: for each output column (row) we precompute the
 * source taps and weights once, then run a horizontal pass into a float buffer and a vertical pass.
 */

export type Interp = 'NEAREST' | 'LINEAR' | 'CUBIC' | 'AREA' | 'LANCZOS4';

/** Source taps of one output coordinate: `idx[o*k + t]` with weight `w[o*k + t]`. */
interface AxisTable {
  readonly k: number;
  readonly idx: Int32Array;
  readonly w: Float64Array;
}

function clampIdx(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/** OpenCV's inverse scale: `1 / (dst/src)` in double, as cv::resize computes `scale_x`. */
function srcPerDst(src: number, dst: number): number {
  return 1 / (dst / src);
}

function cubicCoeffs(x: number, out: Float64Array): void {
  // OpenCV interpolateCubic with A = -0.75.
  const A = -0.75;
  out[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  out[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
  out[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  out[3] = 1 - (out[0] ?? 0) - (out[1] ?? 0) - (out[2] ?? 0);
}

function lanczos4Coeffs(x: number, out: Float64Array): void {
  // OpenCV interpolateLanczos4: sinc(t)·sinc(t/4) on taps sx-3..sx+4, normalised to sum 1.
  if (x < 1.1920929e-7) {
    out.fill(0);
    out[3] = 1;
    return;
  }
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    const t = (x + 3 - i) * Math.PI;
    const v = (Math.sin(t) * Math.sin(t / 4)) / (t * t);
    out[i] = v;
    sum += v;
  }
  for (let i = 0; i < 8; i++) out[i] = (out[i] ?? 0) / sum;
}

/** Half-pixel kernel table (LINEAR, CUBIC, LANCZOS4): `fx = (d+0.5)·scale − 0.5`, taps clamped. */
function kernelTable(src: number, dst: number, interp: 'LINEAR' | 'CUBIC' | 'LANCZOS4'): AxisTable {
  const k = interp === 'LINEAR' ? 2 : interp === 'CUBIC' ? 4 : 8;
  const half = k / 2 - 1;
  const scale = srcPerDst(src, dst);
  const idx = new Int32Array(dst * k);
  const w = new Float64Array(dst * k);
  const c = new Float64Array(k);
  for (let d = 0; d < dst; d++) {
    // OpenCV stores fx as float.
    const f = Math.fround((d + 0.5) * scale - 0.5);
    const s = Math.floor(f);
    const fx = f - s;
    if (interp === 'LINEAR') {
      c[0] = 1 - fx;
      c[1] = fx;
    } else if (interp === 'CUBIC') {
      cubicCoeffs(fx, c);
    } else {
      lanczos4Coeffs(fx, c);
    }
    // Out-of-range taps replicate the border (BORDER_REPLICATE), which for LINEAR equals OpenCV's
    // "sx < 0 → sx = 0, fx = 0" clamping.
    for (let t = 0; t < k; t++) {
      idx[d * k + t] = clampIdx(s - half + t, src);
      w[d * k + t] = c[t] ?? 0;
    }
  }
  return { k, idx, w };
}

/** INTER_AREA table: box averaging when shrinking, OpenCV's area-linear weights when enlarging. */
function areaTable(src: number, dst: number, shrinking: boolean): AxisTable {
  const scale = srcPerDst(src, dst);
  if (!shrinking) {
    const inv = dst / src;
    const idx = new Int32Array(dst * 2);
    const w = new Float64Array(dst * 2);
    for (let d = 0; d < dst; d++) {
      const s = Math.floor(d * scale);
      let fx = Math.fround(d + 1 - (s + 1) * inv);
      fx = fx <= 0 ? 0 : fx - Math.floor(fx);
      idx[d * 2] = clampIdx(s, src);
      idx[d * 2 + 1] = clampIdx(s + 1, src);
      w[d * 2] = 1 - fx;
      w[d * 2 + 1] = fx;
    }
    return { k: 2, idx, w };
  }
  const k = Math.ceil(scale) + 2;
  const idx = new Int32Array(dst * k);
  const w = new Float64Array(dst * k);
  for (let d = 0; d < dst; d++) {
    const fs1 = d * scale;
    const fs2 = fs1 + scale;
    const cell = Math.min(scale, src - fs1);
    let s2 = Math.floor(fs2);
    let s1 = Math.ceil(fs1);
    s2 = Math.min(s2, src - 1);
    s1 = Math.min(s1, s2);
    let t = 0;
    const push = (i: number, wt: number): void => {
      idx[d * k + t] = clampIdx(i, src);
      w[d * k + t] = wt;
      t++;
    };
    if (s1 - fs1 > 1e-3) push(s1 - 1, (s1 - fs1) / cell);
    for (let s = s1; s < s2; s++) push(s, 1 / cell);
    if (fs2 - s2 > 1e-3) push(s2, Math.min(Math.min(fs2 - s2, 1), cell) / cell);
    // Unused taps keep weight 0 (index 0 is harmless).
  }
  return { k, idx, w };
}

function axisTable(
  src: number,
  dst: number,
  interp: Exclude<Interp, 'NEAREST'>,
  shrinkBoth: boolean,
): AxisTable {
  return interp === 'AREA' ? areaTable(src, dst, shrinkBoth) : kernelTable(src, dst, interp);
}

/** Nearest source index per output index: `min(floor(d · src/dst), src − 1)` (no half-pixel). */
function nearestMap(src: number, dst: number): Int32Array {
  const scale = srcPerDst(src, dst);
  const m = new Int32Array(dst);
  for (let d = 0; d < dst; d++) m[d] = Math.min(Math.floor(d * scale), src - 1);
  return m;
}

function checkSize(h: number, w: number): void {
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
    throw new Error(`resize: invalid target size ${w}x${h} (width x height)`);
  }
}

/**
 * Resizes an HWC float32 image to `dh × dw` like `cv2.resize(img, (dw, dh), interpolation)`.
 * Returns a new array; the input is never modified.
 */
export function resizeImage(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  dh: number,
  dw: number,
  interp: Interp = 'LINEAR',
): Float32Array {
  checkSize(dh, dw);
  if (dh === h && dw === w) return img.slice();
  const out = new Float32Array(dh * dw * c);
  if (interp === 'NEAREST') {
    const my = nearestMap(h, dh);
    const mx = nearestMap(w, dw);
    for (let y = 0; y < dh; y++) {
      const rowBase = (my[y] ?? 0) * w;
      for (let x = 0; x < dw; x++) {
        const s = (rowBase + (mx[x] ?? 0)) * c;
        const o = (y * dw + x) * c;
        for (let ch = 0; ch < c; ch++) out[o + ch] = img[s + ch] ?? 0;
      }
    }
    return out;
  }
  // OpenCV takes the area path only when shrinking on both axes.
  const shrinkBoth = dh <= h && dw <= w;
  const tx = axisTable(w, dw, interp, shrinkBoth);
  const ty = axisTable(h, dh, interp, shrinkBoth);
  // Horizontal pass over the source rows (float64), then a vertical pass into the output.
  const tmp = new Float64Array(h * dw * c);
  const kx = tx.k;
  const rowLen = dw * c;
  // Only source rows some output row reads (a strong downscale skips most).
  const used = new Uint8Array(h);
  for (let i = 0; i < ty.idx.length; i++) if (ty.w[i] !== 0) used[ty.idx[i]!] = 1;
  for (let y = 0; y < h; y++) {
    if (used[y] === 0) continue;
    const srow = y * w * c;
    const trow = y * rowLen;
    for (let x = 0; x < dw; x++) {
      const tb = x * kx;
      const o = trow + x * c;
      if (kx === 2) {
        const s0 = srow + tx.idx[tb]! * c;
        const s1 = srow + tx.idx[tb + 1]! * c;
        const w0 = tx.w[tb]!;
        const w1 = tx.w[tb + 1]!;
        for (let ch = 0; ch < c; ch++) tmp[o + ch] = w0 * img[s0 + ch]! + w1 * img[s1 + ch]!;
        continue;
      }
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let t = 0; t < kx; t++) acc += tx.w[tb + t]! * img[srow + tx.idx[tb + t]! * c + ch]!;
        tmp[o + ch] = acc;
      }
    }
  }
  const ky = ty.k;
  for (let y = 0; y < dh; y++) {
    const tb = y * ky;
    const orow = y * rowLen;
    if (ky === 2) {
      const r0 = ty.idx[tb]! * rowLen;
      const r1 = ty.idx[tb + 1]! * rowLen;
      const w0 = ty.w[tb]!;
      const w1 = ty.w[tb + 1]!;
      for (let i = 0; i < rowLen; i++) out[orow + i] = w0 * tmp[r0 + i]! + w1 * tmp[r1 + i]!;
      continue;
    }
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let t = 0; t < ky; t++) acc += ty.w[tb + t]! * tmp[ty.idx[tb + t]! * rowLen + i]!;
      out[orow + i] = acc;
    }
  }
  return out;
}

/** Resizes an H×W label like `cv2.resize(label, (dw, dh), interpolation=cv2.INTER_NEAREST)`. */
export function resizeLabelNearest(
  label: Uint8Array,
  h: number,
  w: number,
  dh: number,
  dw: number,
): Uint8Array {
  checkSize(dh, dw);
  if (dh === h && dw === w) return label.slice();
  const my = nearestMap(h, dh);
  const mx = nearestMap(w, dw);
  const out = new Uint8Array(dh * dw);
  for (let y = 0; y < dh; y++) {
    const rowBase = (my[y] ?? 0) * w;
    const o = y * dw;
    for (let x = 0; x < dw; x++) out[o + x] = label[rowBase + (mx[x] ?? 0)] ?? 0;
  }
  return out;
}
