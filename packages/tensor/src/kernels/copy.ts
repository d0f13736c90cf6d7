import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { MAX_RANK } from './elementwise.js';
import { LINEAR_ID, launch, Uniforms } from './launch.js';

const WG = 256;

/**
 * Strided copy over a rank ≤ 6 index space `dims`: `gather` reads `src[offset + Σ c·stride]` into
 * contiguous `dst[i]` (permute, slice); `scatter` writes contiguous `src[i]` to `dst[offset + Σ c·stride]`
 * (concat). One kernel pair serves every layout change.
 */
function copySource(mode: 'gather' | 'scatter'): KernelSource {
  const body = mode === 'gather' ? 'dst[i] = src[off];' : 'dst[off] = src[i];';
  return {
    key: `copy/${mode}`,
    bindings: ['read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { n: u32, offset: u32, p0: u32, p1: u32, dims: array<vec4<u32>, 2>, strides: array<vec4<u32>, 2> }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i >= u.n) { return; }
  var rest = i;
  var off = u.offset;
  for (var d = ${MAX_RANK - 1}; d >= 0; d--) {
    let dim = u.dims[d / 4][d % 4];
    off += (rest % dim) * u.strides[d / 4][d % 4];
    rest = rest / dim;
  }
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
  const pad = (v: readonly number[], f: number) => [...new Array<number>(MAX_RANK - v.length).fill(f), ...v];
  const n = dims.reduce((a, b) => a * b, 1);
  const u = new Uniforms()
    .u32(n)
    .u32(offset)
    .u32(0)
    .u32(0)
    .u32Array(pad(dims, 1), 8)
    .u32Array(pad(strides, 0), 8);
  launch(device, copySource(mode), [src.buffer, dst.buffer], u, n);
}
