import type { Device, KernelSource } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import { emptyTensor, f32Type, f32Zero } from '../launch.js';
import {
  type ConvGeometry,
  channelBlock,
  convConfig,
  foldImages,
  inVec4Units,
  launchSliced,
  MAX_ROW_KW,
  pointwiseVec4,
  type RegisterBlock,
  type RegisterVariant,
  range,
  rowBlock,
  SB,
  tunedRegisterBlock,
  UNIFORM_STRUCT,
  uniforms,
  workgroupFor,
} from './common.js';
import { depthwiseInputGrad } from './depthwise.js';
import { implicitGemmInputGrad, isImplicitGemm } from './implicit-gemm.js';
import { POINTWISE_GEMM, pointwiseInputGrad } from './pointwise.js';

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
  vec4: boolean,
): KernelSource {
  const acc = (i: number, j: number) => `a${i}_${j}`;
  // vec4: as the forward's (1×1, stride 1, no padding, widths multiples of 4).
  const zero = f32Zero(vec4);
  const weight = (i: number) => (vec4 ? `vec4<f32>(w${i})` : `w${i}`);
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
  .map((v) => `      let g${v} = select(${zero}, dy[p${v}], m${v});`)
  .join('\n')}
${range(rowKw)
  .map(
    (kx) => `      {
${weightsAt(broadcast, `wo + ${kx}u`)}
${range(icb)
  .flatMap((i) =>
    range(xb).map((j) => `          ${acc(i, j)} = fma(g${j + rowKw - 1 - kx}, ${weight(i)}, ${acc(i, j)});`),
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
  .map((j) => `        let g${j} = select(${zero}, dy[p${j}], m${j});`)
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
  .flatMap((i) => range(xb).map((j) => `        ${acc(i, j)} = fma(g${j}, ${weight(i)}, ${acc(i, j)});`))
  .join('\n')}
${range(xb)
  .map((j) => `        p${j} += plane;`)
  .join('\n')}
        wo += fsize;
      }`;
  return {
    key: `conv2d/dx/ic${icb}/x${xb}/row${rowKw}/sg${sub ? 1 : 0}/wg${wg}/fold${fold ? 1 : 0}${vec4 ? '/vec4' : ''}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: wg,
    wgsl: () => /* wgsl */ `${sub ? 'enable subgroups;' : ''}
${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> dy: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<${f32Type(vec4)}>;
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
  .flatMap((i) => range(xb).map((j) => `  var ${acc(i, j)} = ${zero};`))
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

function inputGradWith(
  device: Device,
  dy: Tensor,
  w: Tensor,
  out: Tensor,
  g: ConvGeometry,
  block: RegisterBlock,
): void {
  const cinPg = g.cin / g.groups;
  const icb = channelBlock(cinPg, block.ch);
  // 1×1: rows of w / 4 vec4s, a lane taking twice the tuned block's values (as the forward). On
  // lavapipe, SegFormer-B0's 1024→256 fuse at 16×32, batch 4: 20.4–21.6 → 15.8–16.3 ms;
  // PP-LiteSeg-T's 1×1 shapes 0.92–0.96 → 0.73–0.77 ms (64→128 at 16×32), 1.53–1.58 → 1.25–1.31,
  // 1.45–1.51 → 1.26–1.27, 0.97–0.99 → 0.87–0.88, 0.90–0.97 → 0.71, 0.59–0.62 → 0.53.
  const vec4 = pointwiseVec4(g);
  const walked = inVec4Units(g, vec4);
  const blockX = vec4 ? Math.max(1, block.x / 2) : block.x;
  // Per stride class: ceil(h/sh) rows of ceil(w/sw) positions (at most).
  const classW = Math.ceil(walked.w / g.sw);
  const classH = Math.ceil(g.h / g.sh);
  const fold = foldImages(g.n, classH * Math.ceil(classW / blockX));
  const rows = fold ? g.n * classH : classH;
  const xb = rowBlock(rows, classW, blockX);
  const xblocks = Math.ceil(classW / xb);
  const positions = rows * xblocks;
  const slices = (fold ? 1 : g.n) * g.groups * Math.ceil(cinPg / icb) * g.sh * g.sw;
  const u = uniforms(walked, { ocb: 1, icb, xblocks, total: positions, chunk: classH });
  const rowKw = g.sw === 1 && g.dw === 1 && g.kw <= MAX_ROW_KW && convConfig.rowVariant ? g.kw : 0;
  const source = inputGradSource(
    icb,
    xb,
    device.hasSubgroups && convConfig.subgroups,
    rowKw,
    workgroupFor(positions),
    fold,
    vec4,
  );
  launchSliced(device, source, [dy.buffer, w.buffer, out.buffer], u, positions, slices);
}

export function conv2dInputGrad(device: Device, dy: Tensor, w: Tensor, g: ConvGeometry): Tensor {
  const depthwise = convConfig.depthwise ? depthwiseInputGrad(device, dy, w, g) : null;
  if (depthwise) return depthwise;
  const outSize = g.n * g.cin * g.h * g.w;
  const run = (dys: Tensor, ws: Tensor, out: Tensor, variant: RegisterVariant) =>
    variant === POINTWISE_GEMM
      ? pointwiseInputGrad(device, dys, ws, out, g)
      : isImplicitGemm(variant)
        ? implicitGemmInputGrad(device, dys, ws, out, g, variant)
        : inputGradWith(device, dys, ws, out, g, variant);
  const variant = tunedRegisterBlock(
    device,
    'conv2d/dx',
    g,
    [dy.size, w.size, outSize],
    ([sdy, sw, so], candidate) => {
      if (sdy && sw && so) run(sdy, sw, so, candidate);
    },
    true,
  );
  const out = emptyTensor(device, [g.n, g.cin, g.h, g.w]);
  run(dy, w, out, variant);
  return out;
}
