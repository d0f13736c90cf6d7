import type { TuneCandidate } from '../device/autotune.js';
import type { Access, Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { reshapeInto, Uniforms } from './launch.js';
import { reduceTo } from './reduce.js';
import { pow2Class } from './tuned.js';

/**
 * One tiled GEMM, C[b](m, n) = Σ_k A[b](m, k) · B[b](k, n), whose operand loads and result store are
 * injected WGSL. matmul and linear layers are this kernel, and so are the convolution passes' GEMM
 * candidates (conv/implicit-gemm.ts: loads that gather the unfolded input, no im2col buffer);
 * epilogues (bias, activation) live in `store`.
 *
 * Layout, tuned on lavapipe (FIELD-NOTES): each invocation keeps a TM×TN register tile; a
 * workgroup row of WX invocations is one subgroup, whose lanes own interleaved columns
 * (`col = base + j·WX + lane`) so B loads and C stores are contiguous across lanes, and each lane
 * loads one A value per k that `subgroupBroadcast` shares with the others.
 */
export interface GemmSpec {
  /** Cache key: everything structural in the injected code. */
  readonly key: string;
  /** Access of the storage bindings 1..n, declared in `decls`. */
  readonly bindings: readonly Access[];
  /** Extra uniform fields after `m, n, k, batch, splits, k_chunk` (WGSL struct members, 4-byte scalars). */
  readonly uniformFields?: string;
  /** Binding declarations and helper functions. */
  readonly decls: string;
  /**
   * `fn load_a(b: u32, m: u32, k: u32) -> f32`, `fn load_b(b: u32, k: u32, n: u32) -> f32` and
   * `fn store_c(b: u32, m: u32, n: u32, v: f32)` bodies (full function definitions). With split-K,
   * store_c's `b` is split · batch + b: the matrix of a [splits, batch, m, n] partial buffer.
   */
  readonly functions: string;
  /** The index A's loads walk contiguously (`k` for row-major A, `m` for transposed); default `k`. */
  readonly aContiguous?: 'm' | 'k';
  /** The index B's loads walk contiguously (`n` for row-major B, `k` for transposed); default `n`. */
  readonly bContiguous?: 'k' | 'n';
}

export interface GemmTiling {
  readonly tm: number;
  readonly tn: number;
  readonly wx: number;
  readonly wy: number;
  /** Share A across a subgroup row (needs the subgroups feature and subgroup size == wx). */
  readonly subgroupA: boolean;
  /** k iterations per loop trip (the remainder runs one at a time). */
  readonly unroll?: number;
  /**
   * Stage k tiles of this depth in workgroup memory: the workgroup loads its (tm·wy)×bk slice of A
   * and bk×(tn·wx) slice of B once, cooperatively and along each operand's contiguous index, and
   * every lane reads its operands from there (how GPUs reuse loads; no subgroup sharing).
   */
  readonly bk?: number;
  /**
   * With bk: the k tiles held as vec4s, a lane reading its tm A values and tn B values as
   * (tm + tn) / 4 vec4s per k (tm, tn multiples of 4) and owning its B columns in runs of 4
   * (`col = base + (j / 4 · wx + lane) · 4 + j % 4`), where a scalar lane makes tm + tn reads.
   */
  readonly vec4?: boolean;
  /**
   * With bk: the next k tile is loaded from memory into registers before the current one is
   * multiplied, and written to workgroup memory after, so the loads' latency hides behind the FMAs
   * (what GPU GEMMs call double buffering, here through registers).
   */
  readonly prefetch?: boolean;
}

/** The register tile side of large results on subgroup adapters. */
const LARGE_TILE = 16;

/** The adapter's subgroup size when subgroups are on and it is fixed (a row can be one subgroup); else 0. */
function fixedSubgroupSize(device: Device): number {
  const size = device.subgroupMinSize;
  return device.hasSubgroups && size === device.subgroupMaxSize ? size : 0;
}

/**
 * The tiling for this device and an m×n result: subgroup sharing when the subgroup size is fixed
 * and small enough (lavapipe), with 16×16 register tiles when the result fills them. Measured on
 * lavapipe, GEMM 1024³ (3 interleaved runs each): 8×8 22.2–23.4 GFLOP/s, 16×8 26.5–28.1, 32×8
 * 27.9–29.4, 16×16 27.0–34.5: more FMAs per per-lane B load. Narrow results keep 8×8 tiles,
 * which waste fewer lanes at the edges.
 */
export function gemmTiling(device: Device, m: number, n: number): GemmTiling {
  const sg = fixedSubgroupSize(device);
  if (sg < 8 || sg > 16) return { tm: 8, tn: 8, wx: 8, wy: 8, subgroupA: false };
  const wy = Math.max(1, 16 / sg);
  const large = m >= LARGE_TILE * wy && n >= LARGE_TILE * sg;
  return { tm: large ? LARGE_TILE : 8, tn: large ? LARGE_TILE : 8, wx: sg, wy, subgroupA: true };
}

/** A tiling's name in kernel keys and the autotune cache. */
export function tilingName(t: GemmTiling): string {
  const staged = `shared${t.bk}${t.vec4 ? 'v4' : ''}${t.prefetch ? 'p' : ''}`;
  const sharing = t.bk ? staged : t.subgroupA ? 'sg' : 'plain';
  return `${t.tm}x${t.tn}/${t.wx}x${t.wy}/${sharing}/u${t.unroll ?? 1}`;
}

/**
 * Tilings that stage k tiles in workgroup memory (see GemmTiling.bk), within WebGPU's guaranteed
 * limits (256 lanes, 16 KiB of workgroup memory), so every adapter runs them.
 */
export const STAGED_TILINGS: readonly GemmTiling[] = (
  [
    [4, 4, 16, 16, 16, false, false],
    [8, 8, 8, 8, 16, false, false],
    [8, 4, 16, 16, 16, false, false],
    [4, 8, 16, 16, 16, false, false],
    [8, 8, 16, 16, 8, false, false],
    [8, 8, 16, 16, 8, false, true],
    [8, 8, 16, 16, 8, true, true],
    [8, 8, 16, 16, 16, true, true],
    [4, 4, 16, 16, 16, true, true],
  ] as const
).map(([tm, tn, wx, wy, bk, vec4, prefetch]) => ({
  tm,
  tn,
  wx,
  wy,
  subgroupA: false,
  bk,
  ...(vec4 ? { vec4 } : {}),
  ...(prefetch ? { prefetch } : {}),
}));

/**
 * Tilings the autotuner times for an m×n result, the default (`gemmTiling`) first. Subgroup rows
 * where the adapter's subgroup size is fixed; plain workgroups of 64–256 lanes with 4×4 to 8×8
 * register tiles, loading from memory or from k tiles staged in workgroup memory (what GPUs
 * favour), everywhere.
 */
export function gemmCandidates(device: Device, m: number, n: number): TuneCandidate<GemmTiling>[] {
  const maxLanes = device.limits.maxComputeInvocationsPerWorkgroup;
  const tilings: GemmTiling[] = [gemmTiling(device, m, n)];
  const sg = fixedSubgroupSize(device);
  if (sg >= 8 && sg <= 64)
    for (const [tm, tn] of [
      [8, 8],
      [16, 8],
      [16, 16],
    ] as const)
      for (const wy of [Math.max(1, 16 / sg), Math.max(2, 64 / sg)])
        tilings.push({ tm, tn, wx: sg, wy, subgroupA: true });
  for (const [tm, tn, wx, wy] of [
    [8, 8, 8, 8],
    [4, 4, 16, 16],
    [8, 4, 16, 16],
    [4, 8, 16, 16],
    [8, 8, 16, 16],
    [4, 4, 16, 8],
  ] as const)
    tilings.push({ tm, tn, wx, wy, subgroupA: false });
  tilings.push(...STAGED_TILINGS);
  const seen = new Set<string>();
  const sharedBytes = (t: GemmTiling) => (t.tm * t.wy + t.tn * t.wx) * (t.bk ?? 0) * 4;
  return tilings
    .filter((t) => t.wx * t.wy <= maxLanes && sharedBytes(t) <= device.limits.maxComputeWorkgroupStorageSize)
    .map((config) => ({ name: tilingName(config), config }))
    .filter(({ name }) => !seen.has(name) && seen.add(name));
}

/** The autotune class of a GEMM: its kernel family and each size rounded up to a power of two. */
export function gemmShapeClass(family: string, m: number, n: number, k: number, batch: number): string {
  return `${family} m${pow2Class(m)} n${pow2Class(n)} k${pow2Class(k)}${batch > 1 ? ' batched' : ''}`;
}

/** `0, 1, …, n − 1`. */
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** A tile element: a float of a scalar tile, or a component of a vec4 tile (t.vec4). */
function tileAt(t: GemmTiling, tile: string, width: number, kk: string, i: string): string {
  return t.vec4
    ? `${tile}[${kk} * ${width / 4}u + ${i} / 4u][${i} % 4u]`
    : `${tile}[${kk} * ${width}u + ${i}]`;
}

/**
 * The k loop of a tiling that stages k tiles of depth t.bk in workgroup memory (see GemmTiling.bk),
 * loading the next tile into registers while the current one is multiplied when t.prefetch.
 */
function stagedLoop(spec: GemmSpec, t: GemmTiling, bk: number, step: (k: string) => string): string {
  const [bm, bn, lanes] = [t.tm * t.wy, t.tn * t.wx, t.wx * t.wy];
  // Tile element e → (tile row or column, k offset), contiguous along the operand's memory order.
  const aAt = spec.aContiguous === 'm' ? [`e % ${bm}u`, `e / ${bm}u`] : [`e / ${bk}u`, `e % ${bk}u`];
  const bAt = spec.bContiguous === 'k' ? [`e / ${bk}u`, `e % ${bk}u`] : [`e % ${bn}u`, `e / ${bn}u`];
  const operands = [
    {
      name: 'a',
      slots: Math.ceil((bm * bk) / lanes),
      size: bm * bk,
      index: `let r = ${aAt[0]}; let kk = ${aAt[1]};`,
      tile: tileAt(t, 'tile_a', bm, 'kk', 'r'),
      load: (kt: string) => `load_a(batch, min(tile_row + r, u.m - 1u), min(${kt} + kk, u.k - 1u))`,
    },
    {
      name: 'b',
      slots: Math.ceil((bk * bn) / lanes),
      size: bk * bn,
      index: `let c = ${bAt[0]}; let kk = ${bAt[1]};`,
      tile: tileAt(t, 'tile_b', bn, 'kk', 'c'),
      load: (kt: string) => `load_b(batch, min(${kt} + kk, u.k - 1u), min(tile_col + c, u.n - 1u))`,
    },
  ];
  // One statement per tile element a lane moves: `body(operand, slot)` with e, the index and kk in scope.
  const perSlot = (body: (o: (typeof operands)[number], l: number) => string) =>
    operands
      .flatMap((o) =>
        range(o.slots).map((l) => {
          const guard = (l + 1) * lanes > o.size ? `if (e < ${o.size}u) ` : '';
          return `{ let e = lidx + ${l * lanes}u; ${guard}{ ${o.index} ${body(o, l)} } }`;
        }),
      )
      .join('\n    ');
  const head = `let lidx = lid.y * ${t.wx}u + lid.x;
  let tile_row = wg.y * ${bm}u;
  let tile_col = wg.x * ${bn}u;`;
  const multiply = `let kn = min(${bk}u, k_end - kt);
    for (var kk = 0u; kk < kn; kk++) ${step('kk')}`;
  if (!t.prefetch)
    return `${head}
  for (var kt = k_start; kt < k_end; kt += ${bk}u) {
    ${perSlot((o) => `${o.tile} = ${o.load('kt')};`)}
    workgroupBarrier();
    ${multiply}
    workgroupBarrier();
  }`;
  const fetch = (kt: string) => perSlot((o, l) => `p${o.name}${l} = ${o.load(kt)};`);
  return `${head}
  ${operands.flatMap((o) => range(o.slots).map((l) => `var p${o.name}${l} = 0.0;`)).join(' ')}
  ${fetch('k_start')}
  for (var kt = k_start; kt < k_end; kt += ${bk}u) {
    ${perSlot((o, l) => `${o.tile} = p${o.name}${l};`)}
    workgroupBarrier();
    if (kt + ${bk}u < k_end) {
      let next = kt + ${bk}u;
      ${fetch('next')}
    }
    ${multiply}
    workgroupBarrier();
  }`;
}

export function gemmSource(spec: GemmSpec, t: GemmTiling): KernelSource {
  if ((t.vec4 || t.prefetch) && !t.bk)
    throw new Error(`gemm tiling ${tilingName(t)}: vec4 and prefetch need bk`);
  if (t.vec4 && (t.tm % 4 !== 0 || t.tn % 4 !== 0))
    throw new Error(`gemm tiling ${tilingName(t)}: vec4 tiles need tm and tn multiples of 4`);
  const acc = Array.from({ length: t.tm * t.tn }, (_, i) => `var c${i} = 0.0;`).join(' ');
  const bk = t.bk ?? 0;
  // One k step: A values (shared across the subgroup row when possible), B values, the FMAs.
  const step = (k: string): string => {
    const lines: string[] = ['{'];
    if (bk > 0 && t.vec4) {
      for (let v = 0; v < t.tm / 4; v++)
        lines.push(`let av${v} = tile_a[${k} * ${(t.tm * t.wy) / 4}u + lid.y * ${t.tm / 4}u + ${v}u];`);
      for (let i = 0; i < t.tm; i++) lines.push(`let a${i} = av${i >> 2}.${'xyzw'[i % 4]};`);
    } else if (bk > 0) {
      for (let i = 0; i < t.tm; i++)
        lines.push(`let a${i} = tile_a[${k} * ${t.tm * t.wy}u + lid.y * ${t.tm}u + ${i}u];`);
    } else if (t.subgroupA) {
      // Lane l loads rows l, l + wx, ...; row i then comes from lane i % wx of load i / wx.
      for (let b = 0; b < Math.ceil(t.tm / t.wx); b++)
        lines.push(`let mine${b} = load_a(batch, arow${b}, ${k});`);
      for (let i = 0; i < t.tm; i++)
        lines.push(`let a${i} = subgroupBroadcast(mine${Math.floor(i / t.wx)}, ${i % t.wx}u);`);
    } else {
      for (let i = 0; i < t.tm; i++) lines.push(`let a${i} = load_a(batch, rows[${i}], ${k});`);
    }
    if (bk > 0 && t.vec4)
      for (let v = 0; v < t.tn / 4; v++)
        lines.push(`let bv${v} = tile_b[${k} * ${(t.tn * t.wx) / 4}u + lid.x + ${v * t.wx}u];`);
    for (let j = 0; j < t.tn; j++)
      lines.push(
        bk > 0 && t.vec4
          ? `let b${j} = bv${j >> 2}.${'xyzw'[j % 4]};`
          : bk > 0
            ? `let b${j} = tile_b[${k} * ${t.tn * t.wx}u + lid.x + ${j * t.wx}u];`
            : `let b${j} = load_b(batch, ${k}, cols[${j}]);`,
      );
    for (let i = 0; i < t.tm; i++)
      for (let j = 0; j < t.tn; j++) lines.push(`c${i * t.tn + j} = fma(a${i}, b${j}, c${i * t.tn + j});`);
    lines.push('}');
    return lines.join('\n    ');
  };
  const unroll = t.unroll ?? 1;
  const loop =
    bk > 0
      ? stagedLoop(spec, t, bk, step)
      : unroll > 1
        ? `var k = k_start;
  for (; k + ${unroll - 1}u < k_end; k += ${unroll}u) {
    ${Array.from({ length: unroll }, (_, i) => step(i === 0 ? 'k' : `k + ${i}u`)).join('\n    ')}
  }
  for (; k < k_end; k++) ${step('k')}`
        : `for (var k = k_start; k < k_end; k++) ${step('k')}`;
  // Column j of a lane: interleaved across the row's lanes, one at a time or (vec4 tiles) in runs of 4.
  const col = (j: number) => `colb + ${t.vec4 ? (j >> 2) * t.wx * 4 + (j % 4) : j * t.wx}u`;
  const stores: string[] = [];
  for (let i = 0; i < t.tm; i++) {
    for (let j = 0; j < t.tn; j++) {
      stores.push(
        `if (row0 + ${i}u < u.m && ${col(j)} < u.n) { store_c(out_batch, row0 + ${i}u, ${col(j)}, c${i * t.tn + j}); }`,
      );
    }
  }
  return {
    key: `gemm/${spec.key}/${tilingName(t)}`,
    bindings: spec.bindings,
    workgroupSize: t.wx * t.wy,
    wgsl: () => /* wgsl */ `${t.subgroupA ? 'enable subgroups;' : ''}
struct U { m: u32, n: u32, k: u32, batch: u32, splits: u32, k_chunk: u32, ${spec.uniformFields ?? ''} }
@group(0) @binding(0) var<uniform> u: U;
${spec.decls}
${spec.functions}
${
  bk > 0
    ? `var<workgroup> tile_a: array<${t.vec4 ? 'vec4<f32>' : 'f32'}, ${(t.tm * t.wy * bk) / (t.vec4 ? 4 : 1)}>;
var<workgroup> tile_b: array<${t.vec4 ? 'vec4<f32>' : 'f32'}, ${(bk * t.tn * t.wx) / (t.vec4 ? 4 : 1)}>;`
    : ''
}
@compute @workgroup_size(${t.wx}, ${t.wy})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let lane = lid.x;
  let row0 = (wg.y * ${t.wy}u + lid.y) * ${t.tm}u;
  let colb = wg.x * ${t.tn * t.wx}u + lid.x${t.vec4 ? ' * 4u' : ''};
  // Split-K: workgroup z is (batch, split); split s sums k in [s·k_chunk, (s+1)·k_chunk) and
  // stores to matrix s·batch + b of a partial buffer that a reduction adds up.
  let batch = wg.z / u.splits;
  let split = wg.z - batch * u.splits;
  let k_start = split * u.k_chunk;
  let k_end = min(u.k, k_start + u.k_chunk);
  let out_batch = split * u.batch + batch;
  // Every lane of a row runs the k loop (uniform control flow for subgroupBroadcast); rows past m
  // load clamped values and store nothing.
  ${acc}
  ${Array.from({ length: Math.ceil(t.tm / t.wx) }, (_, b) => `let arow${b} = min(row0 + min(${b * t.wx}u + lane, ${t.tm - 1}u), u.m - 1u);`).join('\n  ')}
  ${
    bk > 0
      ? ''
      : `var rows: array<u32, ${t.tm}>;
  for (var i = 0u; i < ${t.tm}u; i++) { rows[i] = min(row0 + i, u.m - 1u); }
  var cols: array<u32, ${t.tn}>;
  for (var j = 0u; j < ${t.tn}u; j++) { cols[j] = min(colb + j * ${t.wx}u, u.n - 1u); }`
  }
  ${loop}
  ${stores.join('\n  ')}
}`,
  };
}

/** Workgroups for an m×n result over `batch` matrices, each summed in `splits` k ranges. */
export function gemmGroups(
  t: GemmTiling,
  m: number,
  n: number,
  batch: number,
  splits = 1,
): [number, number, number] {
  return [Math.ceil(n / (t.tn * t.wx)), Math.ceil(m / (t.tm * t.wy)), batch * splits];
}

/** The template's own uniforms (`m, n, k, batch, splits, k_chunk`); a spec's fields follow. */
export function gemmUniforms(m: number, n: number, k: number, batch = 1, splits = 1): Uniforms {
  return new Uniforms()
    .u32(m)
    .u32(n)
    .u32(k)
    .u32(batch)
    .u32(splits)
    .u32(Math.ceil(k / splits));
}

/** The sum of a split-K partial buffer ([splits, size]) as `shape`; the partials are released. */
export function sumSplits(partial: Tensor, size: number, shape: readonly number[]): Tensor {
  const summed = reduceTo(partial.device, partial, [1, size], 'sum');
  partial.dispose();
  return reshapeInto(summed, shape);
}

/** The smallest k range a split-K workgroup sums. */
const MIN_SPLIT_K = 256;
const MAX_SPLITS = 64;

/**
 * How many k ranges to split an m×n×k product into so that the device has enough workgroups: a
 * small result with a long reduction (a linear layer's weight gradient sums over every token) is
 * otherwise a few workgroups' loops. CPU adapters want a few workgroups per core, GPUs hundreds.
 * The H200 profile of issue 14 spent 816 of SegFormer-B0's 1032 ms in such transposed-A products;
 * on lavapipe it is neutral (32×32×131072 in 2 workgroups already used both cores: 23–25 ms, split
 * 20–24 ms; SegFormer-B0's step at the demo batch unchanged).
 */
export function gemmSplits(
  device: Device,
  t: GemmTiling,
  m: number,
  n: number,
  k: number,
  batch: number,
): number {
  const [gx, gy, gz] = gemmGroups(t, m, n, batch);
  const tiles = gx * gy * gz;
  const wanted = device.software ? 16 : 512;
  if (tiles >= wanted) return 1;
  const splits = Math.min(Math.ceil(wanted / tiles), Math.floor(k / MIN_SPLIT_K), MAX_SPLITS);
  if (splits < 2) return 1;
  // Equal ranges with none empty.
  return Math.ceil(k / Math.ceil(k / splits));
}
