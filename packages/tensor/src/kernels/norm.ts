import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import {
  emptyTensor,
  FAST_DIV,
  f32Type,
  f32Zero,
  LINEAR_ID,
  launch,
  launchVec4,
  perComponent,
  Uniforms,
  vec4Main,
} from './launch.js';
import { reduceTo } from './reduce.js';

/** Invocations per workgroup for the looping (reduction) kernels. */
const WG = 64;
/** Invocations per workgroup for the one-per-element kernels. */
const EWG = 256;
/** Elements one invocation folds into a partial sum before the partials are folded again. */
export const NORM_CHUNK = 1024;

const MAIN = (wg: number) => `${LINEAR_ID}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${wg}u);`;

/** The uniforms every channelChunkFold kernel starts with: n, c, hw, parts, chunk (the kernel's own follow). */
function chunkFoldUniforms(n: number, c: number, hw: number, parts: number): Uniforms {
  return new Uniforms().u32(n).u32(c).u32(hw).u32(parts).u32(NORM_CHUNK);
}

/** Runs of a chunk that channelChunkFold opens and closes around its updates (WGSL). */
interface FoldBlocks {
  readonly size: number;
  readonly open: string;
  readonly close: string;
}

/**
 * The main() of both partial-sum kernels: invocation t = (ch, p) folds positions [p·chunk, …) of
 * channel ch of an NCHW tensor, then writes its two sums to rows ch and C+ch of a [2C, parts]
 * buffer. `setup` declares the accumulators; `body(at)` updates them with one position's values,
 * `at(array)` being that position's value of one of the `reads` arrays. With `blocks`, the
 * positions go in runs of `blocks.size`, each between `open` and `close`. With `vec4` (HW a
 * multiple of 4, the `reads` arrays declared as vec4s), each step loads 4 positions at once and
 * runs `body` on them in order, so the sums are the scalar walk's bit for bit with a quarter of
 * the loads (a load per lane is what lavapipe pays for). `finish`, when given, replaces the two
 * writes at the end.
 */
function channelChunkFold(
  setup: string,
  body: (at: (array: string) => string) => string,
  sums: readonly [string, string],
  reads: readonly string[],
  vec4: boolean,
  blocks: FoldBlocks = { size: NORM_CHUNK, open: '', close: '' },
  finish: string | null = null,
): string {
  const step = vec4
    ? `      let o = ((nn * u.c + ch) * u.hw + i) / 4u;
${reads.map((a) => `      let ${a}4 = ${a}[o];`).join('\n')}
${perComponent(
  true,
  (c) => `      {
${body((a) => `${a}4${c}`)}
      }`,
)}`
    : `      let o = (nn * u.c + ch) * u.hw + i;
${body((a) => `${a}[o]`)}`;
  const width = vec4 ? 4 : 1;
  return `${MAIN(WG)}
  if (t >= u.c * u.parts) { return; }
  let ch = t / u.parts;
  let p = t % u.parts;
  let start = p * u.chunk;
  let end = min(start + u.chunk, u.n * u.hw);
${setup}
  var nn = start / u.hw;
  var i = start % u.hw;
  for (var first = start; first < end; first += ${blocks.size}u) {
${blocks.open}
    for (var r = first; r < min(first + ${blocks.size}u, end); r += ${width}u) {
${step}
      i += ${width}u;
      if (i == u.hw) { i = 0u; nn++; }
    }
${blocks.close}
  }
${
  finish ??
  `  out[ch * u.parts + p] = ${sums[0]};
  out[(u.c + ch) * u.parts + p] = ${sums[1]};`
}`;
}

/**
 * Test hooks: `vec4: false` runs the BatchNorm partial-sum kernels one position a step where 4
 * would go, and LayerNorm's kernels one value a step; `singleChunk: false` merges a single chunk's
 * statistics in a dispatch of their own; `fuseSingle: false` normalises (and computes the input
 * gradient) in a dispatch of its own where a CPU adapter would fuse it into the single-chunk
 * statistics (gradient sums) kernel.
 */
export const normConfig = { vec4: true, singleChunk: true, fuseSingle: true };

/** Whether BatchNorm's partial-sum kernels read 4 positions a step (H·W a multiple of 4). */
const bnVec4 = (hw: number) => hw % 4 === 0 && normConfig.vec4;

/**
 * Welford's running mean drifts by a rounding per update; updating blocks of this many values
 * and merging the blocks (Chan) cuts the updates any one mean sees from 1024 to 32 + 32: mean
 * errors 2-5x lower than one walk per chunk (norm.test.ts), near the float32 rounding of the mean.
 */
const BN_BLOCK = 32;

/** WGSL: Chan et al.'s merge of two (count, mean, M2) summaries, the second one not empty. */
const CHAN_MERGE = /* wgsl */ `
fn chan_merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  let d = b.y - a.y;
  return vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x * b.x / n));
}`;

/**
 * Per-channel statistics of an NCHW tensor, part 1: invocation (ch, p) runs Welford's update over
 * positions [p·chunk, …) of channel ch, in blocks of BN_BLOCK merged in order, and writes that
 * chunk's mean to row ch and its M2 (Σ of squared deviations from its own mean) to row C+ch of a
 * [2C, parts] buffer. Unlike one-pass
 * Σx and Σx² (even shifted by one sample), this loses no precision when the mean is far from the
 * spread: the float64 audit of OCRNet put that one-pass BatchNorm at up to 1.6e-5 relative error.
 * `single` ('stats', 'running'): one chunk per channel, so the kernel writes the final statistics
 * (and updates the running ones) itself, as part 2 would from that one chunk.
 */
const bnStatsPartialSource = (
  vec4: boolean,
  single: 'partial' | 'stats' | 'running',
  apply: { relu: boolean } | null = null,
): KernelSource => ({
  key: `norm/bn-stats-welford${vec4 ? '4' : ''}${single === 'partial' ? '' : `/single${single === 'running' ? '/running' : ''}`}${apply ? `/apply${apply.relu ? '/relu' : ''}` : ''}`,
  bindings: [
    'read',
    'rw',
    ...(single === 'running' ? (['rw', 'rw'] as const) : []),
    ...(apply ? (['read', 'read', 'rw'] as const) : []),
  ],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32, c: u32, hw: u32, parts: u32, chunk: u32, momentum: f32${apply ? ', eps: f32' : ''} }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${
  single === 'running'
    ? `@group(0) @binding(3) var<storage, read_write> rmean: array<f32>;
@group(0) @binding(4) var<storage, read_write> rvar: array<f32>;`
    : ''
}${
  apply
    ? `
@group(0) @binding(${single === 'running' ? 5 : 3}) var<storage, read> w: array<f32>;
@group(0) @binding(${single === 'running' ? 6 : 4}) var<storage, read> b: array<f32>;
@group(0) @binding(${single === 'running' ? 7 : 5}) var<storage, read_write> y: array<${f32Type(vec4)}>;`
    : ''
}
${CHAN_MERGE}
${channelChunkFold(
  '  var total = vec3<f32>(0.0);',
  (at) => `      let v = ${at('x')};
      k += 1.0;
      let d = v - mean;
      mean += d / k;
      m2 += d * (v - mean);`,
  ['total.y', 'total.z'],
  ['x'],
  vec4,
  {
    size: BN_BLOCK,
    open: `    var k = 0.0;
    var mean = 0.0;
    var m2 = 0.0;`,
    close: '    total = chan_merge(total, vec3<f32>(k, mean, m2));',
  },
  // One chunk per channel (t = ch): its summary is the channel's, written as the merge would.
  single === 'partial'
    ? null
    : `  let variance = max(total.z / total.x, 0.0);
  out[ch] = total.y;
  out[u.c + ch] = variance;${single === 'running' ? updateRunning('total.y', 'variance') : ''}${
    apply
      ? `
  let inv = 1.0 / sqrt(variance + u.eps);
${channelWalk(vec4, (o) => `    y[${o}] = ${normalized(`x[${o}]`, 'total.y', 'w[ch]', 'b[ch]', apply.relu, vec4)};`)}`
      : ''
  }`,
)}
}`,
});

/**
 * WGSL: runs `body(o)` for every element (vec4) index o of channel ch, image by image (a second
 * pass over the channel, after channelChunkFold's walk, in the same invocation).
 */
function channelWalk(vec4: boolean, body: (o: string) => string): string {
  const per = vec4 ? 'u.hw / 4u' : 'u.hw';
  return `  for (var img = 0u; img < u.n; img++) {
    let first = (img * u.c + ch) * ${per};
    for (var o = first; o < first + ${per}; o++) {
${body('o')}
    }
  }`;
}

/** WGSL: BatchNorm's output for input `x` (`inv` = 1/sqrt(var + eps) in scope), after a fused ReLU. */
const normalized = (x: string, mean: string, w: string, b: string, relu: boolean, vec4: boolean) => {
  const v = `(${x} - ${mean}) * inv * ${w} + ${b}`;
  return relu ? `max(${v}, ${f32Zero(vec4)})` : v;
};

/** WGSL: channel t's running statistics (`rmean`, `rvar`) take in this batch's `mean` and `variance`. */
const updateRunning = (mean: string, variance: string) => `
  rmean[t] = u.momentum * rmean[t] + (1.0 - u.momentum) * ${mean};
  rvar[t] = u.momentum * rvar[t] + (1.0 - u.momentum) * ${variance};`;

/**
 * Part 2, per channel: merges the chunks' (count, mean, M2) in order (Chan et al.'s pairwise
 * update) → stats [mean(C), biased var(C)]. With `running`, the same lane also updates the running
 * statistics, running = momentum·running + (1 − momentum)·batch (Paddle's convention: momentum
 * weighs the old value): one dispatch less per BatchNorm, which on lavapipe costs more than the
 * update itself.
 */
function bnStatsFinalSource(running: boolean): KernelSource {
  return {
    key: `norm/bn-stats-merge${running ? '/running' : ''}`,
    bindings: running ? ['read', 'rw', 'rw', 'rw'] : ['read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { c: u32, parts: u32, chunk: u32, total: u32, momentum: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
${
  running
    ? `@group(0) @binding(3) var<storage, read_write> rmean: array<f32>;
@group(0) @binding(4) var<storage, read_write> rvar: array<f32>;`
    : ''
}
${CHAN_MERGE}
${MAIN(WG)}
  if (t >= u.c) { return; }
  // Chunks merge into blocks of ${BN_BLOCK}, blocks into the total: as in the chunks, no mean
  // takes more than a block's worth of updates.
  var total = vec3<f32>(0.0);
  for (var first = 0u; first < u.parts; first += ${BN_BLOCK}u) {
    var block = vec3<f32>(0.0);
    for (var p = first; p < min(first + ${BN_BLOCK}u, u.parts); p++) {
      let count = f32(min(u.chunk, u.total - p * u.chunk));
      block = chan_merge(block, vec3<f32>(count, partial[t * u.parts + p], partial[(u.c + t) * u.parts + p]));
    }
    total = chan_merge(total, block);
  }
  let mean = total.y;
  let variance = max(total.z / total.x, 0.0);
  stats[t] = mean;
  stats[u.c + t] = variance;${running ? updateRunning('mean', 'variance') : ''}
}`,
  };
}

/** running = momentum·running + (1 − momentum)·batch, from stats computed elsewhere (SyncBatchNorm's global ones). */
const bnRunningSource: KernelSource = {
  key: 'norm/bn-running',
  bindings: ['read', 'rw', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { c: u32, momentum: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> rmean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rvar: array<f32>;
${MAIN(WG)}
  if (t >= u.c) { return; }${updateRunning('stats[t]', 'stats[u.c + t]')}
}`,
};

/**
 * An NCHW one-pass kernel: `body` runs per element index `t` (per vec4 index when `vec4`: the
 * spatial size is a multiple of 4, so a vec4 never straddles two channels); `ch` is its channel,
 * found by fast divisions (the kernel's uniforms end with `PER_CHANNEL_FIELDS`).
 */
function perChannelMain(vec4: boolean, body: string): string {
  const channel = '    let plane = fdiv(t, u.div_hw);\n    let ch = plane - fdiv(plane, u.div_c) * u.c;';
  return `${FAST_DIV}\n${
    vec4
      ? vec4Main(EWG, 'u.total / 4u', `    let t = i;\n${channel}\n${body}`)
      : `${MAIN(EWG)}\n  if (t >= u.total) { return; }\n${channel}\n${body}\n}`
  }`;
}

/** The uniform fields `perChannelMain` reads, last in the kernel's struct (`launchPerChannel` fills them). */
const PER_CHANNEL_FIELDS = 'div_hw: vec4<u32>, div_c: vec4<u32>';

/** Launches a `perChannelMain` kernel over an NCHW tensor's elements. */
function launchPerChannel(
  device: Device,
  source: (vec4: boolean) => KernelSource,
  buffers: readonly GPUBuffer[],
  u: Uniforms,
  total: number,
  hw: number,
  c: number,
): void {
  const vec4 = hw % 4 === 0;
  u.divisor(vec4 ? hw / 4 : hw).divisor(c);
  if (vec4) launchVec4(device, source(true), buffers, u, total / 4);
  else launch(device, source(false), buffers, u, total);
}

/** y = (x − mean[c]) / sqrt(var[c] + eps) · w[c] + b[c], then max(y, 0) with `relu` (a fused ReLU). */
const bnApplySource = (vec4: boolean, relu: boolean): KernelSource => ({
  key: `norm/bn-apply${vec4 ? '4' : ''}${relu ? '/relu' : ''}`,
  bindings: ['read', 'read', 'read', 'read', 'rw'],
  workgroupSize: EWG,
  wgsl: () => /* wgsl */ `
struct U { total: u32, c: u32, hw: u32, eps: f32, ${PER_CHANNEL_FIELDS} }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<${f32Type(vec4)}>;
${perChannelMain(
  vec4,
  `  let inv = 1.0 / sqrt(stats[u.c + ch] + u.eps);
  y[t] = ${normalized('x[t]', 'stats[ch]', 'w[ch]', 'b[ch]', relu, vec4)};`,
)}`,
});

/**
 * Backward partials per (channel, chunk): Σ g to row ch, Σ g·x̂ to row C+ch of [2C, parts]. With
 * `relu`, g passes only where the fused output `m` is positive (the ReLU's gradient).
 */
const bnGradPartialSource = (relu: boolean, vec4: boolean, input = false): KernelSource => ({
  key: `norm/bn-grad-partial${vec4 ? '4' : ''}${relu ? '/relu' : ''}${input ? '/input' : ''}`,
  bindings: [
    'read',
    'read',
    'read',
    ...(relu ? (['read'] as const) : []),
    'rw',
    ...(input ? (['read', 'rw'] as const) : []),
  ],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32, c: u32, hw: u32, parts: u32, chunk: u32, eps: f32${input ? ', count: f32' : ''} }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read> g: array<${f32Type(vec4)}>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
${relu ? `@group(0) @binding(4) var<storage, read> m: array<${f32Type(vec4)}>;\n` : ''}@group(0) @binding(${relu ? 5 : 4}) var<storage, read_write> out: array<f32>;${
    input
      ? `
@group(0) @binding(${relu ? 6 : 5}) var<storage, read> w: array<f32>;
@group(0) @binding(${relu ? 7 : 6}) var<storage, read_write> dx: array<${f32Type(vec4)}>;`
      : ''
  }
${channelChunkFold(
  `  let mean = stats[ch];
  let inv = 1.0 / sqrt(stats[u.c + ch] + u.eps);
  var sg = 0.0;
  var sgx = 0.0;`,
  (at) => `    let gv = ${relu ? `select(0.0, ${at('g')}, ${at('m')} > 0.0)` : at('g')};
    sg += gv;
    sgx += gv * (${at('x')} - mean) * inv;`,
  ['sg', 'sgx'],
  relu ? ['x', 'g', 'm'] : ['x', 'g'],
  vec4,
  undefined,
  // One chunk per channel (t = ch): the sums are final, and the same invocation goes on to dX.
  input
    ? `  out[ch] = sg;
  out[u.c + ch] = sgx;
${channelWalk(
  vec4,
  (o) => `    var d = ${maskedGrad(`g[${o}]`, `m[${o}]`, relu, vec4)};
${trainingInputGrad(`x[${o}]`, 'mean', 'sg', 'sgx')}
    dx[${o}] = w[ch] * inv * d;`,
)}`
    : null,
)}
}`,
});

/** WGSL: the gradient `g` BatchNorm's output passes back, after a fused ReLU whose output is `m`. */
const maskedGrad = (g: string, m: string, relu: boolean, vec4: boolean) =>
  relu ? `select(${f32Zero(vec4)}, ${g}, ${m} > ${f32Zero(vec4)})` : g;

/** WGSL: `d` (the output's gradient) becomes dX / (w·inv) under batch statistics, Σg = `sg`, Σg·x̂ = `sgx`. */
const trainingInputGrad = (
  x: string,
  mean: string,
  sg: string,
  sgx: string,
) => `    let xhat = (${x} - ${mean}) * inv;
    d = d - ${sg} / u.count - xhat * ${sgx} / u.count;`;

/**
 * dX. Training (batch statistics): w·inv·(g − Σg/n − x̂·Σ(g·x̂)/n). Eval (running statistics,
 * constants): w·inv·g.
 */
const bnGradInputSource = (vec4: boolean, relu: boolean): KernelSource => ({
  key: `norm/bn-grad-input${vec4 ? '4' : ''}${relu ? '/relu' : ''}`,
  bindings: relu
    ? ['read', 'read', 'read', 'read', 'read', 'read', 'rw']
    : ['read', 'read', 'read', 'read', 'read', 'rw'],
  workgroupSize: EWG,
  wgsl: () => /* wgsl */ `
struct U { total: u32, c: u32, hw: u32, training: u32, eps: f32, count: f32, ${PER_CHANNEL_FIELDS} }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read> g: array<${f32Type(vec4)}>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> gsums: array<f32>;
${relu ? `@group(0) @binding(6) var<storage, read> m: array<${f32Type(vec4)}>;\n` : ''}@group(0) @binding(${relu ? 7 : 6}) var<storage, read_write> dx: array<${f32Type(vec4)}>;
${perChannelMain(
  vec4,
  `  let inv = 1.0 / sqrt(stats[u.c + ch] + u.eps);
  var d = ${maskedGrad('g[t]', 'm[t]', relu, vec4)};
  if (u.training != 0u) {
${trainingInputGrad('x[t]', 'stats[ch]', 'gsums[ch]', 'gsums[u.c + ch]')}
  }
  dx[t] = w[ch] * inv * d;`,
)}`,
});

/** Folds a [rows, parts] partial buffer to a [rows] tensor (parallel over rows, chunked over parts). */
function foldPartials(device: Device, partial: Tensor, rows: number, parts: number): Tensor {
  if (parts === 1) return partial;
  const folded = reduceTo(device, partial, [rows, 1], 'sum');
  partial.dispose();
  const out = emptyTensor(device, [rows]);
  device.copy(folded.buffer, 0, out.buffer, 0, out.bytes);
  folded.dispose();
  return out;
}

function nchw(x: Tensor, op: string): [number, number, number] {
  if (x.rank < 2) throw new Error(`${op}: input must be [N, C, ...], got [${x.shape.join(', ')}]`);
  const n = x.shape[0] ?? 1;
  const c = x.shape[1] ?? 1;
  return [n, c, x.size / (n * c)];
}

/** Running statistics a training step updates, and how much of their old value it keeps. */
export interface BnRunning {
  readonly mean: Tensor;
  readonly variance: Tensor;
  readonly momentum: number;
}

/**
 * Per-channel [mean (C), biased variance (C)] over N and the spatial dims of an NCHW tensor; with
 * `running`, also updates those running statistics in the same dispatch.
 */
export function bnStats(device: Device, x: Tensor, running?: BnRunning): Tensor {
  const [n, c, hw] = nchw(x, 'batchNorm2d');
  const total = n * hw;
  const parts = Math.max(1, Math.ceil(total / NORM_CHUNK));
  const vec4 = bnVec4(hw);
  const u = chunkFoldUniforms(n, c, hw, parts).f32(running?.momentum ?? 0);
  if (parts === 1 && normConfig.singleChunk) {
    // One chunk per channel: the Welford kernel writes the statistics itself, a dispatch less.
    const stats = emptyTensor(device, [2 * c]);
    const buffers = [x.buffer, stats.buffer];
    if (running) buffers.push(running.mean.buffer, running.variance.buffer);
    launch(device, bnStatsPartialSource(vec4, running ? 'running' : 'stats'), buffers, u, c);
    return stats;
  }
  const partial = emptyTensor(device, [2 * c, parts]);
  launch(device, bnStatsPartialSource(vec4, 'partial'), [x.buffer, partial.buffer], u, c * parts);
  const stats = emptyTensor(device, [2 * c]);
  const merge = new Uniforms()
    .u32(c)
    .u32(parts)
    .u32(NORM_CHUNK)
    .u32(total)
    .f32(running?.momentum ?? 0);
  const buffers = [partial.buffer, stats.buffer];
  if (running) buffers.push(running.mean.buffer, running.variance.buffer);
  launch(device, bnStatsFinalSource(running !== undefined), buffers, merge, c);
  partial.dispose();
  return stats;
}

/**
 * Whether a training BatchNorm over `count` positions a channel fuses its normalisation into the
 * statistics kernel (and its input gradient into the gradient-sums kernel): one chunk a channel on
 * a CPU adapter, where a dispatch costs 35–45 µs of thread hand-off (lavapipe) and the invocation
 * that summed a channel walks it a second time for less (PP-LiteSeg-T's step at 4×3×64×128:
 * 143–162 ms fused, 159–171 ms not, interleaved). On a GPU that second walk would be one lane per
 * channel: unmeasured there, so GPUs keep the separate dispatches.
 */
function fusesSingleChunk(device: Device, count: number): boolean {
  return device.software && count <= NORM_CHUNK && normConfig.singleChunk && normConfig.fuseSingle;
}

/**
 * A training BatchNorm's forward: batch statistics [mean (C), biased variance (C)], the running
 * statistics updated, and y = (x − mean)/sqrt(var + eps)·w + b (then a ReLU with `relu`).
 */
export function bnTrainForward(
  device: Device,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  running: BnRunning,
  eps: number,
  relu: boolean,
): { y: Tensor; stats: Tensor } {
  const [n, c, hw] = nchw(x, 'batchNorm2d');
  if (!fusesSingleChunk(device, n * hw)) {
    const stats = bnStats(device, x, running);
    return { y: bnApply(device, x, stats, weight, bias, eps, relu), stats };
  }
  const stats = emptyTensor(device, [2 * c]);
  const y = emptyTensor(device, x.shape);
  const u = chunkFoldUniforms(n, c, hw, 1).f32(running.momentum).f32(eps);
  const buffers = [x.buffer, stats.buffer, running.mean.buffer, running.variance.buffer];
  buffers.push(weight.buffer, bias.buffer, y.buffer);
  launch(device, bnStatsPartialSource(bnVec4(hw), 'running', { relu }), buffers, u, c);
  return { y, stats };
}

/**
 * A training BatchNorm's backward under its batch statistics: `gsums` = [Σg (C), Σg·x̂ (C)] (dBias,
 * dWeight) and, with `input`, dX. `reluOut`: the fused BN+ReLU output, whose positive entries let g
 * through.
 */
export function bnTrainGrad(
  device: Device,
  x: Tensor,
  g: Tensor,
  stats: Tensor,
  weight: Tensor,
  eps: number,
  reluOut: Tensor | null,
  input: boolean,
): { gsums: Tensor; dx: Tensor | null } {
  const [n, c, hw] = nchw(x, 'batchNorm2d');
  if (!input || !fusesSingleChunk(device, n * hw)) {
    const gsums = bnGradSums(device, x, g, stats, eps, reluOut);
    const dx = input ? bnGradInput(device, x, g, stats, weight, gsums, eps, true, reluOut) : null;
    return { gsums, dx };
  }
  const gsums = emptyTensor(device, [2 * c]);
  const dx = emptyTensor(device, x.shape);
  const u = chunkFoldUniforms(n, c, hw, 1)
    .f32(eps)
    .f32(n * hw);
  const buffers = [x.buffer, g.buffer, stats.buffer, ...(reluOut ? [reluOut.buffer] : [])];
  buffers.push(gsums.buffer, weight.buffer, dx.buffer);
  launch(device, bnGradPartialSource(reluOut !== null, bnVec4(hw), true), buffers, u, c);
  return { gsums, dx };
}

/** In-place running-statistics update from a [2C] stats tensor. */
export function bnUpdateRunning(
  device: Device,
  stats: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  momentum: number,
): void {
  const c = runningMean.size;
  const u = new Uniforms().u32(c).f32(momentum);
  launch(device, bnRunningSource, [stats.buffer, runningMean.buffer, runningVar.buffer], u, c);
}

export function bnApply(
  device: Device,
  x: Tensor,
  stats: Tensor,
  weight: Tensor,
  bias: Tensor,
  eps: number,
  relu = false,
): Tensor {
  const [, c, hw] = nchw(x, 'batchNorm2d');
  const y = emptyTensor(device, x.shape);
  const u = new Uniforms().u32(x.size).u32(c).u32(hw).f32(eps);
  launchPerChannel(
    device,
    (vec4) => bnApplySource(vec4, relu),
    [x.buffer, stats.buffer, weight.buffer, bias.buffer, y.buffer],
    u,
    x.size,
    hw,
    c,
  );
  return y;
}

/**
 * Per-channel [Σg (C), Σg·x̂ (C)] as a [2C] tensor: dBias and dWeight. `reluOut`: the fused
 * BN+ReLU output, whose positive entries let g through.
 */
export function bnGradSums(
  device: Device,
  x: Tensor,
  g: Tensor,
  stats: Tensor,
  eps: number,
  reluOut: Tensor | null = null,
): Tensor {
  const [n, c, hw] = nchw(x, 'batchNorm2d');
  const parts = Math.max(1, Math.ceil((n * hw) / NORM_CHUNK));
  const partial = emptyTensor(device, [2 * c, parts]);
  const u = chunkFoldUniforms(n, c, hw, parts).f32(eps);
  const mask = reluOut ? [reluOut.buffer] : [];
  launch(
    device,
    bnGradPartialSource(reluOut !== null, bnVec4(hw)),
    [x.buffer, g.buffer, stats.buffer, ...mask, partial.buffer],
    u,
    c * parts,
  );
  return foldPartials(device, partial, 2 * c, parts);
}

export function bnGradInput(
  device: Device,
  x: Tensor,
  g: Tensor,
  stats: Tensor,
  weight: Tensor,
  gsums: Tensor,
  eps: number,
  training: boolean,
  reluOut: Tensor | null = null,
): Tensor {
  const [n, c, hw] = nchw(x, 'batchNorm2d');
  const dx = emptyTensor(device, x.shape);
  const u = new Uniforms()
    .u32(x.size)
    .u32(c)
    .u32(hw)
    .u32(training ? 1 : 0)
    .f32(eps)
    .f32(n * hw);
  launchPerChannel(
    device,
    (vec4) => bnGradInputSource(vec4, reluOut !== null),
    [
      x.buffer,
      g.buffer,
      stats.buffer,
      weight.buffer,
      gsums.buffer,
      ...(reluOut ? [reluOut.buffer] : []),
      dx.buffer,
    ],
    u,
    x.size,
    hw,
    c,
  );
  return dx;
}

// ---------------------------------------------------------------------------------------------
// LayerNorm over the last dimension.

/**
 * One invocation per row: two passes (mean, then centred variance), writes y and [mean, rstd].
 * `vec4` (D a multiple of 4): loads 4 values a step and adds them in the scalar walk's order (the
 * same bits with a quarter of the per-lane loads, which is what lavapipe pays for).
 */
const lnForwardSource = (vec4: boolean): KernelSource => ({
  key: `norm/ln-forward${vec4 ? '4' : ''}`,
  bindings: ['read', 'read', 'read', 'rw', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { rows: u32, d: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read> w: array<${f32Type(vec4)}>;
@group(0) @binding(3) var<storage, read> b: array<${f32Type(vec4)}>;
@group(0) @binding(4) var<storage, read_write> y: array<${f32Type(vec4)}>;
@group(0) @binding(5) var<storage, read_write> rowstats: array<f32>;
${MAIN(WG)}
  if (t >= u.rows) { return; }
  let n = u.d${vec4 ? ' / 4u' : ''};
  let base = t * n;
  var s = 0.0;
  for (var i = 0u; i < n; i++) { let v = x[base + i]; ${perComponent(vec4, (c) => `s += v${c};`)} }
  let mean = s / f32(u.d);
  var s2 = 0.0;
  for (var i = 0u; i < n; i++) { let v = x[base + i] - mean; ${perComponent(vec4, (c) => `s2 += v${c} * v${c};`)} }
  let rstd = 1.0 / sqrt(s2 / f32(u.d) + u.eps);
  for (var i = 0u; i < n; i++) { y[base + i] = (x[base + i] - mean) * rstd * w[i] + b[i]; }
  rowstats[2u * t] = mean;
  rowstats[2u * t + 1u] = rstd;
}`,
});

/** dX per row: rstd·(g·w − mean(g·w) − x̂·mean(g·w·x̂)); `vec4` as in the forward. */
const lnGradInputSource = (vec4: boolean): KernelSource => ({
  key: `norm/ln-grad-input${vec4 ? '4' : ''}`,
  bindings: ['read', 'read', 'read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { rows: u32, d: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read> g: array<${f32Type(vec4)}>;
@group(0) @binding(3) var<storage, read> w: array<${f32Type(vec4)}>;
@group(0) @binding(4) var<storage, read> rowstats: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<${f32Type(vec4)}>;
${MAIN(WG)}
  if (t >= u.rows) { return; }
  let n = u.d${vec4 ? ' / 4u' : ''};
  let base = t * n;
  let mean = rowstats[2u * t];
  let rstd = rowstats[2u * t + 1u];
  var a = 0.0;
  var c = 0.0;
  for (var i = 0u; i < n; i++) {
    let gw = g[base + i] * w[i];
    let gwx = gw * (x[base + i] - mean) * rstd;
    ${perComponent(vec4, (k) => `a += gw${k}; c += gwx${k};`)}
  }
  let fd = f32(u.d);
  for (var i = 0u; i < n; i++) {
    let xhat = (x[base + i] - mean) * rstd;
    dx[base + i] = rstd * (g[base + i] * w[i] - a / fd - xhat * c / fd);
  }
}`,
});

/**
 * dW/dB partials per (column, chunk of rows): Σ g·x̂ to row col, Σ g to row D+col of [2D, parts].
 * `vec4`: an invocation takes 4 neighbouring columns (each summed over the rows as before).
 */
const lnGradParamPartialSource = (vec4: boolean): KernelSource => ({
  key: `norm/ln-grad-param-partial${vec4 ? '4' : ''}`,
  bindings: ['read', 'read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { rows: u32, d: u32, parts: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<${f32Type(vec4)}>;
@group(0) @binding(2) var<storage, read> g: array<${f32Type(vec4)}>;
@group(0) @binding(3) var<storage, read> rowstats: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${MAIN(WG)}
  let n = u.d${vec4 ? ' / 4u' : ''};
  if (t >= n * u.parts) { return; }
  // Consecutive invocations take consecutive columns of the same chunk (coalesced reads).
  let col = t % n;
  let p = t / n;
  let start = p * u.chunk;
  let end = min(start + u.chunk, u.rows);
  var sgx = ${f32Zero(vec4)};
  var sg = ${f32Zero(vec4)};
  for (var r = start; r < end; r++) {
    let o = r * n + col;
    let gv = g[o];
    sg += gv;
    sgx += gv * (x[o] - rowstats[2u * r]) * rowstats[2u * r + 1u];
  }
${perComponent(vec4, (c, k) => {
  const column = vec4 ? `4u * col + ${k}u` : 'col';
  return `  out[(${column}) * u.parts + p] = sgx${c};
  out[(u.d + ${column}) * u.parts + p] = sg${c};`;
})}
}`,
});

/** Whether LayerNorm's kernels read rows of `d` values as vec4s. */
const lnVec4 = (d: number) => d % 4 === 0 && normConfig.vec4;

/** Row-chunk length for LayerNorm parameter gradients. */
const LN_ROW_CHUNK = 256;

export function lnForward(
  device: Device,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  eps: number,
): { y: Tensor; rowstats: Tensor } {
  const d = x.shape[x.rank - 1] ?? 1;
  const rows = x.size / d;
  const y = emptyTensor(device, x.shape);
  const rowstats = emptyTensor(device, [rows, 2]);
  const u = new Uniforms().u32(rows).u32(d).f32(eps);
  launch(
    device,
    lnForwardSource(lnVec4(d)),
    [x.buffer, weight.buffer, bias.buffer, y.buffer, rowstats.buffer],
    u,
    rows,
  );
  return { y, rowstats };
}

export function lnGradInput(device: Device, x: Tensor, g: Tensor, weight: Tensor, rowstats: Tensor): Tensor {
  const d = x.shape[x.rank - 1] ?? 1;
  const rows = x.size / d;
  const dx = emptyTensor(device, x.shape);
  const u = new Uniforms().u32(rows).u32(d);
  launch(
    device,
    lnGradInputSource(lnVec4(d)),
    [x.buffer, g.buffer, weight.buffer, rowstats.buffer, dx.buffer],
    u,
    rows,
  );
  return dx;
}

/** [Σ g·x̂ (D), Σ g (D)] over all rows: dWeight then dBias. */
export function lnGradParams(device: Device, x: Tensor, g: Tensor, rowstats: Tensor): Tensor {
  const d = x.shape[x.rank - 1] ?? 1;
  const rows = x.size / d;
  const parts = Math.max(1, Math.ceil(rows / LN_ROW_CHUNK));
  const partial = emptyTensor(device, [2 * d, parts]);
  const u = new Uniforms().u32(rows).u32(d).u32(parts).u32(LN_ROW_CHUNK);
  const vec4 = lnVec4(d);
  launch(
    device,
    lnGradParamPartialSource(vec4),
    [x.buffer, g.buffer, rowstats.buffer, partial.buffer],
    u,
    (vec4 ? d / 4 : d) * parts,
  );
  return foldPartials(device, partial, 2 * d, parts);
}
