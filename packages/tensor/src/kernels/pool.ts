import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { emptyTensor, FAST_DIV, LINEAR_ID, launch, Uniforms } from './launch.js';

const WG = 256;

/** Window geometry of a 2-D pooling over NCHW planes. */
export interface PoolGeometry {
  readonly n: number;
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly outH: number;
  readonly outW: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly padTop: number;
  readonly padLeft: number;
}

// Index math divides by these sizes through FAST_DIV: lavapipe runs a plain '/' by a uniform as a
// scalar division per lane.
const GEOMETRY = `struct U { planes: u32, h: u32, w: u32, oh: u32, ow: u32, kh: u32, kw: u32, sh: u32, sw: u32,
  pt: i32, pl: i32, flag: u32, div_h: vec4<u32>, div_w: vec4<u32>, div_oh: vec4<u32>, div_ow: vec4<u32>,
  div_sh: vec4<u32>, div_sw: vec4<u32>, div_w4: vec4<u32> }
${FAST_DIV}`;

function geometryUniforms(g: PoolGeometry, flag: number): Uniforms {
  return new Uniforms()
    .u32(g.n * g.c)
    .u32(g.h)
    .u32(g.w)
    .u32(g.outH)
    .u32(g.outW)
    .u32(g.kh)
    .u32(g.kw)
    .u32(g.sh)
    .u32(g.sw)
    .i32(g.padTop)
    .i32(g.padLeft)
    .u32(flag)
    .divisor(g.h)
    .divisor(g.w)
    .divisor(g.outH)
    .divisor(g.outW)
    .divisor(g.sh)
    .divisor(g.sw)
    .divisor(Math.max(1, Math.floor(g.w / 4)));
}

// Window of output (oy, ox): rows oy·sh − pt ... + kh − 1, clipped to the image.
const WINDOW = /* wgsl */ `
  let y0 = i32(oy * u.sh) - u.pt;
  let x0 = i32(ox * u.sw) - u.pl;
  let ys = max(y0, 0);
  let ye = min(y0 + i32(u.kh), i32(u.h));
  let xs = max(x0, 0);
  let xe = min(x0 + i32(u.kw), i32(u.w));`;

// Output rows whose window contains input row iy: ceil((iy + pt − kh + 1)/sh) ... floor((iy + pt)/sh)
// (a negative numerator gives none before row 0: clamped to 0, or −1 for the last).
const COVERING = /* wgsl */ `
  let ty = i32(iy) + u.pt;
  let tx = i32(ix) + u.pl;
  let ny = ty - i32(u.kh) + i32(u.sh);
  let nx = tx - i32(u.kw) + i32(u.sw);
  let oy0 = select(0, i32(fdiv(u32(ny), u.div_sh)), ny > 0);
  let oy1 = min(select(-1, i32(fdiv(u32(ty), u.div_sh)), ty >= 0), i32(u.oh) - 1);
  let ox0 = select(0, i32(fdiv(u32(nx), u.div_sw)), nx > 0);
  let ox1 = min(select(-1, i32(fdiv(u32(tx), u.div_sw)), tx >= 0), i32(u.ow) - 1);`;

function poolSource(
  name: string,
  bindings: KernelSource['bindings'],
  decl: string,
  body: string,
): KernelSource {
  return {
    key: `pool/${name}`,
    bindings,
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
${GEOMETRY}
@group(0) @binding(0) var<uniform> u: U;
${decl}
${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
${body}
}`,
  };
}

const OUT_INDEX = /* wgsl */ `
  if (t >= u.planes * u.oh * u.ow) { return; }
  let row = fdiv(t, u.div_ow);
  let ox = t - row * u.ow;
  let plane = fdiv(row, u.div_oh);
  let oy = row - plane * u.oh;
  let base = plane * u.h * u.w;`;
const IN_INDEX = /* wgsl */ `
  if (t >= u.planes * u.h * u.w) { return; }
  let row = fdiv(t, u.div_w);
  let ix = t - row * u.w;
  let plane = fdiv(row, u.div_h);
  let iy = row - plane * u.h;
  let obase = plane * u.oh * u.ow;`;

// flag = 1: exclusive (divide by the in-image cell count, Paddle's default); 0: divide by kh·kw.
const avgForward = poolSource(
  'avg',
  ['read', 'rw'],
  '@group(0) @binding(1) var<storage, read> x: array<f32>;\n@group(0) @binding(2) var<storage, read_write> out: array<f32>;',
  `${OUT_INDEX}${WINDOW}
  var s = 0.0;
  for (var y = ys; y < ye; y++) { for (var xx = xs; xx < xe; xx++) { s += x[base + u32(y) * u.w + u32(xx)]; } }
  let count = select(f32(u.kh * u.kw), f32((ye - ys) * (xe - xs)), u.flag == 1u);
  out[t] = s / max(count, 1.0);`,
);

const avgBackward = poolSource(
  'avg-backward',
  ['read', 'rw'],
  '@group(0) @binding(1) var<storage, read> g: array<f32>;\n@group(0) @binding(2) var<storage, read_write> dx: array<f32>;',
  `${IN_INDEX}${COVERING}
  var s = 0.0;
  for (var oy = u32(oy0); i32(oy) <= oy1; oy++) {
    for (var ox = u32(ox0); i32(ox) <= ox1; ox++) {
      ${WINDOW}
      let count = select(f32(u.kh * u.kw), f32((ye - ys) * (xe - xs)), u.flag == 1u);
      s += g[obase + oy * u.ow + ox] / max(count, 1.0);
    }
  }
  dx[t] = s;`,
);

/**
 * The same for 4 adjacent input columns a lane (W a multiple of 4): one walk over the outputs
 * covering any of them, each output's gradient and window count once for all 4, added where its
 * window holds the column: the one-column sums, in the same order. 3×3 stride-2 pad-1 pools (STDC's)
 * on lavapipe, batch 4, 2 interleaved runs: 32 channels of 32×64 2.16–2.20 → 1.22–1.38 ms, 64 of
 * 16×32 0.98–1.02 → 0.58–0.59, 128 of 8×16 0.41–0.64 → 0.20–0.35, 256 of 4×8 0.23 → 0.20–0.28.
 */
const avgBackward4 = poolSource(
  'avg-backward4',
  ['read', 'rw'],
  '@group(0) @binding(1) var<storage, read> g: array<f32>;\n@group(0) @binding(2) var<storage, read_write> dx: array<vec4<f32>>;',
  `
  if (t >= u.planes * u.h * (u.w / 4u)) { return; }
  let row = fdiv(t, u.div_w4);
  let ix = (t - row * (u.w / 4u)) * 4u;
  let plane = fdiv(row, u.div_h);
  let iy = row - plane * u.h;
  let obase = plane * u.oh * u.ow;${COVERING}
  let tx3 = tx + 3;
  let last = min(select(-1, i32(fdiv(u32(tx3), u.div_sw)), tx3 >= 0), i32(u.ow) - 1);
  let cols = vec4<i32>(i32(ix)) + vec4<i32>(0, 1, 2, 3);
  var s = vec4<f32>();
  for (var oy = u32(oy0); i32(oy) <= oy1; oy++) {
    for (var ox = u32(ox0); i32(ox) <= last; ox++) {
      ${WINDOW}
      let count = select(f32(u.kh * u.kw), f32((ye - ys) * (xe - xs)), u.flag == 1u);
      let v = g[obase + oy * u.ow + ox] / max(count, 1.0);
      s += select(vec4<f32>(), vec4<f32>(v), (cols >= vec4<i32>(x0)) & (cols < vec4<i32>(x0 + i32(u.kw))));
    }
  }
  dx[t] = s;`,
);

const maxForward = poolSource(
  'max',
  ['read', 'rw', 'rw'],
  '@group(0) @binding(1) var<storage, read> x: array<f32>;\n@group(0) @binding(2) var<storage, read_write> out: array<f32>;\n@group(0) @binding(3) var<storage, read_write> arg: array<i32>;',
  `${OUT_INDEX}${WINDOW}
  var best = -3.4028e38;
  var at = -1;
  for (var y = ys; y < ye; y++) {
    for (var xx = xs; xx < xe; xx++) {
      let v = x[base + u32(y) * u.w + u32(xx)];
      if (v > best) { best = v; at = y * i32(u.w) + xx; }
    }
  }
  out[t] = best;
  arg[t] = at;`,
);

const maxBackward = poolSource(
  'max-backward',
  ['read', 'read', 'rw'],
  '@group(0) @binding(1) var<storage, read> g: array<f32>;\n@group(0) @binding(2) var<storage, read> arg: array<i32>;\n@group(0) @binding(3) var<storage, read_write> dx: array<f32>;',
  `${IN_INDEX}${COVERING}
  let me = i32(iy * u.w + ix);
  var s = 0.0;
  for (var oy = oy0; oy <= oy1; oy++) {
    for (var ox = ox0; ox <= ox1; ox++) {
      let o = obase + u32(oy) * u.ow + u32(ox);
      if (arg[o] == me) { s += g[o]; }
    }
  }
  dx[t] = s;`,
);

// Adaptive bins: rows floor(i·H/OH) ... ceil((i+1)·H/OH) − 1.
const ADAPTIVE_BIN = /* wgsl */ `
  let ys = fdiv(oy * u.h, u.div_oh);
  let ye = fdiv((oy + 1u) * u.h + u.oh - 1u, u.div_oh);
  let xs = fdiv(ox * u.w, u.div_ow);
  let xe = fdiv((ox + 1u) * u.w + u.ow - 1u, u.div_ow);`;

const adaptiveForward = poolSource(
  'adaptive-avg',
  ['read', 'rw'],
  '@group(0) @binding(1) var<storage, read> x: array<f32>;\n@group(0) @binding(2) var<storage, read_write> out: array<f32>;',
  `${OUT_INDEX}${ADAPTIVE_BIN}
  var s = 0.0;
  for (var y = ys; y < ye; y++) { for (var xx = xs; xx < xe; xx++) { s += x[base + y * u.w + xx]; } }
  out[t] = s / f32((ye - ys) * (xe - xs));`,
);

const adaptiveBackward = poolSource(
  'adaptive-avg-backward',
  ['read', 'rw'],
  '@group(0) @binding(1) var<storage, read> g: array<f32>;\n@group(0) @binding(2) var<storage, read_write> dx: array<f32>;',
  `${IN_INDEX}
  // Bins overlap by at most one cell, so only bins near iy·OH/H can contain iy.
  let oy_mid = fdiv(iy * u.oh, u.div_h);
  let ox_mid = fdiv(ix * u.ow, u.div_w);
  let oy_lo = select(0u, oy_mid - 1u, oy_mid > 0u);
  let ox_lo = select(0u, ox_mid - 1u, ox_mid > 0u);
  var s = 0.0;
  for (var oy = oy_lo; oy < min(u.oh, oy_mid + 2u); oy++) {
    for (var ox = ox_lo; ox < min(u.ow, ox_mid + 2u); ox++) {
      ${ADAPTIVE_BIN}
      if (iy >= ys && iy < ye && ix >= xs && ix < xe) { s += g[obase + oy * u.ow + ox] / f32((ye - ys) * (xe - xs)); }
    }
  }
  dx[t] = s;`,
);

/** Test hook: `vec4: false` runs the one-column avg-pool backward where the 4-column one would. */
export const poolConfig = { vec4: true };

export function avgPoolForward(device: Device, x: Tensor, g: PoolGeometry, exclusive: boolean): Tensor {
  const out = emptyTensor(device, [g.n, g.c, g.outH, g.outW]);
  launch(device, avgForward, [x.buffer, out.buffer], geometryUniforms(g, exclusive ? 1 : 0), out.size);
  return out;
}

export function avgPoolBackward(device: Device, grad: Tensor, g: PoolGeometry, exclusive: boolean): Tensor {
  const dx = emptyTensor(device, [g.n, g.c, g.h, g.w]);
  const u = geometryUniforms(g, exclusive ? 1 : 0);
  if (g.w % 4 === 0 && poolConfig.vec4)
    launch(device, avgBackward4, [grad.buffer, dx.buffer], u, dx.size / 4);
  else launch(device, avgBackward, [grad.buffer, dx.buffer], u, dx.size);
  return dx;
}

export function maxPoolForward(device: Device, x: Tensor, g: PoolGeometry): { out: Tensor; argmax: Tensor } {
  const out = emptyTensor(device, [g.n, g.c, g.outH, g.outW]);
  const argmax = emptyTensor(device, [g.n, g.c, g.outH, g.outW], 'i32');
  launch(device, maxForward, [x.buffer, out.buffer, argmax.buffer], geometryUniforms(g, 0), out.size);
  return { out, argmax };
}

export function maxPoolBackward(device: Device, grad: Tensor, argmax: Tensor, g: PoolGeometry): Tensor {
  const dx = emptyTensor(device, [g.n, g.c, g.h, g.w]);
  launch(device, maxBackward, [grad.buffer, argmax.buffer, dx.buffer], geometryUniforms(g, 0), dx.size);
  return dx;
}

export function adaptiveAvgPoolForward(device: Device, x: Tensor, g: PoolGeometry): Tensor {
  const out = emptyTensor(device, [g.n, g.c, g.outH, g.outW]);
  launch(device, adaptiveForward, [x.buffer, out.buffer], geometryUniforms(g, 0), out.size);
  return out;
}

export function adaptiveAvgPoolBackward(device: Device, grad: Tensor, g: PoolGeometry): Tensor {
  const dx = emptyTensor(device, [g.n, g.c, g.h, g.w]);
  launch(device, adaptiveBackward, [grad.buffer, dx.buffer], geometryUniforms(g, 0), dx.size);
  return dx;
}

// argmax over the middle axis of [outer, C, inner]; the first maximum wins.
const argmaxSource: KernelSource = {
  key: 'argmax',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { outer: u32, c: u32, inner: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;
${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
  if (t >= u.outer * u.inner) { return; }
  let base = (t / u.inner) * u.c * u.inner + t % u.inner;
  var best = x[base];
  var at = 0;
  for (var c = 1u; c < u.c; c++) {
    let v = x[base + c * u.inner];
    if (v > best) { best = v; at = i32(c); }
  }
  out[t] = at;
}`,
};

export function argmaxKernel(
  device: Device,
  x: Tensor,
  outer: number,
  c: number,
  inner: number,
  outShape: readonly number[],
): Tensor {
  const out = emptyTensor(device, outShape, 'i32');
  launch(
    device,
    argmaxSource,
    [x.buffer, out.buffer],
    new Uniforms().u32(outer).u32(c).u32(inner),
    outer * inner,
  );
  return out;
}
