import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { f32Type, indexedMain, launch, Uniforms } from './launch.js';
import {
  collapseDims,
  MAX_RANK,
  pushLayout,
  type StridedLayout,
  stridedFields,
  stridedOffsets,
} from './strided.js';

const WG = 256;

/**
 * Strided copy over a rank ≤ 6 index space `dims`: `gather` reads `src[offset + Σ c·stride]` into
 * contiguous `dst[i]` (permute, slice); `scatter` writes contiguous `src[i]` to `dst[offset + Σ c·stride]`
 * (a slice's gradient). One kernel pair serves every layout change, specialised by the collapsed rank.
 */
function copySource(mode: 'gather' | 'scatter', rank: number, vec4: boolean): KernelSource {
  const body = mode === 'gather' ? 'dst[i] = src[off];' : 'dst[off] = src[i];';
  const element = f32Type(vec4);
  return {
    key: `copy/${mode}${vec4 ? '4' : ''}/r${rank}`,
    bindings: ['read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { n: u32, offset: u32, p0: u32, p1: u32, ${stridedFields(['strides'])} }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> src: array<${element}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${element}>;
${indexedMain(WG, 'i', 'u.n')}
  var off = u.offset;
${stridedOffsets(rank, 'i', ['off'], ['strides'])}
  ${body}
}`,
  };
}

/**
 * A batched 2-D transpose, dst[b, p, q] = src[b, q, p] with P and Q multiples of 4: one invocation
 * moves a 4×4 tile as four vec4 loads and four vec4 stores (the strided kernel: 16 scalar loads and
 * stores). Measured on lavapipe: [4, 64, 32, 64] by [0, 2, 3, 1] 2.0–2.2 → 0.54 ms (6.4–6.5 ms before the
 * fast division); SegFormer-B0's step at the demo batch: its 104 transposes 36 → 11.6 ms of GPU time.
 */
const transposeTileSource: KernelSource = {
  key: 'copy/transpose4',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { tiles: u32, p4: u32, q4: u32, p: u32, q: u32, div_q4: vec4<u32>, div_p4: vec4<u32> }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
${indexedMain(WG, 't', 'u.tiles')}
  // Tile (b, pt, qt), qt fastest, so neighbouring lanes store neighbouring vec4s of a dst row.
  let rest = fdiv(t, u.div_q4);
  let qt = t - rest * u.q4;
  let b = fdiv(rest, u.div_p4);
  let pt = rest - b * u.p4;
  let base = b * u.p * u.q;
  // src rows q = 4qt..4qt+3, columns p = 4pt..4pt+3 (vec4 index (base + q·P + 4pt) / 4).
  let s0 = src[(base + (4u * qt) * u.p) / 4u + pt];
  let s1 = src[(base + (4u * qt + 1u) * u.p) / 4u + pt];
  let s2 = src[(base + (4u * qt + 2u) * u.p) / 4u + pt];
  let s3 = src[(base + (4u * qt + 3u) * u.p) / 4u + pt];
  let d = (base + (4u * pt) * u.q) / 4u + qt;
  let row = u.q / 4u;
  dst[d] = vec4<f32>(s0.x, s1.x, s2.x, s3.x);
  dst[d + row] = vec4<f32>(s0.y, s1.y, s2.y, s3.y);
  dst[d + 2u * row] = vec4<f32>(s0.z, s1.z, s2.z, s3.z);
  dst[d + 3u * row] = vec4<f32>(s0.w, s1.w, s2.w, s3.w);
}`,
};

/**
 * [batch, P, Q] when a gather over `layout` is dst[b, p, q] = src[b, q, p] with P and Q multiples of 4
 * (src contiguous as [batch, Q, P]), else null.
 */
function tiledTranspose(layout: StridedLayout, offset: number): [number, number, number] | null {
  const { dims, strides } = layout;
  const s = strides[0] ?? [];
  const rank = dims.length;
  if (offset !== 0 || rank < 2 || rank > 3) return null;
  const p = dims[rank - 2] ?? 0;
  const q = dims[rank - 1] ?? 0;
  const batch = rank === 3 ? (dims[0] ?? 1) : 1;
  const contiguous = s[rank - 2] === 1 && s[rank - 1] === p && (rank === 2 || s[0] === p * q);
  return contiguous && p % 4 === 0 && q % 4 === 0 ? [batch, p, q] : null;
}

export function stridedCopy(
  device: Device,
  mode: 'gather' | 'scatter',
  src: Tensor,
  dst: Tensor,
  dims: readonly number[],
  strides: readonly number[],
  offset: number,
): void {
  if (dims.length > MAX_RANK) throw new Error(`copy: rank ${dims.length} exceeds ${MAX_RANK}`);
  const n = dims.reduce((a, b) => a * b, 1);
  const layout = collapseDims(dims, [strides]);
  const tiles = mode === 'gather' ? tiledTranspose(layout, offset) : null;
  if (tiles) {
    const [batch, p, q] = tiles;
    const count = (batch * p * q) / 16;
    const u = new Uniforms()
      .u32(count)
      .u32(p / 4)
      .u32(q / 4)
      .u32(p)
      .u32(q)
      .divisor(q / 4)
      .divisor(p / 4);
    launch(device, transposeTileSource, [src.buffer, dst.buffer], u, count);
    return;
  }
  const quads = inVec4s(layout, offset);
  const used = quads ?? layout;
  const count = quads ? n / 4 : n;
  const u = pushLayout(
    new Uniforms()
      .u32(count)
      .u32(quads ? offset / 4 : offset)
      .u32(0)
      .u32(0),
    used,
  );
  launch(device, copySource(mode, used.dims.length, quads !== null), [src.buffer, dst.buffer], u, count);
}

/**
 * The layout in vec4 units when the copy moves whole aligned vec4s: the innermost dim contiguous
 * (stride 1) with a size, every other stride and the offset multiples of 4 (concat and slice along
 * channels with H·W a multiple of 4); else null. A quarter of the loads and stores per lane.
 */
function inVec4s(layout: StridedLayout, offset: number): StridedLayout | null {
  const { dims, strides } = layout;
  const inner = dims.length - 1;
  const s = strides[0] ?? [];
  const aligned =
    offset % 4 === 0 &&
    s[inner] === 1 &&
    (dims[inner] ?? 0) % 4 === 0 &&
    s.every((stride, d) => d === inner || stride % 4 === 0);
  if (!aligned) return null;
  return {
    dims: dims.map((d, k) => (k === inner ? d / 4 : d)),
    strides: [s.map((stride, k) => (k === inner ? 1 : stride / 4))],
  };
}

/**
 * Concatenation and its gradient in one dispatch for up to MAX_CONCAT_PARTS parts: the tensors
 * seen as [outer, cols] rows, part i owning columns [start_i, start_i + width_i) of the output's
 * rows. `concat` gathers each output element from its part; `split` scatters each element of the
 * output's gradient to its part. (A copy per part took a dispatch each: 4 per STDC block and 4 back.)
 * With every width and the output's row a multiple of 4, lanes move vec4s.
 */
function concatSource(mode: 'concat' | 'split', parts: number, vec4: boolean): KernelSource {
  const element = f32Type(vec4);
  const names = Array.from({ length: parts }, (_, i) => `p${i}`);
  // Part i: columns [u.starts[i], u.starts[i + 1]) of this dispatch's column range.
  const owner = names
    .map((name, i) => {
      const partAt = `o * u.widths[${i >> 2}][${i & 3}] + col - u.starts[${i >> 2}][${i & 3}]`;
      const move = mode === 'concat' ? `out[at] = ${name}[${partAt}];` : `${name}[${partAt}] = g[at];`;
      return i === parts - 1
        ? `{ ${move} }`
        : `if (col < u.starts[${(i + 1) >> 2}][${(i + 1) & 3}]) { ${move} }`;
    })
    .join(' else ');
  return {
    key: `copy/${mode}${vec4 ? '4' : ''}/p${parts}`,
    bindings:
      mode === 'concat'
        ? [...names.map(() => 'read' as const), 'rw']
        : ['read', ...names.map(() => 'rw' as const)],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { n: u32, cols: u32, out_cols: u32, first: u32, div_cols: vec4<u32>, starts: array<vec4<u32>, 2>, widths: array<vec4<u32>, 2> }
@group(0) @binding(0) var<uniform> u: U;
${
  mode === 'concat'
    ? `${names.map((name, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${name}: array<${element}>;`).join('\n')}
@group(0) @binding(${parts + 1}) var<storage, read_write> out: array<${element}>;`
    : `@group(0) @binding(1) var<storage, read> g: array<${element}>;
${names.map((name, i) => `@group(0) @binding(${i + 2}) var<storage, read_write> ${name}: array<${element}>;`).join('\n')}`
}
${indexedMain(WG, 'i', 'u.n')}
  let o = fdiv(i, u.div_cols);
  let col = i - o * u.cols;
  // This element's index in the whole (the output, or its gradient).
  let at = o * u.out_cols + u.first + col;
  ${owner}
}`,
  };
}

/** Parts one concat dispatch binds: the storage-buffer limit, less the output (or gradient). */
const MAX_CONCAT_PARTS = 7;

/**
 * `out` (the tensors seen as [outer, cols]) ← its parts side by side along the columns (`concat`),
 * or the parts ← their columns of `whole` (`split`, the concat's gradient). `cols[i]`: part i's
 * columns; every part is a contiguous [outer, cols[i]].
 */
export function concatColumns(
  device: Device,
  mode: 'concat' | 'split',
  whole: Tensor,
  parts: readonly Tensor[],
  outer: number,
  cols: readonly number[],
): void {
  const outCols = cols.reduce((a, b) => a + b, 0);
  const perDispatch = Math.min(MAX_CONCAT_PARTS, device.limits.maxStorageBuffersPerShaderStage - 1);
  const vec4 = outCols % 4 === 0 && cols.every((c) => c % 4 === 0);
  const unit = vec4 ? 4 : 1;
  let first = 0;
  for (let at = 0; at < parts.length; at += perDispatch) {
    const group = parts.slice(at, at + perDispatch);
    const widths = cols.slice(at, at + perDispatch).map((c) => c / unit);
    const starts = widths.map((_, i) => widths.slice(0, i).reduce((a, b) => a + b, 0));
    const span = widths.reduce((a, b) => a + b, 0);
    const count = outer * span;
    const u = new Uniforms()
      .u32(count)
      .u32(span)
      .u32(outCols / unit)
      .u32(first)
      .divisor(span)
      .u32Array([...starts, span], 8)
      .u32Array(widths, 8);
    const buffers =
      mode === 'concat'
        ? [...group.map((t) => t.buffer), whole.buffer]
        : [whole.buffer, ...group.map((t) => t.buffer)];
    launch(device, concatSource(mode, group.length, vec4), buffers, u, count);
    first += span;
  }
}
