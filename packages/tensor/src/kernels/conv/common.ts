import type { TuneCandidate } from '../../device/autotune.js';
import type { Access, Device, KernelSource } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import { emptyTensor, f32Type, gridFor, LINEAR_ID, launch, Uniforms } from '../launch.js';
import { pow2Class, tunedConfig } from '../tuned.js';
import { type GemmVariant, withGemmVariants } from './implicit-gemm.js';
import { isPointwise } from './pointwise.js';

/**
 * 2-D convolution on NCHW f32 tensors, weights [Cout, Cin/groups, KH, KW], as dedicated kernels:
 * forward, input gradient (gather form), weight gradient (split reduction + fold), bias gradient.
 * No atomics. Every shape and scalar travels in the uniform block; pipeline keys hold only the
 * register-blocking factors, whether a bias is bound and whether subgroups are used.
 */

export const WG = 64;
/**
 * Test hooks: `subgroups: false` exercises the plain weight-load path, `rowVariant: false` the
 * generic (any stride/dilation) forward and input-gradient kernels for stride-1 convolutions,
 * `depthwise: false` the grouped forward kernel for depthwise convolutions.
 */
export const convConfig = { subgroups: true, rowVariant: true, depthwise: true };
/** Lanes a weight block is spread over before subgroupBroadcast shares it (needs subgroup size ≥ SB). */
export const SB = 8;

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

export const range = (k: number) => Array.from({ length: k }, (_, i) => i);

/** A convolution pass's autotune class: its kernel family and geometry, sizes by powers of two. */
export function convShapeClass(pass: string, g: ConvGeometry): string {
  const kind = g.groups === 1 ? '' : g.groups === g.cin ? ' depthwise' : ` groups${g.groups}`;
  return (
    `${pass} n${g.n} ${pow2Class(g.cin)}->${pow2Class(g.cout)}${kind} k${g.kh}x${g.kw} ` +
    `s${g.sh}x${g.sw} d${g.dh}x${g.dw} ${pow2Class(g.h)}x${pow2Class(g.w)}`
  );
}

/**
 * A register block of the forward and input-gradient kernels: channels (output channels forward,
 * input channels for dX) × x positions per invocation.
 */
export interface RegisterBlock {
  readonly ch: number;
  readonly x: number;
}

/**
 * The blocks the autotuner times for those passes (on by default on GPUs), the default first:
 * 16 × 8, tuned on lavapipe. Against 16 × 4 (same session): the demo step's forward convolutions
 * 46–63 vs 73–76 ms of GPU time, its dX kernels 56–71 vs 73–76 ms; 4×128×16×32 3×3 forward 17 vs
 * 20–22 ms; 2×64×128×256 forward equal (134–142 ms), dX 129–132 vs 143–154 ms.
 */
export const REGISTER_BLOCKS: readonly RegisterBlock[] = [
  { ch: 16, x: 8 },
  { ch: 16, x: 4 },
  { ch: 8, x: 8 },
  { ch: 8, x: 4 },
  { ch: 32, x: 4 },
  { ch: 4, x: 8 },
];

/** A forward or input-gradient variant: a register block of the convolution kernel, or a GEMM. */
export type RegisterVariant = RegisterBlock | GemmVariant;

/** Those passes' candidates for this geometry: the register blocks and the GEMM variants. */
export function registerVariantCandidates(
  g: ConvGeometry,
  pointwiseAllowed: boolean,
): TuneCandidate<RegisterVariant>[] {
  return withGemmVariants<RegisterBlock>(
    REGISTER_BLOCKS.map((b) => namedBlock({ ...b })),
    g,
    pointwiseAllowed,
  );
}

/** The variant of a forward or input-gradient call: tuned for its class, else the default block. */
export function tunedRegisterBlock(
  device: Device,
  pass: 'conv2d/fwd' | 'conv2d/dx',
  g: ConvGeometry,
  scratch: readonly number[],
  run: (operands: readonly Tensor[], variant: RegisterVariant) => void,
  pointwiseAllowed: boolean,
): RegisterVariant {
  const fallback = REGISTER_BLOCKS[0] as RegisterBlock;
  return tunedConfig<RegisterVariant>(
    device,
    pass,
    () => convShapeClass(pass, g),
    fallback,
    () => registerVariantCandidates(g, pointwiseAllowed),
    scratch,
    run,
  );
}

/** An autotune candidate named by its fields (`ch16/x8` style). */
export function namedBlock<C extends Record<string, number>>(config: C): { name: string; config: C } {
  return {
    name: Object.entries(config)
      .map(([k, v]) => `${k}${v}`)
      .join('/'),
    config,
  };
}

/** The largest power of two ≤ min(channels, max): the channel block of a register tile. */
export function channelBlock(channels: number, max = 4): number {
  let block = 1;
  while (block * 2 <= Math.min(channels, max)) block *= 2;
  return block;
}

/** Dispatches `positions` invocations per (image, channel block) slice: x/y via gridFor, z = slices. */
export function launchSliced(
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
export function workgroupFor(positions: number): number {
  let wg = MIN_WG;
  while (wg < WG && wg < positions) wg *= 2;
  return wg;
}

/**
 * Register block along x: the tuned width, halved until it fits the row and leaves a subgroup of
 * lanes. Measured on lavapipe (batch 4, 3×3, 10 calls a sync): at 2×4 maps x4 (8 lanes a channel
 * block) beat x2 and x1 (16 and 32 lanes), 512→256 forward 2.7 → 1.5 ms and input gradient 2.8 →
 * 1.4 (x2: 1.8, 1.7): more outputs per load outweigh idle lanes. x1 for every row narrower than
 * the tuned width, as before, cost PP-LiteSeg-T's step at 4×3×64×128 6–8 %.
 */
export function rowBlock(rows: number, width: number, tuned: number): number {
  let xb = tuned;
  while (xb > 1 && (xb > width || rows * Math.ceil(width / xb) < MIN_WG)) xb = Math.floor(xb / 2);
  return xb;
}

/**
 * Whether lanes should span the images of the batch: when one image has fewer position blocks than
 * a full workgroup (the late, small maps), folding the batch in lets lanes use 4-wide x blocks and
 * share each weight load over more outputs.
 */
export function foldImages(images: number, blocksPerImage: number): boolean {
  return images > 1 && blocksPerImage < WG;
}

/**
 * Whether a 1×1 convolution (stride 1, no padding) runs in units of 4 positions along x: rows a
 * multiple of 4 wide, so x, dY and the results move as vec4s (on lavapipe a lane's load costs about
 * the same for 4 values as for 1). `convConfig.rowVariant: false` keeps the scalar kernels (tests).
 */
export function pointwiseVec4(g: ConvGeometry): boolean {
  return isPointwise(g) && g.w % 4 === 0 && convConfig.rowVariant;
}

/** `g` as a vec4 kernel walks it (rows of w / 4 vec4s) when `vec4`, else `g`. */
export function inVec4Units(g: ConvGeometry, vec4: boolean): ConvGeometry {
  return vec4 ? { ...g, w: g.w / 4, wout: g.wout / 4 } : g;
}

/** Widest kernel the forward's row variant unrolls. */
export const MAX_ROW_KW = 7;

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

/** Workgroups a split reduction aims for by default (enough to keep both cores' SIMD lanes busy). */
export const TARGET_WORKGROUPS = 128;
/** Smallest reduction chunk worth its own invocation. */
const MIN_CHUNK = 64;

/**
 * Splits a reduction of `rsize` terms into parts, given `workgroups` per part and `outputs` sums,
 * aiming for `target` workgroups in all.
 */
export function splitReduction(
  device: Device,
  rsize: number,
  workgroups: number,
  outputs: number,
  maxParts: number,
  target = TARGET_WORKGROUPS,
): { parts: number; chunk: number } {
  let parts = Math.min(Math.ceil(rsize / MIN_CHUNK), Math.ceil(target / workgroups));
  parts = Math.min(parts, maxParts, Math.floor(device.limits.maxStorageBufferBindingSize / (4 * outputs)));
  parts = Math.max(1, parts);
  const chunk = Math.ceil(rsize / parts);
  return { parts: Math.ceil(rsize / chunk), chunk };
}

export function fold(
  device: Device,
  partial: Tensor,
  g: ConvGeometry,
  shape: number[],
  parts: number,
): Tensor {
  const outputs = shape.reduce((a, b) => a * b, 1);
  const out = emptyTensor(device, shape);
  const u = uniforms(g, { ocb: 1, icb: 1, xblocks: 1, total: outputs, parts });
  launch(device, foldSource, [partial.buffer, out.buffer], u, outputs);
  partial.dispose();
  return out;
}

/**
 * A forward pass's buffers after the uniforms: x, weights, the bias when bound, the output (x and
 * the output as `array<vec4<f32>>` with `vec4`).
 */
export function forwardBindings(bias: boolean, vec4 = false): string {
  const element = f32Type(vec4);
  return [
    `@group(0) @binding(1) var<storage, read> x: array<${element}>;`,
    '@group(0) @binding(2) var<storage, read> wt: array<f32>;',
    ...(bias ? ['@group(0) @binding(3) var<storage, read> bs: array<f32>;'] : []),
    `@group(0) @binding(${bias ? 4 : 3}) var<storage, read_write> out: array<${element}>;`,
  ].join('\n');
}

/** The buffers `forwardBindings` declares, in order. */
export function forwardBuffers(x: Tensor, w: Tensor, bias: Tensor | null, out: Tensor): GPUBuffer[] {
  return bias ? [x.buffer, w.buffer, bias.buffer, out.buffer] : [x.buffer, w.buffer, out.buffer];
}

export function forwardAccess(bias: boolean): Access[] {
  return bias ? ['read', 'read', 'read', 'rw'] : ['read', 'read', 'rw'];
}
