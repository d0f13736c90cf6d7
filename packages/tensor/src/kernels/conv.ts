import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { depthwiseFits, depthwiseForward } from './depthwise.js';
import { emptyTensor, gridFor, LINEAR_ID, launch, Uniforms } from './launch.js';

/**
 * 2-D convolution on NCHW f32 tensors, weights [Cout, Cin/groups, KH, KW], as dedicated kernels:
 * forward, input gradient (gather form), weight gradient (split reduction + fold), bias gradient.
 * No atomics. Every shape and scalar travels in the uniform block; pipeline keys hold only the
 * register-blocking factors, whether a bias is bound and whether subgroups are used.
 */

const WG = 64;
/**
 * Test hooks: `subgroups: false` exercises the plain weight-load path, `rowVariant: false` the
 * generic (any stride/dilation) forward and input-gradient kernels for stride-1 convolutions,
 * `depthwise: false` the grouped forward kernel for depthwise convolutions.
 */
export const convConfig = { subgroups: true, rowVariant: true, depthwise: true };
/** Lanes a weight block is spread over before subgroupBroadcast shares it (needs subgroup size ≥ SB). */
const SB = 8;

/** Geometry of one convolution (padding resolved to explicit top/left; bottom/right are implied by hout/wout). */
export interface ConvGeometry {
  readonly n: number;
  readonly cin: number;
  readonly h: number;
  readonly w: number;
  readonly cout: number;
  readonly hout: number;
  readonly wout: number;
  readonly groups: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly pt: number;
  readonly pl: number;
  readonly dh: number;
  readonly dw: number;
}

export const UNIFORM_STRUCT = /* wgsl */ `
struct U {
  n: u32, cin: u32, h: u32, w: u32,
  cout: u32, hout: u32, wout: u32, groups: u32,
  kh: u32, kw: u32, sh: u32, sw: u32,
  pt: i32, pl: i32, dh: u32, dw: u32,
  cin_pg: u32, cout_pg: u32, ocb_pg: u32, icb_pg: u32,
  xblocks: u32, total: u32, parts: u32, chunk: u32,
}
@group(0) @binding(0) var<uniform> u: U;
${LINEAR_ID}`;

export interface Extra {
  ocb: number;
  icb: number;
  xblocks: number;
  total: number;
  parts?: number;
  chunk?: number;
}

export function uniforms(g: ConvGeometry, e: Extra): Uniforms {
  const cinPg = g.cin / g.groups;
  const coutPg = g.cout / g.groups;
  return new Uniforms()
    .u32(g.n)
    .u32(g.cin)
    .u32(g.h)
    .u32(g.w)
    .u32(g.cout)
    .u32(g.hout)
    .u32(g.wout)
    .u32(g.groups)
    .u32(g.kh)
    .u32(g.kw)
    .u32(g.sh)
    .u32(g.sw)
    .i32(g.pt)
    .i32(g.pl)
    .u32(g.dh)
    .u32(g.dw)
    .u32(cinPg)
    .u32(coutPg)
    .u32(Math.ceil(coutPg / e.ocb))
    .u32(Math.ceil(cinPg / e.icb))
    .u32(e.xblocks)
    .u32(e.total)
    .u32(e.parts ?? 1)
    .u32(e.chunk ?? 0);
}

const range = (k: number) => Array.from({ length: k }, (_, i) => i);

/** The largest power of two ≤ min(channels, max): the channel block of a register tile. */
export function channelBlock(channels: number, max = 4): number {
  let block = 1;
  while (block * 2 <= Math.min(channels, max)) block *= 2;
  return block;
}

// ---------------------------------------------------------------------------------------------
// Forward: one invocation = OCB output channels × XB consecutive output x positions of one row.
// The output-channel block and the image come from workgroup_id.z, so every weight index is
// workgroup-uniform. Lavapipe still pays a full per-lane load for a uniform address, so with the
// `subgroups` feature lane l loads filter l % SB and subgroupBroadcast shares it (≈2× faster);
// only the x reads are real per-lane gathers. Taps run outside, input channels inside, so the
// per-lane offsets and padding masks are computed once per tap. No divergent control flow before
// the stores (subgroupBroadcast needs every lane). Measured on lavapipe (2 vCPU): OCB 16 × XB 4
// beat 8×4, 16×2 and 8×8.

function forwardSource(
  ocb: number,
  xb: number,
  bias: boolean,
  sub: boolean,
  rowKw: number,
  wg: number,
  fold: boolean,
): KernelSource {
  const acc = (o: number, j: number) => `a${o}_${j}`;
  // Row variant (stride 1, dilation 1 along x, kernel width rowKw baked in): the XB + rowKw - 1 x
  // values a row of taps needs are loaded once per input channel and reused by every tap.
  const nv = xb + rowKw - 1;
  const weightsAt = (broadcast: boolean, tap: string) =>
    broadcast
      ? `${range(Math.ceil(ocb / SB))
          .map((k) => `          let wv${k} = wt[wl${k} + ${tap}];`)
          .join('\n')}\n${range(ocb)
          .map((o) => `          let w${o} = subgroupBroadcast(wv${Math.floor(o / SB)}, ${o % SB}u);`)
          .join('\n')}`
      : range(ocb)
          .map((o) => `          let w${o} = wt[wb${o} + ${tap}];`)
          .join('\n');
  const rowInner = (broadcast: boolean) => `    var wo = ky * u.kw;
    for (var ic = 0u; ic < u.cin_pg; ic++) {
${range(nv)
  .map((v) => `      let x${v} = select(0.0, x[p${v}], m${v});`)
  .join('\n')}
${range(rowKw)
  .map(
    (kx) => `      {
${weightsAt(broadcast, `wo + ${kx}u`)}
${range(ocb)
  .flatMap((o) => range(xb).map((j) => `          ${acc(o, j)} = fma(x${j + kx}, w${o}, ${acc(o, j)});`))
  .join('\n')}
      }`,
  )
  .join('\n')}
${range(nv)
  .map((v) => `      p${v} += hw;`)
  .join('\n')}
      wo += khw;
    }`;
  const rowLoop = () => `  for (var ky = 0u; ky < u.kh; ky++) {
    let iy = iy0 + i32(ky * u.dh);
    let rowok = iy >= 0 && iy < hi;
    let row = xbase + u32(clamp(iy, 0, hi - 1)) * u.w;
${range(nv)
  .map(
    (v) => `    let ix${v} = ixs0 + ${v};
    let m${v} = rowok && ix${v} >= 0 && ix${v} < wi;
    var p${v} = row + u32(clamp(ix${v}, 0, wi - 1));`,
  )
  .join('\n')}
${sub ? `    if (ss >= ${Math.min(ocb, SB)}u) {\n${rowInner(true)}\n    } else {\n${rowInner(false)}\n    }` : rowInner(false)}
  }`;
  // Weights: every lane loads all OCB (plain path), or lane l loads filter (l % SB) of each group of
  // SB filters and subgroupBroadcast shares it (needs subgroup size ≥ SB; checked at run time).
  const inner = (broadcast: boolean) => `      var wo = ky * u.kw + kx;
      for (var ic = 0u; ic < u.cin_pg; ic++) {
${range(xb)
  .map((j) => `        let x${j} = select(0.0, x[p${j}], m${j});`)
  .join('\n')}
${
  broadcast
    ? `${range(Math.ceil(ocb / SB))
        .map((k) => `        let wv${k} = wt[wl${k} + wo];`)
        .join('\n')}\n${range(ocb)
        .map((o) => `        let w${o} = subgroupBroadcast(wv${Math.floor(o / SB)}, ${o % SB}u);`)
        .join('\n')}`
    : range(ocb)
        .map((o) => `        let w${o} = wt[wb${o} + wo];`)
        .join('\n')
}
${range(ocb)
  .flatMap((o) => range(xb).map((j) => `        ${acc(o, j)} = fma(x${j}, w${o}, ${acc(o, j)});`))
  .join('\n')}
${range(xb)
  .map((j) => `        p${j} += hw;`)
  .join('\n')}
        wo += khw;
      }`;
  const genericLoop = () => `  for (var ky = 0u; ky < u.kh; ky++) {
    let iy = iy0 + i32(ky * u.dh);
    let rowok = iy >= 0 && iy < hi;
    let row = xbase + u32(clamp(iy, 0, hi - 1)) * u.w;
    for (var kx = 0u; kx < u.kw; kx++) {
      let dx = i32(kx * u.dw);
${range(xb)
  .map(
    (j) => `      let ix${j} = ixs${j} + dx;
      let m${j} = rowok && ix${j} >= 0 && ix${j} < wi;
      var p${j} = row + u32(clamp(ix${j}, 0, wi - 1));`,
  )
  .join('\n')}
${sub ? `      if (ss >= ${Math.min(ocb, SB)}u) {\n${inner(true)}\n      } else {\n${inner(false)}\n      }` : inner(false)}
    }
  }`;
  return {
    key: `conv2d/fwd/oc${ocb}/x${xb}/row${rowKw}/bias${bias ? 1 : 0}/sg${sub ? 1 : 0}/wg${wg}/fold${fold ? 1 : 0}`,
    bindings: bias ? ['read', 'read', 'read', 'rw'] : ['read', 'read', 'rw'],
    workgroupSize: wg,
    wgsl: () => /* wgsl */ `${sub ? 'enable subgroups;' : ''}
${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
${
  bias
    ? `@group(0) @binding(3) var<storage, read> bs: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;`
    : '@group(0) @binding(3) var<storage, read_write> out: array<f32>;'
}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>${
          sub ? ',\n        @builtin(subgroup_invocation_id) sl: u32, @builtin(subgroup_size) ss: u32' : ''
        }) {
  let t = linear_id(gid, groups, ${wg}u);
  let valid = t < u.total;
  let tt = min(t, u.total - 1u);
  let xbk = tt % u.xblocks;
${
  fold
    ? `  let oy = (tt / u.xblocks) % u.hout;
  let n = tt / (u.xblocks * u.hout);
  let ob = wid.z;`
    : `  let oy = tt / u.xblocks;
  let nob = u.groups * u.ocb_pg;
  let ob = wid.z % nob;
  let n = wid.z / nob;`
}
  let g = ob / u.ocb_pg;
  let ocl0 = (ob % u.ocb_pg) * ${ocb}u;
  let khw = u.kh * u.kw;
  let fsize = u.cin_pg * khw;
${range(ocb)
  .map((o) => `  let wb${o} = (g * u.cout_pg + min(ocl0 + ${o}u, u.cout_pg - 1u)) * fsize;`)
  .join('\n')}
${
  sub
    ? range(Math.ceil(ocb / SB))
        .map(
          (k) =>
            `  let wl${k} = (g * u.cout_pg + min(ocl0 + ${k * SB}u + sl % ${SB}u, u.cout_pg - 1u)) * fsize;`,
        )
        .join('\n')
    : ''
}
  let ox0 = xbk * ${xb}u;
  let iy0 = i32(oy * u.sh) - u.pt;
${range(xb)
  .map((j) => `  let ixs${j} = i32((ox0 + ${j}u) * u.sw) - u.pl;`)
  .join('\n')}
${range(ocb)
  .flatMap((o) => range(xb).map((j) => `  var ${acc(o, j)} = 0.0;`))
  .join('\n')}
  let hw = u.h * u.w;
  let hi = i32(u.h);
  let wi = i32(u.w);
  let xbase = (n * u.cin + g * u.cin_pg) * hw;
${rowKw > 0 ? rowLoop() : genericLoop()}
  if (!valid) { return; }
  let oc0 = g * u.cout_pg + ocl0;
  let obase = ((n * u.cout + oc0) * u.hout + oy) * u.wout + ox0;
  let plane = u.hout * u.wout;
${range(ocb)
  .map(
    (o) => `  if (ocl0 + ${o}u < u.cout_pg) {
${bias ? `    let b${o} = bs[oc0 + ${o}u];\n` : ''}${range(xb)
  .map(
    (j) =>
      `    if (ox0 + ${j}u < u.wout) { out[obase + ${o}u * plane + ${j}u] = ${acc(o, j)}${bias ? ` + b${o}` : ''}; }`,
  )
  .join('\n')}
  }`,
  )
  .join('\n')}
}`,
  };
}

/** Dispatches `positions` invocations per (image, channel block) slice: x/y via gridFor, z = slices. */
function launchSliced(
  device: Device,
  source: KernelSource,
  buffers: readonly GPUBuffer[],
  u: Uniforms,
  positions: number,
  slices: number,
): void {
  const maxZ = device.limits.maxComputeWorkgroupsPerDimension;
  if (slices > maxZ)
    throw new Error(
      `${source.key}: ${slices} (image, channel block) slices exceed maxComputeWorkgroupsPerDimension (${maxZ}); use a smaller batch`,
    );
  const kernel = device.kernel(source);
  const [x, y] = gridFor(device, positions, source.workgroupSize);
  device.dispatch(kernel, buffers, u.bytes(), [x, y, slices]);
}

/** Smallest workgroup that is still one full subgroup on lavapipe (SIMD width 8). */
const MIN_WG = 8;

/**
 * Workgroup size for `positions` lanes per (image, channel block) slice. Every lane of a workgroup
 * runs the whole loop (subgroupBroadcast needs them all), so on the small late-stage maps (2×4 at
 * 1/32 of 64×128) a 64-lane workgroup computed 32× more than it stored: shrink it to fit.
 */
function workgroupFor(positions: number): number {
  let wg = MIN_WG;
  while (wg < WG && wg < positions) wg *= 2;
  return wg;
}

/** Register block along x: the tuned width, or 1 when that would leave less than two subgroups of rows. */
function rowBlock(rows: number, width: number, tuned: number): number {
  if (width < tuned) return 1;
  return rows * Math.ceil(width / tuned) >= 2 * MIN_WG ? tuned : 1;
}

/**
 * Whether lanes should span the images of the batch: when one image has fewer position blocks than
 * a full workgroup (the late, small maps), folding the batch in lets lanes use 4-wide x blocks and
 * share each weight load over more outputs.
 */
function foldImages(images: number, blocksPerImage: number): boolean {
  return images > 1 && blocksPerImage < WG;
}

/** Forward register block: output channels × output x positions per invocation (tuned on lavapipe). */
const FWD_BLOCK = { oc: 16, x: 4 };
/** Widest kernel the forward's row variant unrolls. */
const MAX_ROW_KW = 7;

export function conv2dForward(
  device: Device,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
): Tensor {
  if (depthwiseFits(g) && convConfig.depthwise) return depthwiseForward(device, x, w, bias, g);
  const coutPg = g.cout / g.groups;
  const ocb = channelBlock(coutPg, FWD_BLOCK.oc);
  const fold = foldImages(g.n, g.hout * Math.ceil(g.wout / FWD_BLOCK.x));
  const rows = fold ? g.n * g.hout : g.hout;
  const xb = rowBlock(rows, g.wout, FWD_BLOCK.x);
  const xblocks = Math.ceil(g.wout / xb);
  const positions = rows * xblocks;
  const slices = (fold ? 1 : g.n) * g.groups * Math.ceil(coutPg / ocb);
  const out = emptyTensor(device, [g.n, g.cout, g.hout, g.wout]);
  const u = uniforms(g, { ocb, icb: 1, xblocks, total: positions });
  const buffers = bias ? [x.buffer, w.buffer, bias.buffer, out.buffer] : [x.buffer, w.buffer, out.buffer];
  const rowKw = g.sw === 1 && g.dw === 1 && g.kw <= MAX_ROW_KW && convConfig.rowVariant ? g.kw : 0;
  launchSliced(
    device,
    forwardSource(
      ocb,
      xb,
      bias !== null,
      device.hasSubgroups && convConfig.subgroups,
      rowKw,
      workgroupFor(positions),
      fold,
    ),
    buffers,
    u,
    positions,
    slices,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// Input gradient, gather form: one invocation = ICB input channels × XB input x positions of one
// row; it gathers dY over every output position and filter tap that read them. Same structure as
// the forward: taps outside, output channels inside, weights shared through subgroupBroadcast.
// Input positions are split into stride classes (iy mod sh, ix mod sw), one class per workgroup
// (workgroup_id.z = image, input-channel block, class): within a class the taps that land on an
// output position are the same for every lane, so the others are skipped (uniformly) instead of
// masked, and the XB positions (ix, ix + sw, ...) read XB consecutive dY values.

function inputGradSource(
  icb: number,
  xb: number,
  sub: boolean,
  rowKw: number,
  wg: number,
  fold: boolean,
): KernelSource {
  const acc = (i: number, j: number) => `a${i}_${j}`;
  // Row variant (stride 1, dilation 1 along x, kernel width rowKw baked in): the XB + rowKw - 1 dY
  // values a row of taps reads are loaded once per output channel and reused by every tap.
  const nv = xb + rowKw - 1;
  const weightsAt = (broadcast: boolean, tap: string) =>
    broadcast
      ? `${range(Math.ceil(icb / SB))
          .map((k) => `          let wv${k} = wt[wl${k} + ${tap}];`)
          .join('\n')}\n${range(icb)
          .map((i) => `          let w${i} = subgroupBroadcast(wv${Math.floor(i / SB)}, ${i % SB}u);`)
          .join('\n')}`
      : range(icb)
          .map((i) => `          let w${i} = wt[wb${i} + ${tap}];`)
          .join('\n');
  const rowInner = (broadcast: boolean) => `    var wo = ky * u.kw;
    for (var ocl = 0u; ocl < u.cout_pg; ocl++) {
${range(nv)
  .map((v) => `      let g${v} = select(0.0, dy[p${v}], m${v});`)
  .join('\n')}
${range(rowKw)
  .map(
    (kx) => `      {
${weightsAt(broadcast, `wo + ${kx}u`)}
${range(icb)
  .flatMap((i) =>
    range(xb).map((j) => `          ${acc(i, j)} = fma(g${j + rowKw - 1 - kx}, w${i}, ${acc(i, j)});`),
  )
  .join('\n')}
      }`,
  )
  .join('\n')}
${range(nv)
  .map((v) => `      p${v} += plane;`)
  .join('\n')}
      wo += fsize;
    }`;
  const rowTaps = () => `    let oxs = i32(ix0) + u.pl - ${rowKw - 1};
${range(nv)
  .map(
    (v) => `    let m${v} = rowok && oxs + ${v} >= 0 && oxs + ${v} < woi;
    var p${v} = row + u32(clamp(oxs + ${v}, 0, woi - 1));`,
  )
  .join('\n')}
${sub ? `    if (ss >= ${Math.min(icb, SB)}u) {\n${rowInner(true)}\n    } else {\n${rowInner(false)}\n    }` : rowInner(false)}`;
  const genericTaps = () => `    for (var kx = 0u; kx < u.kw; kx++) {
      let cx = i32(rx) + u.pl - i32(kx * u.dw);
      if (((cx % swi) + swi) % swi != 0) { continue; }
      let ox0 = (i32(ix0) + u.pl - i32(kx * u.dw)) / swi;
${range(xb)
  .map((j) => `      let m${j} = rowok && ox0 + ${j} >= 0 && ox0 + ${j} < woi;`)
  .join('\n')}
${range(xb)
  .map((j) => `      var p${j} = row + u32(clamp(ox0 + ${j}, 0, woi - 1));`)
  .join('\n')}
${sub ? `      if (ss >= ${Math.min(icb, SB)}u) {\n${inner(true)}\n      } else {\n${inner(false)}\n      }` : inner(false)}
    }`;
  const inner = (broadcast: boolean) => `      var wo = ky * u.kw + kx;
      for (var ocl = 0u; ocl < u.cout_pg; ocl++) {
${range(xb)
  .map((j) => `        let g${j} = select(0.0, dy[p${j}], m${j});`)
  .join('\n')}
${
  broadcast
    ? `${range(Math.ceil(icb / SB))
        .map((k) => `        let wv${k} = wt[wl${k} + wo];`)
        .join('\n')}\n${range(icb)
        .map((i) => `        let w${i} = subgroupBroadcast(wv${Math.floor(i / SB)}, ${i % SB}u);`)
        .join('\n')}`
    : range(icb)
        .map((i) => `        let w${i} = wt[wb${i} + wo];`)
        .join('\n')
}
${range(icb)
  .flatMap((i) => range(xb).map((j) => `        ${acc(i, j)} = fma(g${j}, w${i}, ${acc(i, j)});`))
  .join('\n')}
${range(xb)
  .map((j) => `        p${j} += plane;`)
  .join('\n')}
        wo += fsize;
      }`;
  return {
    key: `conv2d/dx/ic${icb}/x${xb}/row${rowKw}/sg${sub ? 1 : 0}/wg${wg}/fold${fold ? 1 : 0}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: wg,
    wgsl: () => /* wgsl */ `${sub ? 'enable subgroups;' : ''}
${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>${
          sub ? ',\n        @builtin(subgroup_invocation_id) sl: u32, @builtin(subgroup_size) ss: u32' : ''
        }) {
  let t = linear_id(gid, groups, ${wg}u);
  let tt = min(t, u.total - 1u);
  let xbk = tt % u.xblocks;
  var z = wid.z;
  let rx = z % u.sw;
  z = z / u.sw;
  let ry = z % u.sh;
  z = z / u.sh;
${
  fold
    ? `  // Folded: lanes span images; u.chunk = rows of a stride class per image.
  let qy = (tt / u.xblocks) % u.chunk;
  let n = tt / (u.xblocks * u.chunk);
  let ib = z;`
    : `  let qy = tt / u.xblocks;
  let nib = u.groups * u.icb_pg;
  let ib = z % nib;
  let n = z / nib;`
}
  let g = ib / u.icb_pg;
  let icl0 = (ib % u.icb_pg) * ${icb}u;
  let iy = ry + qy * u.sh;
  let ix0 = rx + xbk * ${xb}u * u.sw;
  let valid = t < u.total && iy < u.h;
  let khw = u.kh * u.kw;
  let fsize = u.cin_pg * khw;
  let gw = g * u.cout_pg * u.cin_pg;
${range(icb)
  .map((i) => `  let wb${i} = (gw + min(icl0 + ${i}u, u.cin_pg - 1u)) * khw;`)
  .join('\n')}
${
  sub
    ? range(Math.ceil(icb / SB))
        .map((k) => `  let wl${k} = (gw + min(icl0 + ${k * SB}u + sl % ${SB}u, u.cin_pg - 1u)) * khw;`)
        .join('\n')
    : ''
}
${range(icb)
  .flatMap((i) => range(xb).map((j) => `  var ${acc(i, j)} = 0.0;`))
  .join('\n')}
  let plane = u.hout * u.wout;
  let shi = i32(u.sh);
  let swi = i32(u.sw);
  let hoi = i32(u.hout);
  let woi = i32(u.wout);
  let dyb = (n * u.cout + g * u.cout_pg) * plane;
  for (var ky = 0u; ky < u.kh; ky++) {
    // Uniform: does this tap row land on output rows for this class?
    let cy = i32(ry) + u.pt - i32(ky * u.dh);
    if (((cy % shi) + shi) % shi != 0) { continue; }
    let oy = (i32(iy) + u.pt - i32(ky * u.dh)) / shi;
    let rowok = oy >= 0 && oy < hoi;
    let row = dyb + u32(clamp(oy, 0, hoi - 1)) * u.wout;
${rowKw > 0 ? rowTaps() : genericTaps()}
  }
  if (!valid) { return; }
  let hw = u.h * u.w;
  let obase = ((n * u.cin + g * u.cin_pg + icl0) * u.h + iy) * u.w + ix0;
${range(icb)
  .map(
    (i) => `  if (icl0 + ${i}u < u.cin_pg) {
${range(xb)
  .map((j) => `    if (ix0 + ${j}u * u.sw < u.w) { dx[obase + ${i}u * hw + ${j}u * u.sw] = ${acc(i, j)}; }`)
  .join('\n')}
  }`,
  )
  .join('\n')}
}`,
  };
}

/** Input-gradient register block: input channels × input x positions per invocation. */
const DX_BLOCK = { ic: 16, x: 4 };

export function conv2dInputGrad(device: Device, dy: Tensor, w: Tensor, g: ConvGeometry): Tensor {
  const cinPg = g.cin / g.groups;
  const icb = channelBlock(cinPg, DX_BLOCK.ic);
  // Per stride class: ceil(h/sh) rows of ceil(w/sw) positions (at most).
  const classW = Math.ceil(g.w / g.sw);
  const classH = Math.ceil(g.h / g.sh);
  const fold = foldImages(g.n, classH * Math.ceil(classW / DX_BLOCK.x));
  const rows = fold ? g.n * classH : classH;
  const xb = rowBlock(rows, classW, DX_BLOCK.x);
  const xblocks = Math.ceil(classW / xb);
  const positions = rows * xblocks;
  const slices = (fold ? 1 : g.n) * g.groups * Math.ceil(cinPg / icb) * g.sh * g.sw;
  const out = emptyTensor(device, [g.n, g.cin, g.h, g.w]);
  const u = uniforms(g, { ocb: 1, icb, xblocks, total: positions, chunk: classH });
  const rowKw = g.sw === 1 && g.dw === 1 && g.kw <= MAX_ROW_KW && convConfig.rowVariant ? g.kw : 0;
  const source = inputGradSource(
    icb,
    xb,
    device.hasSubgroups && convConfig.subgroups,
    rowKw,
    workgroupFor(positions),
    fold,
  );
  launchSliced(device, source, [dy.buffer, w.buffer, out.buffer], u, positions, slices);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Weight gradient: lanes = (input channel, filter tap) of one group; one invocation accumulates
// OCB output channels over one chunk of the (n, oy, ox) reduction. The chunk and the
// output-channel block come from workgroup_id.z, so the reduction position is workgroup-uniform:
// each lane gathers one x value per position, the OCB dY values are loaded once per subgroup and
// shared by subgroupBroadcast. A fold pass adds the chunks' partial sums.

/** Weight-gradient workgroup size: small, so (input-channel block × tap) lanes waste few slots. */
const DW_WG = 16;

function weightGradSource(ocb: number, icb: number, sub: boolean, rowKw = 0): KernelSource {
  // Row variant (stride 1, dilation 1 along x, kernel width rowKw baked in): lanes are
  // (input-channel block, ky) and each invocation holds all rowKw taps of its row; along an output
  // row the x values form a sliding window, so one new x value per channel is loaded per position.
  const taps = Math.max(rowKw, 1);
  const acc = (o: number, i: number, kx: number) => `a${o}_${i}_${kx}`;
  // Window slot kx of channel i: the x value tap kx reads at the current output position.
  const xv = (i: number, kx: number) => (rowKw > 0 ? `x${i}_${kx}` : `x${i}`);
  const step = (broadcast: boolean) => `    ${
    broadcast
      ? `${range(Math.ceil(ocb / SB))
          .map((k) => `let dv${k} = dy[dyo + dyl${k}];`)
          .join('\n    ')}\n${range(ocb)
          .map((o) => `    let d${o} = subgroupBroadcast(dv${Math.floor(o / SB)}, ${o % SB}u);`)
          .join('\n')}`
      : range(ocb)
          .map((o) => `let d${o} = dy[dyo + dyc${o}];`)
          .join('\n    ')
  }
${range(ocb)
  .flatMap((o) =>
    range(icb).flatMap((i) =>
      range(taps).map((kx) => `    ${acc(o, i, kx)} = fma(d${o}, ${xv(i, kx)}, ${acc(o, i, kx)});`),
    ),
  )
  .join('\n')}`;
  const stepBlock = () =>
    (sub
      ? `    if (ss >= ${Math.min(ocb, SB)}u) {\n${step(true)}\n    } else {\n${step(false)}\n    }`
      : step(false)
    )
      .split('\n')
      .map((line) => `  ${line}`)
      .join('\n');
  const genericRow = () => `    var ix = i32(ox * u.sw) + offx;
    var dyo = dyn + oy * u.wout + ox;
    for (var k = 0u; k < cnt; k++) {
      let xo = xrow + u32(clamp(ix, 0, wi - 1));
      let m = rowok && ix >= 0 && ix < wi;
${range(icb)
  .map((i) => `      let x${i} = select(0.0, x[xo + xc${i}], m);`)
  .join('\n')}
${stepBlock()}
      ix += swi;
      dyo++;
    }`;
  const windowRow = () => `    var ix = i32(ox) + offx;
    var dyo = dyn + oy * u.wout + ox;
${range(rowKw - 1)
  .map(
    (kx) => `    let xo${kx} = xrow + u32(clamp(ix + ${kx}, 0, wi - 1));
    let m${kx} = rowok && ix + ${kx} >= 0 && ix + ${kx} < wi;
${range(icb)
  .map((i) => `    var ${xv(i, kx)} = select(0.0, x[xo${kx} + xc${i}], m${kx});`)
  .join('\n')}`,
  )
  .join('\n')}
${range(icb)
  .map((i) => `    var ${xv(i, rowKw - 1)} = 0.0;`)
  .join('\n')}
    for (var k = 0u; k < cnt; k++) {
      let jx = ix + ${rowKw - 1};
      let xo = xrow + u32(clamp(jx, 0, wi - 1));
      let m = rowok && jx >= 0 && jx < wi;
${range(icb)
  .map((i) => `      ${xv(i, rowKw - 1)} = select(0.0, x[xo + xc${i}], m);`)
  .join('\n')}
${stepBlock()}
${range(icb)
  .flatMap((i) => range(rowKw - 1).map((kx) => `      ${xv(i, kx)} = ${xv(i, kx + 1)};`))
  .join('\n')}
      ix++;
      dyo++;
    }`;
  return {
    key: `conv2d/dw/oc${ocb}/ic${icb}/row${rowKw}/sg${sub ? 1 : 0}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: DW_WG,
    wgsl: () => /* wgsl */ `${sub ? 'enable subgroups;' : ''}
${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@compute @workgroup_size(${DW_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>${
          sub ? ',\n        @builtin(subgroup_invocation_id) sl: u32, @builtin(subgroup_size) ss: u32' : ''
        }) {
  let t = linear_id(gid, groups, ${DW_WG}u);
  let valid = t < u.total;
  let tt = min(t, u.total - 1u);
  let khw = u.kh * u.kw;
${
  rowKw > 0
    ? `  let ky = tt % u.kh;
  let icl0 = (tt / u.kh) * ${icb}u;
  let kx = 0u;
  let tap = ky * u.kw;`
    : `  let tap = tt % khw;
  let icl0 = (tt / khw) * ${icb}u;
  let ky = tap / u.kw;
  let kx = tap % u.kw;`
}
  let p = wid.z % u.parts;
  let ob = wid.z / u.parts;
  let g = ob / u.ocb_pg;
  let ocl0 = (ob % u.ocb_pg) * ${ocb}u;
  let plane = u.hout * u.wout;
  let hw = u.h * u.w;
${range(icb)
  .map((i) => `  let xc${i} = (g * u.cin_pg + min(icl0 + ${i}u, u.cin_pg - 1u)) * hw;`)
  .join('\n')}
${range(ocb)
  .map((o) => `  let dyc${o} = (g * u.cout_pg + min(ocl0 + ${o}u, u.cout_pg - 1u)) * plane;`)
  .join('\n')}
${
  sub
    ? range(Math.ceil(ocb / SB))
        .map(
          (k) =>
            `  let dyl${k} = (g * u.cout_pg + min(ocl0 + ${k * SB}u + sl % ${SB}u, u.cout_pg - 1u)) * plane;`,
        )
        .join('\n')
    : ''
}
${range(ocb)
  .flatMap((o) => range(icb).flatMap((i) => range(taps).map((kx) => `  var ${acc(o, i, kx)} = 0.0;`)))
  .join('\n')}
  let offy = i32(ky * u.dh) - u.pt;
  let offx = i32(kx * u.dw) - u.pl;
  let hi = i32(u.h);
  let wi = i32(u.w);
  let start = p * u.chunk;
  let end = min(start + u.chunk, u.n * plane);
  let nn = start / plane;
  let s = start % plane;
  var oy = s / u.wout;
  var ox = s % u.wout;
  var xn = nn * u.cin * hw;
  var dyn = nn * u.cout * plane;
  var r = start;
  let swi = i32(u.sw);
  // Row by row (uniform), then along the row with incremental offsets.
  loop {
    if (r >= end) { break; }
    let iy = i32(oy * u.sh) + offy;
    let rowok = iy >= 0 && iy < hi;
    let xrow = xn + u32(clamp(iy, 0, hi - 1)) * u.w;
    let cnt = min(end - r, u.wout - ox);
${rowKw > 0 ? windowRow() : genericRow()}
    r += cnt;
    ox = 0u;
    oy++;
    if (oy == u.hout) {
      oy = 0u;
      xn += u.cin * hw;
      dyn += u.cout * plane;
    }
  }
  if (!valid) { return; }
${range(ocb)
  .flatMap((o) =>
    range(icb).map(
      (i) => `  if (ocl0 + ${o}u < u.cout_pg && icl0 + ${i}u < u.cin_pg) {
    let at${o}_${i} = (((g * u.cout_pg + ocl0 + ${o}u) * u.cin_pg + icl0 + ${i}u) * khw + tap) * u.parts + p;
${range(taps)
  .map((kx) => `    partial[at${o}_${i} + ${kx}u * u.parts] = ${acc(o, i, kx)};`)
  .join('\n')}
  }`,
    ),
  )
  .join('\n')}
}`,
  };
}

/** out[i] = Σ_p partial[i·parts + p]. */
const foldSource: KernelSource = {
  key: 'conv2d/fold',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
  if (t >= u.total) { return; }
  var acc = 0.0;
  let base = t * u.parts;
  for (var p = 0u; p < u.parts; p++) { acc += partial[base + p]; }
  out[t] = acc;
}`,
};

/** Workgroups a split reduction aims for (enough to keep both cores' SIMD lanes busy). */
const TARGET_WORKGROUPS = 128;
/** Smallest reduction chunk worth its own invocation. */
const MIN_CHUNK = 64;

/** Splits a reduction of `rsize` terms into parts, given `workgroups` per part and `outputs` sums. */
function splitReduction(
  device: Device,
  rsize: number,
  workgroups: number,
  outputs: number,
  maxParts: number,
): { parts: number; chunk: number } {
  let parts = Math.min(Math.ceil(rsize / MIN_CHUNK), Math.ceil(TARGET_WORKGROUPS / workgroups));
  parts = Math.min(parts, maxParts, Math.floor(device.limits.maxStorageBufferBindingSize / (4 * outputs)));
  parts = Math.max(1, parts);
  const chunk = Math.ceil(rsize / parts);
  return { parts: Math.ceil(rsize / chunk), chunk };
}

function fold(device: Device, partial: Tensor, g: ConvGeometry, shape: number[], parts: number): Tensor {
  const outputs = shape.reduce((a, b) => a * b, 1);
  const out = emptyTensor(device, shape);
  const u = uniforms(g, { ocb: 1, icb: 1, xblocks: 1, total: outputs, parts });
  launch(device, foldSource, [partial.buffer, out.buffer], u, outputs);
  partial.dispose();
  return out;
}

/** Weight-gradient register block: output channels × input channels per invocation (per filter tap). */
const DW_BLOCK = { oc: 16, ic: 4 };
/** Row-variant block (each with kernel-width accumulators); tuned for 3×3 on lavapipe. */
const DW_ROW_BLOCK = { oc: 8, ic: 2 };

export function conv2dWeightGrad(device: Device, dy: Tensor, x: Tensor, g: ConvGeometry): Tensor {
  const cinPg = g.cin / g.groups;
  const coutPg = g.cout / g.groups;
  const rowKw =
    g.sw === 1 && g.dw === 1 && g.kw > 1 && g.kw <= MAX_ROW_KW && convConfig.rowVariant ? g.kw : 0;
  const block = rowKw > 0 ? DW_ROW_BLOCK : DW_BLOCK;
  const ocb = channelBlock(coutPg, block.oc);
  // Row variant: ocb × icb × kw accumulators; keep them near 64 for wide kernels.
  const icb = channelBlock(cinPg, rowKw > 3 ? 1 : block.ic);
  const lanes = Math.ceil(cinPg / icb) * g.kh * (rowKw > 0 ? 1 : g.kw);
  const shape = [g.cout, cinPg, g.kh, g.kw];
  const outputs = g.cout * cinPg * g.kh * g.kw;
  const rsize = g.n * g.hout * g.wout;
  const blocks = g.groups * Math.ceil(coutPg / ocb);
  const maxZ = device.limits.maxComputeWorkgroupsPerDimension;
  if (blocks > maxZ)
    throw new Error(`conv2d weight grad: ${blocks} channel blocks exceed maxComputeWorkgroupsPerDimension`);
  const { parts, chunk } = splitReduction(
    device,
    rsize,
    blocks * Math.ceil(lanes / DW_WG),
    outputs,
    Math.floor(maxZ / blocks),
  );
  const partial = emptyTensor(device, parts === 1 ? shape : [outputs, parts]);
  const u = uniforms(g, { ocb, icb, xblocks: 1, total: lanes, parts, chunk });
  const source = weightGradSource(ocb, icb, device.hasSubgroups && convConfig.subgroups, rowKw);
  launchSliced(device, source, [dy.buffer, x.buffer, partial.buffer], u, lanes, blocks * parts);
  return parts === 1 ? partial : fold(device, partial, g, shape, parts);
}

// ---------------------------------------------------------------------------------------------
// Bias gradient: Σ dY over (n, oy, ox) per output channel, split like the weight gradient.

const biasGradSource: KernelSource = {
  key: 'conv2d/db',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
  if (t >= u.total) { return; }
  let p = t % u.parts;
  let c = t / u.parts;
  let plane = u.hout * u.wout;
  let start = p * u.chunk;
  let end = min(start + u.chunk, u.n * plane);
  var nn = start / plane;
  var s = start % plane;
  var base = (nn * u.cout + c) * plane;
  var acc = 0.0;
  for (var r = start; r < end; r++) {
    acc += dy[base + s];
    s++;
    if (s == plane) {
      s = 0u;
      base += u.cout * plane;
    }
  }
  partial[c * u.parts + p] = acc;
}`,
};

export function conv2dBiasGrad(device: Device, dy: Tensor, g: ConvGeometry): Tensor {
  const rsize = g.n * g.hout * g.wout;
  const { parts, chunk } = splitReduction(device, rsize, Math.ceil(g.cout / WG), g.cout, Infinity);
  const total = g.cout * parts;
  const partial = emptyTensor(device, parts === 1 ? [g.cout] : [g.cout, parts]);
  const u = uniforms(g, { ocb: 1, icb: 1, xblocks: 1, total, parts, chunk });
  launch(device, biasGradSource, [dy.buffer, partial.buffer], u, total);
  return parts === 1 ? partial : fold(device, partial, g, [g.cout], parts);
}
