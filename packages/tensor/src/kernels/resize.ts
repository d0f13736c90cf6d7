import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { emptyTensor, FAST_DIV, LINEAR_ID, launch, Uniforms } from './launch.js';

const WG = 256;

/**
 * Bilinear source coordinate along one axis: src = (dst + off)·ratio − off, clamped at 0; with
 * off = 0.5, ratio = in/out this is the half-pixel mapping (align_corners=False, Paddle align_mode 0,
 * PyTorch); with off = 0, ratio = (in−1)/(out−1) it is align_corners=True. Returns the lower tap,
 * the upper tap (clamped to in−1) and the upper tap's weight.
 */
const TAPS = /* wgsl */ `
struct Taps { i0: u32, i1: u32, l: f32 }
fn taps(dst: u32, ratio: f32, off: f32, size: u32) -> Taps {
  let src = max((f32(dst) + off) * ratio - off, 0.0);
  let i0 = min(u32(floor(src)), size - 1u);
  let i1 = min(i0 + 1u, size - 1u);
  return Taps(i0, i1, src - f32(i0));
}
/** Weight of input index i in output dst's interpolation along one axis (both taps may coincide). */
fn tap_weight(t: Taps, i: u32) -> f32 {
  var w = 0.0;
  if (t.i0 == i) { w += 1.0 - t.l; }
  if (t.i1 == i) { w += t.l; }
  return w;
}
/** Range of output indices whose taps can reach input index i (a superset; tap_weight filters). */
fn reach(i: u32, inv: f32, off: f32, out_size: u32) -> vec2<u32> {
  let lo = floor((f32(i) - 1.0 + off) * inv - off) - 1.0;
  let hi = ceil((f32(i) + 1.0 + off) * inv - off) + 1.0;
  let l = u32(clamp(lo, 0.0, f32(out_size - 1u)));
  let h = u32(clamp(hi, 0.0, f32(out_size - 1u)));
  return vec2<u32>(l, h);
}
`;

const UNIFORM = /* wgsl */ `
struct U { total: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32,
  ratio_y: f32, ratio_x: f32, inv_y: f32, inv_x: f32, off: f32,
  div_in_w: vec4<u32>, div_in_h: vec4<u32>, div_out_w: vec4<u32>, div_out_h: vec4<u32>, div_out_w4: vec4<u32>,
  div_in_w4: vec4<u32>, div_in_strips: vec4<u32>, div_out_strips: vec4<u32> }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
${LINEAR_ID}
${FAST_DIV}
/** (x, y, plane) of element t of [planes, h, w], by fast divisions (dw, dh: fastDivisor(w), (h)). */
fn split3(t: u32, dw: vec4<u32>, dh: vec4<u32>) -> vec3<u32> {
  let row = fdiv(t, dw);
  let plane = fdiv(row, dh);
  return vec3<u32>(t - row * dw.x, row - plane * dh.x, plane);
}
`;

const HEADER = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
  if (t >= u.total) { return; }`;

/** One invocation per output element of [N·C, outH, outW]. */
const bilinearForwardSource: KernelSource = {
  key: 'resize/bilinear-forward',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM}${TAPS}
${HEADER}
  let at = split3(t, u.div_out_w, u.div_out_h);
  let ox = at.x;
  let oy = at.y;
  let plane = at.z;
  let ty = taps(oy, u.ratio_y, u.off, u.in_h);
  let tx = taps(ox, u.ratio_x, u.off, u.in_w);
  let base = plane * u.in_h * u.in_w;
  let r0 = base + ty.i0 * u.in_w;
  let r1 = base + ty.i1 * u.in_w;
  let top = src[r0 + tx.i0] * (1.0 - tx.l) + src[r0 + tx.i1] * tx.l;
  let bottom = src[r1 + tx.i0] * (1.0 - tx.l) + src[r1 + tx.i1] * tx.l;
  dst[t] = top * (1.0 - ty.l) + bottom * ty.l;
}`,
};

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const range5 = range(5);
/** WGSL: value k (0..4) of the five-value window `name`0..4. */
const pick = (name: string, k: string) =>
  range5.slice(1).reduce((acc, i) => `select(${acc}, ${name}${i}, ${k} == ${i}u)`, `${name}0`);

/**
 * Upsampling along x (out_w a multiple of 4, at most 3 input columns per 4 outputs, so the taps of
 * 4 adjacent outputs lie in 5 columns from the first one's lower tap): one invocation per 4
 * outputs of a row loads those 5 columns of its 2 input rows once (10 loads instead of 16) and
 * stores a vec4. The arithmetic per output is the one-output kernel's, so results are identical.
 */
const bilinearForward4Source: KernelSource = {
  key: 'resize/bilinear-forward4',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM.replace('dst: array<f32>', 'dst: array<vec4<f32>>')}${TAPS}
${HEADER}
  let at = split3(t, u.div_out_w4, u.div_out_h);
  let ox0 = at.x * 4u;
  let ty = taps(at.y, u.ratio_y, u.off, u.in_h);
  let first = taps(ox0, u.ratio_x, u.off, u.in_w).i0;
  let base = at.z * u.in_h * u.in_w;
  let r0 = base + ty.i0 * u.in_w;
  let r1 = base + ty.i1 * u.in_w;
${range5
  .map(
    (k) => `  let c${k} = min(first + ${k}u, u.in_w - 1u);
  let a${k} = src[r0 + c${k}];
  let b${k} = src[r1 + c${k}];`,
  )
  .join('\n')}
  var res = vec4<f32>();
  for (var j = 0u; j < 4u; j++) {
    let tx = taps(ox0 + j, u.ratio_x, u.off, u.in_w);
    let lo = tx.i0 - first;
    let hi = tx.i1 - first;
    let top = ${pick('a', 'lo')} * (1.0 - tx.l) + ${pick('a', 'hi')} * tx.l;
    let bottom = ${pick('b', 'lo')} * (1.0 - tx.l) + ${pick('b', 'hi')} * tx.l;
    res[j] = top * (1.0 - ty.l) + bottom * ty.l;
  }
  dst[t] = res;
}`,
};

/** Rows a lane of the two-pass upsampling's kernels walks (below). */
const STRIP = 8;

/**
 * The head of a strip lane: lane t = (plane · strips + strip) · w4 + quad, one column of 4 values
 * down a strip of STRIP rows of a [planes, rows, 4·w4] map; `quad`, `y0` (the strip's first row)
 * and `plane` are in scope after.
 */
const stripHead = (w4: string, strips: string) => `${HEADER}
  let at = split3(t, ${w4}, ${strips});
  let quad = at.x;
  let y0 = at.y * ${STRIP}u;
  let plane = at.z;`;

/**
 * First pass of a two-pass upsampling (`resizeForward`): each input row interpolated along x alone
 * into [planes, in_h, out_w], as bilinearForward4Source does per row (its conditions on the widths,
 * its arithmetic), a lane walking a strip of rows with its columns' taps worked out once.
 */
const bilinearRowsSource: KernelSource = {
  key: 'resize/bilinear-rows4',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM.replace('dst: array<f32>', 'dst: array<vec4<f32>>')}${TAPS}
${stripHead('u.div_out_w4', 'u.div_in_strips')}
  let ox0 = quad * 4u;
  let first = taps(ox0, u.ratio_x, u.off, u.in_w).i0;
${range(4)
  .map(
    (j) => `  let tx${j} = taps(ox0 + ${j}u, u.ratio_x, u.off, u.in_w);
  let lo${j} = tx${j}.i0 - first;
  let hi${j} = tx${j}.i1 - first;`,
  )
  .join('\n')}
${range5.map((k) => `  let c${k} = min(first + ${k}u, u.in_w - 1u);`).join('\n')}
  let w4 = u.out_w / 4u;
  for (var y = y0; y < min(y0 + ${STRIP}u, u.in_h); y++) {
    let row = (plane * u.in_h + y) * u.in_w;
${range5.map((k) => `    let a${k} = src[row + c${k}];`).join('\n')}
    let res = vec4<f32>(${range(4)
      .map((j) => `${pick('a', `lo${j}`)} * (1.0 - tx${j}.l) + ${pick('a', `hi${j}`)} * tx${j}.l`)
      .join(',\n      ')});
    dst[(plane * u.in_h + y) * w4 + quad] = res;
  }
}`,
};

/**
 * Second pass: x-interpolated rows ([planes, in_h, out_w], out_w a multiple of 4) interpolated along
 * y, 4 outputs a lane (they share their y taps: 2 vec4 loads where the one-pass kernel gathers 10
 * values) down a strip of output rows, loading only when the strip moves on to the next input rows
 * (upsampling by 8: twice a strip of 8). The one-output kernel's arithmetic.
 */
const bilinearColumnsSource: KernelSource = {
  key: 'resize/bilinear-columns4',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM.replace(/array<f32>/g, 'array<vec4<f32>>')}${TAPS}
${stripHead('u.div_out_w4', 'u.div_out_strips')}
  let w4 = u.out_w / 4u;
  let base = plane * u.in_h * w4 + quad;
  var loaded = u.in_h;
  var top = vec4<f32>();
  var bottom = vec4<f32>();
  for (var y = y0; y < min(y0 + ${STRIP}u, u.out_h); y++) {
    let ty = taps(y, u.ratio_y, u.off, u.in_h);
    if (ty.i0 != loaded) {
      top = src[base + ty.i0 * w4];
      bottom = src[base + ty.i1 * w4];
      loaded = ty.i0;
    }
    dst[(plane * u.out_h + y) * w4 + quad] = top * (1.0 - ty.l) + bottom * ty.l;
  }
}`,
};

/** Whether `bilinearForward4Source` computes this resize (see its conditions). */
function forward4Fits(g: Geometry): boolean {
  if (g.outW % 4 !== 0) return false;
  // 4 outputs advance the source x by 4·ratio; ≤ 3 keeps their taps within 5 columns with a
  // margin no rounding crosses (an equal width advances exactly 1 per output).
  const [span, steps] = g.alignCorners ? [g.inW - 1, g.outW - 1] : [g.inW, g.outW];
  return g.inW === g.outW || 4 * span <= 3 * steps;
}

/**
 * Bilinear backward in gather form (no atomics), in two separable passes: pass x sums each output
 * gradient row over the outputs whose x taps touch input column ix, weighted as the forward
 * weighted them, into [N·C, outH, inW]; pass y sums those rows over the y reach of iy. One pass
 * over both reaches visits (2·out/in + 3)² candidates per input element, two visit 2·(2·out/in + 3).
 * Measured on lavapipe against that one-pass kernel (same terms, same order, same results):
 * 4×19×8×16 → 64×128 5.1 → 3.4 ms, 4×64×32×64 → 64×128 40 → 29.5 ms, and downsampling
 * 4×64×64×128 → 32×64 51 → 44 ms.
 */
const bilinearBackwardXSource: KernelSource = {
  key: 'resize/bilinear-backward-x',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM}${TAPS}
${HEADER}
  let at = split3(t, u.div_in_w, u.div_out_h);
  let ix = at.x;
  let rx = reach(ix, u.inv_x, u.off, u.out_w);
  let rowStart = (at.z * u.out_h + at.y) * u.out_w;
  var row = 0.0;
  for (var ox = rx.x; ox <= rx.y; ox++) {
    let wx = tap_weight(taps(ox, u.ratio_x, u.off, u.in_w), ix);
    row += wx * src[rowStart + ox];
  }
  dst[t] = row;
}`,
};

/**
 * Pass x for 4 adjacent input columns a lane (in_w a multiple of 4): one walk over the union of
 * their reaches computes each output's taps and loads its gradient once for all 4 (8× upsampling:
 * 43 where 4 lanes took 76). An output outside a column's reach weighs 0 there, so each sum is the
 * one-column kernel's. lavapipe, with pass y's 4-column twice below (2 interleaved runs): PP-LiteSeg-T's
 * heads 4×7×8×16 → 64×128 pass x 0.71–0.75 → 0.50–0.51 ms, y 0.16–0.20 → 0.11–0.13; 4×7×16×32 →
 * 64×128 x 0.96–1.00 → 0.63–0.84, y 0.30–0.35 → 0.16–0.17; a 2× UAFM upsampling 4×256×8×16 →
 * 16×32 x 2.9–3.4 → 1.26–1.35, y 1.5–2.0 → 0.67–0.72.
 */
const bilinearBackwardX4Source: KernelSource = {
  key: 'resize/bilinear-backward-x4',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM.replace('dst: array<f32>', 'dst: array<vec4<f32>>')}${TAPS}
${HEADER}
  let at = split3(t, u.div_in_w4, u.div_out_h);
  let ix0 = at.x * 4u;
  let lo = reach(ix0, u.inv_x, u.off, u.out_w).x;
  let hi = reach(ix0 + 3u, u.inv_x, u.off, u.out_w).y;
  let rowStart = (at.z * u.out_h + at.y) * u.out_w;
  var row = vec4<f32>();
  for (var ox = lo; ox <= hi; ox++) {
    let tx = taps(ox, u.ratio_x, u.off, u.in_w);
    let w = vec4<f32>(tap_weight(tx, ix0), tap_weight(tx, ix0 + 1u), tap_weight(tx, ix0 + 2u), tap_weight(tx, ix0 + 3u));
    row += w * src[rowStart + ox];
  }
  dst[t] = row;
}`,
};

const bilinearBackwardYSource: KernelSource = {
  key: 'resize/bilinear-backward-y',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM}${TAPS}
${HEADER}
  let at = split3(t, u.div_in_w, u.div_in_h);
  let iy = at.y;
  let ry = reach(iy, u.inv_y, u.off, u.out_h);
  let base = at.z * u.out_h * u.in_w + at.x;
  var acc = 0.0;
  for (var oy = ry.x; oy <= ry.y; oy++) {
    let wy = tap_weight(taps(oy, u.ratio_y, u.off, u.in_h), iy);
    if (wy == 0.0) { continue; }
    acc += wy * src[base + oy * u.in_w];
  }
  dst[t] = acc;
}`,
};

/**
 * Pass y for 4 adjacent input columns a lane (in_w a multiple of 4): their y taps are the same, so
 * each output row's 4 values arrive as one vec4 and are weighted once; the one-column kernel's sums.
 */
const bilinearBackwardY4Source: KernelSource = {
  key: 'resize/bilinear-backward-y4',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM.replace(/array<f32>/g, 'array<vec4<f32>>')}${TAPS}
${HEADER}
  let at = split3(t, u.div_in_w4, u.div_in_h);
  let iy = at.y;
  let ry = reach(iy, u.inv_y, u.off, u.out_h);
  let w4 = u.in_w / 4u;
  let base = at.z * u.out_h * w4 + at.x;
  var acc = vec4<f32>();
  for (var oy = ry.x; oy <= ry.y; oy++) {
    let wy = tap_weight(taps(oy, u.ratio_y, u.off, u.in_h), iy);
    if (wy == 0.0) { continue; }
    acc += wy * src[base + oy * w4];
  }
  dst[t] = acc;
}`,
};

/**
 * Nearest: src = floor(dst·in/out) in exact integer arithmetic (OpenCV INTER_NEAREST, Paddle nearest).
 * An i32 variant copies label maps bit-exactly.
 */
function nearestForwardSource(type: 'f32' | 'i32'): KernelSource {
  return {
    key: `resize/nearest-forward/${type}`,
    bindings: ['read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `${UNIFORM.replaceAll('array<f32>', `array<${type}>`)}
${HEADER}
  let at = split3(t, u.div_out_w, u.div_out_h);
  let ox = at.x;
  let oy = at.y;
  let plane = at.z;
  let sy = min(fdiv(oy * u.in_h, u.div_out_h), u.in_h - 1u);
  let sx = min(fdiv(ox * u.in_w, u.div_out_w), u.in_w - 1u);
  dst[t] = src[(plane * u.in_h + sy) * u.in_w + sx];
}`,
  };
}

/** Input index i collects outputs [ceil(i·out/in), ceil((i+1)·out/in) − 1]. */
const nearestBackwardSource: KernelSource = {
  key: 'resize/nearest-backward',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `${UNIFORM}
${HEADER}
  let at = split3(t, u.div_in_w, u.div_in_h);
  let ix = at.x;
  let iy = at.y;
  let plane = at.z;
  let y0 = fdiv(iy * u.out_h + u.in_h - 1u, u.div_in_h);
  let y1 = fdiv((iy + 1u) * u.out_h + u.in_h - 1u, u.div_in_h);
  let x0 = fdiv(ix * u.out_w + u.in_w - 1u, u.div_in_w);
  let x1 = fdiv((ix + 1u) * u.out_w + u.in_w - 1u, u.div_in_w);
  let base = plane * u.out_h * u.out_w;
  var acc = 0.0;
  for (var oy = y0; oy < min(y1, u.out_h); oy++) {
    for (var ox = x0; ox < min(x1, u.out_w); ox++) { acc += src[base + oy * u.out_w + ox]; }
  }
  dst[t] = acc;
}`,
};

export type ResizeMode = 'bilinear' | 'nearest';

interface Geometry {
  readonly planes: number;
  readonly inH: number;
  readonly inW: number;
  readonly outH: number;
  readonly outW: number;
  readonly alignCorners: boolean;
}

/** Ratio (src per dst step) and its inverse along one axis. */
function axis(input: number, output: number, alignCorners: boolean): [number, number] {
  if (alignCorners) {
    const ratio = output > 1 ? (input - 1) / (output - 1) : 0;
    // in = 1: every output reads index 0; a huge inverse makes every output reach it.
    const inv = input > 1 ? (output - 1) / (input - 1) : 1e9;
    return [ratio, inv];
  }
  return [input / output, output / input];
}

function uniforms(g: Geometry, total: number): Uniforms {
  const [ry, iy] = axis(g.inH, g.outH, g.alignCorners);
  const [rx, ix] = axis(g.inW, g.outW, g.alignCorners);
  return new Uniforms()
    .u32(total)
    .u32(g.inH)
    .u32(g.inW)
    .u32(g.outH)
    .u32(g.outW)
    .f32(ry)
    .f32(rx)
    .f32(iy)
    .f32(ix)
    .f32(g.alignCorners ? 0 : 0.5)
    .divisor(g.inW)
    .divisor(g.inH)
    .divisor(g.outW)
    .divisor(g.outH)
    .divisor(Math.max(1, Math.floor(g.outW / 4)))
    .divisor(Math.max(1, Math.floor(g.inW / 4)))
    .divisor(Math.ceil(g.inH / STRIP))
    .divisor(Math.ceil(g.outH / STRIP));
}

function geometry(x: Tensor, outH: number, outW: number, alignCorners: boolean): Geometry {
  const inH = x.shape[x.rank - 2] ?? 1;
  const inW = x.shape[x.rank - 1] ?? 1;
  return { planes: x.size / (inH * inW), inH, inW, outH, outW, alignCorners };
}

/**
 * Test hook: `vec4: false` runs the one-output forward kernel and the one-column backward passes
 * where the 4-a-lane ones would.
 */
export const resizeConfig = { vec4: true };

/** Resizes the last two dims of `x` to [outH, outW]. */
export function resizeForward(
  device: Device,
  x: Tensor,
  outH: number,
  outW: number,
  mode: ResizeMode,
  alignCorners: boolean,
): Tensor {
  const g = geometry(x, outH, outW, alignCorners);
  if (x.dtype === 'i32' && mode !== 'nearest') throw new Error('resize: bilinear needs an f32 tensor');
  const out = emptyTensor(device, [...x.shape.slice(0, -2), outH, outW], x.dtype);
  if (mode === 'bilinear' && forward4Fits(g) && resizeConfig.vec4) {
    const lanes = out.size / 4;
    if (g.outH < g.inH) {
      launch(device, bilinearForward4Source, [x.buffer, out.buffer], uniforms(g, lanes), lanes);
      return out;
    }
    // Upsampling along y: interpolate each input row along x once (none to do at equal widths),
    // then the output rows from pairs of those (none at equal heights). lavapipe, 3 interleaved
    // runs, GPU time: 19-class heads (Cityscapes) 4×19×8×16 → 64×128 1.36–1.39 → 0.58–0.63 ms (wall
    // 1.46–1.47 → 0.71–0.73), 4×19×16×32 → 64×128 1.36–1.38 → 0.66–0.97, a UAFM 2× 4×128×8×16
    // → 16×32 0.68–0.71 → 0.49–0.71.
    const temporary =
      g.inW !== g.outW && g.inH !== g.outH ? emptyTensor(device, [g.planes, g.inH, g.outW]) : null;
    const rows = g.inW === g.outW ? x : (temporary ?? out);
    const strips = (height: number) => (g.planes * Math.ceil(height / STRIP) * g.outW) / 4;
    if (rows !== x)
      launch(device, bilinearRowsSource, [x.buffer, rows.buffer], uniforms(g, strips(g.inH)), strips(g.inH));
    if (rows !== out)
      launch(
        device,
        bilinearColumnsSource,
        [rows.buffer, out.buffer],
        uniforms(g, strips(g.outH)),
        strips(g.outH),
      );
    temporary?.dispose();
    return out;
  }
  const source = mode === 'bilinear' ? bilinearForwardSource : nearestForwardSource(x.dtype);
  launch(device, source, [x.buffer, out.buffer], uniforms(g, out.size), out.size);
  return out;
}

/** Gradient of `resizeForward` w.r.t. its input (shape `inputShape`) from the output gradient `grad`. */
export function resizeBackward(
  device: Device,
  grad: Tensor,
  inputShape: readonly number[],
  mode: ResizeMode,
  alignCorners: boolean,
): Tensor {
  const inH = inputShape[inputShape.length - 2] ?? 1;
  const inW = inputShape[inputShape.length - 1] ?? 1;
  const outH = grad.shape[grad.rank - 2] ?? 1;
  const outW = grad.shape[grad.rank - 1] ?? 1;
  const g: Geometry = { planes: grad.size / (outH * outW), inH, inW, outH, outW, alignCorners };
  const dx = emptyTensor(device, inputShape);
  if (mode === 'bilinear') {
    const rows = emptyTensor(device, [g.planes, outH, inW]);
    const four = inW % 4 === 0 && resizeConfig.vec4;
    const [passX, passY, lanesX, lanesY] = four
      ? [bilinearBackwardX4Source, bilinearBackwardY4Source, rows.size / 4, dx.size / 4]
      : [bilinearBackwardXSource, bilinearBackwardYSource, rows.size, dx.size];
    launch(device, passX, [grad.buffer, rows.buffer], uniforms(g, lanesX), lanesX);
    launch(device, passY, [rows.buffer, dx.buffer], uniforms(g, lanesY), lanesY);
    rows.dispose();
  } else {
    launch(device, nearestBackwardSource, [grad.buffer, dx.buffer], uniforms(g, dx.size), dx.size);
  }
  return dx;
}
