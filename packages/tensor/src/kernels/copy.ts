import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { FAST_DIV, LINEAR_ID, launch, Uniforms } from './launch.js';
import { collapseDims, MAX_RANK, pushLayout, stridedFields, stridedOffsets } from './strided.js';

const WG = 256;

/**
 * Strided copy over a rank ≤ 6 index space `dims`: `gather` reads `src[offset + Σ c·stride]` into
 * contiguous `dst[i]` (permute, slice); `scatter` writes contiguous `src[i]` to `dst[offset + Σ c·stride]`
 * (concat). One kernel pair serves every layout change, specialised by the collapsed rank.
 */
function copySource(mode: 'gather' | 'scatter', rank: number): KernelSource {
  const body = mode === 'gather' ? 'dst[i] = src[off];' : 'dst[off] = src[i];';
  return {
    key: `copy/${mode}/r${rank}`,
    bindings: ['read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { n: u32, offset: u32, p0: u32, p1: u32, ${stridedFields(['strides'])} }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
${LINEAR_ID}
${FAST_DIV}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i >= u.n) { return; }
  var off = u.offset;
${stridedOffsets(rank, 'i', ['off'], ['strides'])}
  ${body}
}`,
  };
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
  const u = pushLayout(new Uniforms().u32(n).u32(offset).u32(0).u32(0), layout);
  launch(device, copySource(mode, layout.dims.length), [src.buffer, dst.buffer], u, n);
}
