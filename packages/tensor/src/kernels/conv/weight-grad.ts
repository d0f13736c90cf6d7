import type { TuneCandidate } from '../../device/autotune.js';
import type { Device, KernelSource } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import { emptyTensor, f32Type, f32Zero } from '../launch.js';
import { tunedConfig } from '../tuned.js';
import {
  type ConvGeometry,
  channelBlock,
  convConfig,
  convShapeClass,
  fold,
  inVec4Units,
  launchSliced,
  MAX_ROW_KW,
  namedBlock,
  pointwiseVec4,
  range,
  SB,
  splitReduction,
  TARGET_WORKGROUPS,
  UNIFORM_STRUCT,
  uniforms,
} from './common.js';
import { depthwiseWeightGrad } from './depthwise.js';
import {
  type GemmVariant,
  implicitGemmWeightGrad,
  isImplicitGemm,
  withGemmVariants,
} from './implicit-gemm.js';
import { POINTWISE_GEMM, pointwiseWeightGrad } from './pointwise.js';

// ---------------------------------------------------------------------------------------------
// Weight gradient: lanes = (input channel, filter tap) of one group; one invocation accumulates
// OCB output channels over one chunk of the (n, oy, ox) reduction. The chunk and the
// output-channel block come from workgroup_id.z, so the reduction position is workgroup-uniform:
// each lane gathers one x value per position, the OCB dY values are loaded once per subgroup and
// shared by subgroupBroadcast. A fold pass adds the chunks' partial sums.

/** Weight-gradient workgroup size: small, so (input-channel block × tap) lanes waste few slots. */
const DW_WG = 16;
/** On a CPU adapter: one SIMD group (lavapipe's subgroup size; see defaultWeightGradConfig). */
const SOFTWARE_DW_WG = 8;

function weightGradSource(
  ocb: number,
  icb: number,
  sub: boolean,
  rowKw: number,
  sw: number,
  wg: number,
  vec4: boolean,
): KernelSource {
  // Row variant (dilation 1 along x, kernel width rowKw and stride sw baked in): lanes are
  // (input-channel block, ky) and each invocation holds all rowKw taps of its row; along an output
  // row the x values form a sliding window that moves sw values a position, so sw new x values per
  // channel are loaded per position and the other rowKw − sw move down.
  // vec4 (1×1 convolutions, stride 1, no padding, widths multiples of 4): the generic kernel run in
  // units of 4 positions along x, so dY and x arrive as vec4s and a product is 4 fmas.
  const taps = Math.max(rowKw, 1);
  const acc = (o: number, i: number, kx: number) => `a${o}_${i}_${kx}`;
  const product = (d: string, xval: string, a: string) =>
    vec4
      ? `fma(${d}.w, ${xval}.w, fma(${d}.z, ${xval}.z, fma(${d}.y, ${xval}.y, fma(${d}.x, ${xval}.x, ${a}))))`
      : `fma(${d}, ${xval}, ${a})`;
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
      range(taps).map((kx) => `    ${acc(o, i, kx)} = ${product(`d${o}`, xv(i, kx), acc(o, i, kx))};`),
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
  .map((i) => `      let x${i} = select(${f32Zero(vec4)}, x[xo + xc${i}], m);`)
  .join('\n')}
${stepBlock()}
      ix += swi;
      dyo++;
    }`;
  // Window slots below `carried` come from the previous position; the rest are loaded at each.
  const carried = Math.max(rowKw - sw, 0);
  const loaded = range(rowKw - carried).map((j) => carried + j);
  const windowRow = () => `    var ix = i32(ox * ${sw}u) + offx;
    var dyo = dyn + oy * u.wout + ox;
${range(carried)
  .map(
    (kx) => `    let xo${kx} = xrow + u32(clamp(ix + ${kx}, 0, wi - 1));
    let m${kx} = rowok && ix + ${kx} >= 0 && ix + ${kx} < wi;
${range(icb)
  .map((i) => `    var ${xv(i, kx)} = select(0.0, x[xo${kx} + xc${i}], m${kx});`)
  .join('\n')}`,
  )
  .join('\n')}
${range(icb)
  .flatMap((i) => loaded.map((kx) => `    var ${xv(i, kx)} = 0.0;`))
  .join('\n')}
    for (var k = 0u; k < cnt; k++) {
${loaded
  .map(
    (kx) => `      let jx${kx} = ix + ${kx};
      let jo${kx} = xrow + u32(clamp(jx${kx}, 0, wi - 1));
      let jm${kx} = rowok && jx${kx} >= 0 && jx${kx} < wi;
${range(icb)
  .map((i) => `      ${xv(i, kx)} = select(0.0, x[jo${kx} + xc${i}], jm${kx});`)
  .join('\n')}`,
  )
  .join('\n')}
${stepBlock()}
${range(icb)
  .flatMap((i) => range(carried).map((kx) => `      ${xv(i, kx)} = ${xv(i, kx + sw)};`))
  .join('\n')}
      ix += ${sw};
      dyo++;
    }`;
  return {
    key: `conv2d/dw/oc${ocb}/ic${icb}/row${rowKw}${sw > 1 && rowKw > 0 ? `s${sw}` : ''}${vec4 ? '/vec4' : ''}/sg${sub ? 1 : 0}${wg === DW_WG ? '' : `/wg${wg}`}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: wg,
    wgsl: () => /* wgsl */ `${sub ? 'enable subgroups;' : ''}
${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> dy: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read> x: array<${f32Type(vec4)}>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>${
          sub ? ',\n        @builtin(subgroup_invocation_id) sl: u32, @builtin(subgroup_size) ss: u32' : ''
        }) {
  let t = linear_id(gid, groups, ${wg}u);
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

/** Weight-gradient register block: output channels × input channels per invocation (per filter tap). */
const DW_BLOCK = { oc: 16, ic: 4 };
/**
 * Row-variant block (each with kernel-width accumulators); tuned for 3×3 on lavapipe: in the demo's
 * training step (GPU time of all weight-gradient kernels, 3 interleaved runs) 8×2: 83–92 ms,
 * 16×2: 71–82 ms.
 */
const DW_ROW_BLOCK = { oc: 16, ic: 2 };

/** A weight-gradient launch: register block, workgroup size and the workgroups the split aims for. */
interface WeightGradConfig {
  readonly oc: number;
  readonly ic: number;
  readonly wg: number;
  readonly target: number;
}

/**
 * Workgroups a split aims for on a CPU adapter: fewer than a GPU's default, so small maps split
 * their reduction less and more of them skip the fold dispatch. PP-LiteSeg-T's step at 4×3×64×128,
 * 6 interleaved runs of 15 steps: 141–149 ms (median 143.5) against 138–158 ms (149) with 128,
 * faster in 4 of 6 pairs and a lower minimum in 5; its 21 weight-gradient shapes alone 28.3–30.0
 * ms against 31.2–32.7 (3 runs each); the 2×64×128×256 benchmark shape unchanged.
 */
const SOFTWARE_TARGET_WORKGROUPS = 32;

/**
 * The untuned launch: the row or generic block, TARGET_WORKGROUPS in all, 16-lane workgroups on a
 * GPU. A CPU adapter gets SOFTWARE_TARGET_WORKGROUPS of one SIMD group (8 lanes): with few input
 * channels 16 lanes mostly idle (PP-LiteSeg-T's 3→32 stem at 4×3×64×128, 6 lanes: 1.22–1.31 →
 * 0.72–0.80 ms on lavapipe, one run 1.04), elsewhere equal or better (its 21 weight-gradient
 * shapes 25.8–26.6 → 25.1–25.7 ms in all; the 1×1 vec4 path, SegFormer-B0's 1024→256 fuse at
 * 16×32 and four PP-LiteSeg-T shapes: 19.3 / 0.92 / 1.37 / 1.48 / 1.16 ms against 19.5 / 1.01 /
 * 1.73 / 1.53 / 1.12; 2×64×128×256 3×3 unchanged, 89.7–92.0 ms).
 */
function defaultWeightGradConfig(rowKw: number, software = false): WeightGradConfig {
  const target = software ? SOFTWARE_TARGET_WORKGROUPS : TARGET_WORKGROUPS;
  return { ...(rowKw > 0 ? DW_ROW_BLOCK : DW_BLOCK), wg: software ? SOFTWARE_DW_WG : DW_WG, target };
}

/**
 * The autotuner's candidates (on by default on GPUs): the GPU default first, then the CPU adapters'
 * (one SIMD group, fewer workgroups), then what GPUs may want: full warps (64 lanes) and far more
 * workgroups than a CPU's two cores.
 */
function weightGradConfigs(rowKw: number): WeightGradConfig[] {
  const block = defaultWeightGradConfig(rowKw);
  const configs: WeightGradConfig[] = [block, defaultWeightGradConfig(rowKw, true)];
  for (const [oc, ic, wg, target] of [
    [block.oc, block.ic, 64, TARGET_WORKGROUPS],
    [block.oc, block.ic, DW_WG, 1024],
    [block.oc, block.ic, 64, 1024],
    [8, 2, 64, 1024],
    [8, 4, 64, 4096],
  ] as const)
    configs.push({ oc, ic, wg, target });
  return configs;
}

/**
 * The row variant's kernel width, or 0 for the generic kernel. Horizontal strides up to the kernel
 * width take it too: PP-LiteSeg-T's two stride-2 3×3 weight gradients on lavapipe, 4×3×64×128 → 32:
 * 1.45–1.50 → 1.21–1.26 ms, 4×32×32×64 → 64: 2.04–2.17 → 1.58–1.67 ms (3 interleaved runs).
 */
const weightGradRowKw = (g: ConvGeometry) =>
  g.sw <= g.kw && g.dw === 1 && g.kw > 1 && g.kw <= MAX_ROW_KW && convConfig.rowVariant ? g.kw : 0;

function weightGradWith(
  device: Device,
  dy: Tensor,
  x: Tensor,
  g: ConvGeometry,
  config: WeightGradConfig,
): Tensor {
  const cinPg = g.cin / g.groups;
  const coutPg = g.cout / g.groups;
  const rowKw = weightGradRowKw(g);
  // 1×1: x and dY 4 positions a load (a lane's 4 input channels: 4 loads where it gathered 16
  // values); on lavapipe SegFormer-B0's 1024→256 fuse at 16×32, batch 4, 33.6 → 19.3 ms,
  // PP-LiteSeg-T's 1×1 shapes 1.41 → 0.92 (64→128 at 16×32), 1.73 → 1.37, 2.08 → 1.48, 1.43 → 1.16.
  const vec4 = pointwiseVec4(g);
  // The vec4 kernel walks rows of w / 4 vec4s.
  const walked = inVec4Units(g, vec4);
  const ocb = channelBlock(coutPg, config.oc);
  // Row variant: ocb × icb × kw accumulators; keep them near 64 for wide kernels.
  const icb = channelBlock(cinPg, rowKw > 3 ? 1 : config.ic);
  const lanes = Math.ceil(cinPg / icb) * g.kh * (rowKw > 0 ? 1 : g.kw);
  const shape = [g.cout, cinPg, g.kh, g.kw];
  const outputs = g.cout * cinPg * g.kh * g.kw;
  const rsize = walked.n * walked.hout * walked.wout;
  const blocks = g.groups * Math.ceil(coutPg / ocb);
  const maxZ = device.limits.maxComputeWorkgroupsPerDimension;
  if (blocks > maxZ)
    throw new Error(`conv2d weight grad: ${blocks} channel blocks exceed maxComputeWorkgroupsPerDimension`);
  const { parts, chunk } = splitReduction(
    device,
    rsize,
    blocks * Math.ceil(lanes / config.wg),
    outputs,
    Math.floor(maxZ / blocks),
    config.target,
  );
  const partial = emptyTensor(device, parts === 1 ? shape : [outputs, parts]);
  const u = uniforms(walked, { ocb, icb, xblocks: 1, total: lanes, parts, chunk });
  const source = weightGradSource(
    ocb,
    icb,
    device.hasSubgroups && convConfig.subgroups,
    rowKw,
    g.sw,
    config.wg,
    vec4,
  );
  launchSliced(device, source, [dy.buffer, x.buffer, partial.buffer], u, lanes, blocks * parts);
  return parts === 1 ? partial : fold(device, partial, g, shape, parts);
}

/** A weight-gradient variant: a launch of the convolution kernel, or a GEMM. */
type WeightGradVariant = WeightGradConfig | GemmVariant;

/** The weight gradient's autotune candidates for this geometry, the default first. */
export function weightGradCandidates(g: ConvGeometry): TuneCandidate<WeightGradVariant>[] {
  return withGemmVariants<WeightGradConfig>(
    weightGradConfigs(weightGradRowKw(g)).map((c) => namedBlock({ ...c })),
    g,
  );
}

export function conv2dWeightGrad(device: Device, dy: Tensor, x: Tensor, g: ConvGeometry): Tensor {
  const depthwise = convConfig.depthwise ? depthwiseWeightGrad(device, dy, x, g) : null;
  if (depthwise) return depthwise;
  const run = (dys: Tensor, xs: Tensor, variant: WeightGradVariant) =>
    variant === POINTWISE_GEMM
      ? pointwiseWeightGrad(device, dys, xs, g)
      : isImplicitGemm(variant)
        ? implicitGemmWeightGrad(device, dys, xs, g, variant)
        : weightGradWith(device, dys, xs, g, variant);
  const variant = tunedConfig<WeightGradVariant>(
    device,
    'conv2d/dw',
    () => convShapeClass('conv2d/dw', g),
    defaultWeightGradConfig(weightGradRowKw(g), device.software),
    () => weightGradCandidates(g),
    [dy.size, x.size],
    ([sdy, sx], candidate) => {
      if (sdy && sx) run(sdy, sx, candidate).dispose();
    },
  );
  return run(dy, x, variant);
}
