import type { Device, KernelSource } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import { emptyTensor, f32Zero } from '../launch.js';
import {
  type ConvGeometry,
  channelBlock,
  convConfig,
  foldImages,
  forwardAccess,
  forwardBindings,
  forwardBuffers,
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
import { depthwiseFits, depthwiseForward } from './depthwise.js';
import { implicitGemmForward, isImplicitGemm } from './implicit-gemm.js';
import { POINTWISE_GEMM, pointwiseForward } from './pointwise.js';

// ---------------------------------------------------------------------------------------------
// Forward: one invocation = OCB output channels × XB consecutive output x positions of one row.
// The output-channel block and the image come from workgroup_id.z, so every weight index is
// workgroup-uniform. Lavapipe still pays a full per-lane load for a uniform address, so with the
// `subgroups` feature lane l loads filter l % SB and subgroupBroadcast shares it (≈2× faster);
// only the x reads are real per-lane gathers. Taps run outside, input channels inside, so the
// per-lane offsets and padding masks are computed once per tap. No divergent control flow before
// the stores (subgroupBroadcast needs every lane). Measured on lavapipe (2 vCPU): OCB 16 × XB 4
// beat 8×4, 16×2 and 8×8, and 16 × 8 beats 16 × 4 (REGISTER_BLOCKS in common.ts).

function forwardSource(
  ocb: number,
  xb: number,
  bias: boolean,
  sub: boolean,
  rowKw: number,
  wg: number,
  fold: boolean,
  vec4: boolean,
): KernelSource {
  const acc = (o: number, j: number) => `a${o}_${j}`;
  // vec4 (1×1, stride 1, no padding, widths multiples of 4): positions along x in units of 4, so x
  // is read and the output written as vec4s and each weight scales 4 outputs.
  const zero = f32Zero(vec4);
  const weight = (o: number) => (vec4 ? `vec4<f32>(w${o})` : `w${o}`);
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
  .map((v) => `      let x${v} = select(${zero}, x[p${v}], m${v});`)
  .join('\n')}
${range(rowKw)
  .map(
    (kx) => `      {
${weightsAt(broadcast, `wo + ${kx}u`)}
${range(ocb)
  .flatMap((o) =>
    range(xb).map((j) => `          ${acc(o, j)} = fma(x${j + kx}, ${weight(o)}, ${acc(o, j)});`),
  )
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
  .map((j) => `        let x${j} = select(${zero}, x[p${j}], m${j});`)
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
  .flatMap((o) => range(xb).map((j) => `        ${acc(o, j)} = fma(x${j}, ${weight(o)}, ${acc(o, j)});`))
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
    key: `conv2d/fwd/oc${ocb}/x${xb}/row${rowKw}/bias${bias ? 1 : 0}/sg${sub ? 1 : 0}/wg${wg}/fold${fold ? 1 : 0}${vec4 ? '/vec4' : ''}`,
    bindings: forwardAccess(bias),
    workgroupSize: wg,
    wgsl: () => /* wgsl */ `${sub ? 'enable subgroups;' : ''}
${UNIFORM_STRUCT}
${forwardBindings(bias, vec4)}
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
  .flatMap((o) => range(xb).map((j) => `  var ${acc(o, j)} = ${zero};`))
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

function forwardWith(
  device: Device,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  out: Tensor,
  g: ConvGeometry,
  block: RegisterBlock,
): void {
  const coutPg = g.cout / g.groups;
  const ocb = channelBlock(coutPg, block.ch);
  const vec4 = pointwiseVec4(g);
  // The vec4 kernel walks rows of w / 4 vec4s, a lane taking twice the tuned block's outputs. On
  // lavapipe, SegFormer-B0's 1024→256 fuse at 16×32, batch 4: 22.3–22.5 ms scalar, 16.2–16.7 with 4
  // vec4s a lane (2: 19.0–19.4, 8: 30–31); PP-LiteSeg-T's 1×1 shapes 1.06–1.24 → 0.83 ms (64→128 at
  // 16×32), 1.69–1.91 → 1.30–1.40, 1.47–1.63 → 1.26, 0.86 → 0.70.
  const walked = inVec4Units(g, vec4);
  const blockX = vec4 ? Math.max(1, block.x / 2) : block.x;
  const fold = foldImages(g.n, g.hout * Math.ceil(walked.wout / blockX));
  const rows = fold ? g.n * g.hout : g.hout;
  const xb = rowBlock(rows, walked.wout, blockX);
  const xblocks = Math.ceil(walked.wout / xb);
  const positions = rows * xblocks;
  const slices = (fold ? 1 : g.n) * g.groups * Math.ceil(coutPg / ocb);
  const u = uniforms(walked, { ocb, icb: 1, xblocks, total: positions });
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
      vec4,
    ),
    forwardBuffers(x, w, bias, out),
    u,
    positions,
    slices,
  );
}

export function conv2dForward(
  device: Device,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
): Tensor {
  if (depthwiseFits(g) && convConfig.depthwise) return depthwiseForward(device, x, w, bias, g);
  const outSize = g.n * g.cout * g.hout * g.wout;
  // The GEMM path has no bias epilogue: a biased 1×1 convolution keeps the convolution kernel.
  const run = (xs: Tensor, ws: Tensor, bs: Tensor | null, out: Tensor, variant: RegisterVariant) =>
    variant === POINTWISE_GEMM
      ? pointwiseForward(device, xs, ws, out, g)
      : isImplicitGemm(variant)
        ? implicitGemmForward(device, xs, ws, bs, out, g, variant)
        : forwardWith(device, xs, ws, bs, out, g, variant);
  const variant = tunedRegisterBlock(
    device,
    'conv2d/fwd',
    g,
    [x.size, w.size, ...(bias ? [bias.size] : []), outSize],
    ([sx, sw, sb, so], candidate) => {
      if (sx && sw && sb) run(sx, sw, so ? sb : null, so ?? sb, candidate);
    },
    bias === null,
  );
  const out = emptyTensor(device, [g.n, g.cout, g.hout, g.wout]);
  run(x, w, bias, out, variant);
  return out;
}
