import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { emptyTensor, LINEAR_ID, launch, Uniforms } from './launch.js';

const WG = 256;

/** PCG-hash uniforms in [0, 1): a pure function of (seed, index), so backward regenerates the mask. */
export const RANDOM_WGSL = /* wgsl */ `
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
fn uniform01(seed: u32, index: u32) -> f32 { return f32(pcg(pcg(index ^ seed) + seed) >> 8u) / 16777216.0; }
`;

// out[i] = x[i] · keep(unit) / (1 − p), unit = i / group: group 1 is Dropout, H·W Dropout2d, C·H·W DropPath.
const maskedScale: KernelSource = {
  key: 'random/masked-scale',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32, seed: u32, group: u32, p: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${RANDOM_WGSL}
${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i >= u.n) { return; }
  let keep = uniform01(u.seed, i / u.group) >= u.p;
  out[i] = select(0.0, x[i] / (1.0 - u.p), keep);
}`,
};

/** Applies the (seed, group)-determined keep mask, scaled by 1/(1 − p) ("upscale in train"). */
export function maskedScaleKernel(device: Device, x: Tensor, p: number, seed: number, group: number): Tensor {
  const out = emptyTensor(device, x.shape);
  const u = new Uniforms()
    .u32(x.size)
    .u32(seed >>> 0)
    .u32(group)
    .f32(p);
  launch(device, maskedScale, [x.buffer, out.buffer], u, x.size);
  return out;
}

const uniformFill: KernelSource = {
  key: 'random/uniform',
  bindings: ['rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32, seed: u32, lo: f32, hi: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${RANDOM_WGSL}
${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i < u.n) { out[i] = u.lo + (u.hi - u.lo) * uniform01(u.seed, i); }
}`,
};

/** Seeded uniform values in [lo, hi) generated on the GPU. */
export function uniformKernel(
  device: Device,
  shape: readonly number[],
  seed: number,
  lo: number,
  hi: number,
): Tensor {
  const out = emptyTensor(device, shape);
  launch(
    device,
    uniformFill,
    [out.buffer],
    new Uniforms()
      .u32(out.size)
      .u32(seed >>> 0)
      .f32(lo)
      .f32(hi),
    out.size,
  );
  return out;
}
