/**
 * PIL-compatible colour operations on interleaved uint8 images (PaddleSeg's RandomDistort goes
 * through `PIL.Image` and `ImageEnhance`). Images are RGB (`c = 3`) or grayscale (`c = 1`).
 */

const f32 = Math.fround;

/** PIL's RGB → L: `(R·19595 + G·38470 + B·7471 + 0x8000) >> 16` (ITU-R 601-2 luma, rounded). */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/**
 * `Image.blend(degenerate, img, alpha)` for one pair of values as PIL's ImagingBlend computes it:
 * `deg + alpha·(img − deg)` in float32, truncated to uint8 and clipped to [0, 255].
 */
function blendValue(deg: number, v: number, a32: number): number {
  const x = f32(deg + f32(a32 * (v - deg)));
  return x <= 0 ? 0 : x >= 255 ? 255 : Math.trunc(x);
}

/** 256-entry table of `blend(deg, v)` for every v. */
function blendRow(deg: number, a32: number): Uint8Array {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = blendValue(deg, v, a32);
  return lut;
}

/** Blend with a constant degenerate value (a 256-entry lookup). */
function blendConst(img: Uint8Array, deg: number, alpha: number): Uint8Array {
  const lut = blendRow(deg, f32(alpha));
  const out = new Uint8Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = lut[img[i] ?? 0] ?? 0;
  return out;
}

/**
 * Blend with a per-element degenerate image (`deg[i]`, or `deg[i / stride]` for a per-pixel gray),
 * via a 256×256 table filled lazily for the degenerate values that occur.
 */
function blendImage(img: Uint8Array, deg: Uint8Array, stride: number, alpha: number): Uint8Array {
  const a32 = f32(alpha);
  const rows: (Uint8Array | undefined)[] = new Array(256);
  const out = new Uint8Array(img.length);
  for (let i = 0; i < img.length; i++) {
    const d = deg[stride === 1 ? i : Math.floor(i / stride)] ?? 0;
    let lut = rows[d];
    if (lut === undefined) {
      lut = blendRow(d, a32);
      rows[d] = lut;
    }
    out[i] = lut[img[i] ?? 0] ?? 0;
  }
  return out;
}

function grayOf(img: Uint8Array, c: number): Uint8Array {
  const n = img.length / c;
  const out = new Uint8Array(n);
  if (c === 1) {
    out.set(img);
    return out;
  }
  for (let p = 0; p < n; p++) out[p] = luma(img[p * c] ?? 0, img[p * c + 1] ?? 0, img[p * c + 2] ?? 0);
  return out;
}

function checkChannels(c: number, op: string): void {
  if (c !== 1 && c !== 3) throw new Error(`${op}: PIL colour ops need 1 or 3 channels, got ${c}`);
}

/** `ImageEnhance.Brightness(img).enhance(f)`: blend with black. */
export function enhanceBrightness(img: Uint8Array, c: number, factor: number): Uint8Array {
  checkChannels(c, 'brightness');
  return blendConst(img, 0, factor);
}

/** `ImageEnhance.Contrast(img).enhance(f)`: blend with a flat gray of the rounded mean luma. */
export function enhanceContrast(img: Uint8Array, c: number, factor: number): Uint8Array {
  checkChannels(c, 'contrast');
  const gray = grayOf(img, c);
  let sum = 0;
  for (let i = 0; i < gray.length; i++) sum += gray[i] ?? 0;
  const mean = Math.trunc(sum / Math.max(gray.length, 1) + 0.5);
  return blendConst(img, mean, factor);
}

/** `ImageEnhance.Color(img).enhance(f)`: blend with the image's own grayscale (`convert('L')`). */
export function enhanceColor(img: Uint8Array, c: number, factor: number): Uint8Array {
  checkChannels(c, 'saturation');
  // A grayscale image is its own degenerate: PIL's Color is the identity there.
  if (c === 1) return img.slice();
  const gray = grayOf(img, c);
  return blendImage(img, gray, c, factor);
}

/**
 * `ImageEnhance.Sharpness(img).enhance(f)`: blend with `filter(SMOOTH)` (3×3 kernel
 * [1 1 1; 1 5 1; 1 1 1]/13, rounded). PIL leaves the one-pixel border unfiltered.
 */
export function enhanceSharpness(
  img: Uint8Array,
  h: number,
  w: number,
  c: number,
  factor: number,
): Uint8Array {
  checkChannels(c, 'sharpness');
  const smooth = img.slice();
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let ch = 0; ch < c; ch++) {
        let s = 4 * (img[(y * w + x) * c + ch] ?? 0);
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) s += img[((y + dy) * w + x + dx) * c + ch] ?? 0;
        }
        // s/13 never has a fractional part of exactly .5 (13 is odd), so rounding is unambiguous.
        smooth[(y * w + x) * c + ch] = Math.round(s / 13);
      }
    }
  }
  return blendImage(img, smooth, 1, factor);
}

/** PIL's `convert('HSV')` of one RGB pixel into `out` (all three in 0–255, H scaled by 255). */
function rgbToHsvInto(r: number, g: number, b: number, out: Int32Array): void {
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  out[2] = maxc;
  if (maxc === minc) {
    out[0] = 0;
    out[1] = 0;
    return;
  }
  // PIL computes in float32.
  const cr = maxc - minc;
  const s = f32(cr / maxc);
  const rc = f32((maxc - r) / cr);
  const gc = f32((maxc - g) / cr);
  const bc = f32((maxc - b) / cr);
  let h: number;
  if (r === maxc) h = f32(bc - gc);
  else if (g === maxc) h = f32(2 + rc - bc);
  else h = f32(4 + gc - rc);
  // fmod(x, 1) of a positive x is x − floor(x), exactly.
  const x = h / 6 + 1;
  h = f32(x - Math.floor(x));
  // (int) truncation, both values are within [0, 255).
  out[0] = (h * 255) | 0;
  out[1] = (s * 255) | 0;
}

/** PIL's HSV → RGB of one pixel into `out` (C `round`, half away from zero; values are ≥ 0). */
function hsvToRgbInto(h: number, s: number, v: number, out: Int32Array): void {
  if (s === 0) {
    out[0] = v;
    out[1] = v;
    out[2] = v;
    return;
  }
  // Non-negative values below 2^31: `| 0` is floor/trunc, and `(y + 0.5) | 0` is C round.
  const i = ((h * 6) / 255) | 0;
  const f = f32((h * 6) / 255 - i);
  const fs = f32(s / 255);
  const p = (v * (1 - fs) + 0.5) | 0;
  const q = (v * (1 - f32(fs * f)) + 0.5) | 0;
  // C: `fs * f` is a float product, `fs * (1.0 - f)` a double one.
  const t = (v * (1 - fs * (1 - f)) + 0.5) | 0;
  let r = v;
  let g = t;
  let b = p;
  switch (i % 6) {
    case 1:
      r = q;
      g = v;
      b = p;
      break;
    case 2:
      r = p;
      g = v;
      b = t;
      break;
    case 3:
      r = p;
      g = q;
      b = v;
      break;
    case 4:
      r = t;
      g = p;
      b = v;
      break;
    case 5:
      r = v;
      g = p;
      b = q;
      break;
  }
  out[0] = r;
  out[1] = g;
  out[2] = b;
}

export function rgbToHsvPil(r: number, g: number, b: number): [number, number, number] {
  const o = new Int32Array(3);
  rgbToHsvInto(r, g, b, o);
  return [o[0] ?? 0, o[1] ?? 0, o[2] ?? 0];
}

export function hsvToRgbPil(h: number, s: number, v: number): [number, number, number] {
  const o = new Int32Array(3);
  hsvToRgbInto(h, s, v, o);
  return [o[0] ?? 0, o[1] ?? 0, o[2] ?? 0];
}

/**
 * PaddleSeg's hue jitter: `convert('HSV')`, `H += delta` on the uint8 array (numpy truncates the
 * float sum and wraps it modulo 256), back to RGB. A grayscale image has no hue and is unchanged.
 */
export function shiftHue(img: Uint8Array, c: number, delta: number): Uint8Array {
  checkChannels(c, 'hue');
  if (c === 1) return img.slice();
  // New H for each old H.
  const hmap = new Int32Array(256);
  for (let h = 0; h < 256; h++) hmap[h] = ((Math.trunc(h + delta) % 256) + 256) % 256;
  const out = new Uint8Array(img.length);
  const hsv = new Int32Array(3);
  const rgb = new Int32Array(3);
  // Direct-mapped cache of packed rgb → packed result: natural images repeat colours a lot.
  const keys = new Int32Array(1 << 16).fill(-1);
  const vals = new Int32Array(1 << 16);
  for (let p = 0; p < img.length; p += 3) {
    const r = img[p]!;
    const g = img[p + 1]!;
    const b = img[p + 2]!;
    const key = (r << 16) | (g << 8) | b;
    const slot = Math.imul(key, 0x9e3779b1) >>> 16;
    let packed: number;
    if (keys[slot] === key) {
      packed = vals[slot]!;
    } else {
      rgbToHsvInto(r, g, b, hsv);
      hsvToRgbInto(hmap[hsv[0]!]!, hsv[1]!, hsv[2]!, rgb);
      packed = (rgb[0]! << 16) | (rgb[1]! << 8) | rgb[2]!;
      keys[slot] = key;
      vals[slot] = packed;
    }
    out[p] = packed >>> 16;
    out[p + 1] = (packed >>> 8) & 255;
    out[p + 2] = packed & 255;
  }
  return out;
}
