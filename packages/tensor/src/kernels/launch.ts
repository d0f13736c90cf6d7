import type { Device, KernelSource } from '../device/device.js';
import { type DType, type Shape, shapeSize, Tensor } from '../tensor.js';

/** Packs a kernel's uniform block: 4-byte scalars in declaration order. */
export class Uniforms {
  private readonly view = new DataView(new ArrayBuffer(256));
  private offset = 0;

  u32(value: number): this {
    this.view.setUint32(this.offset, value, true);
    this.offset += 4;
    return this;
  }

  i32(value: number): this {
    this.view.setInt32(this.offset, value, true);
    this.offset += 4;
    return this;
  }

  f32(value: number): this {
    this.view.setFloat32(this.offset, value, true);
    this.offset += 4;
    return this;
  }

  /** Pads to the next 16-byte boundary (before a vec4 array). */
  align16(): this {
    this.offset = Math.ceil(this.offset / 16) * 16;
    return this;
  }

  /** `fastDivisor(d)` as one `vec4<u32>` (read in WGSL by `fdiv`); a dim of 0 (an empty tensor: no invocation divides) as 1. */
  divisor(d: number): this {
    this.align16();
    for (const v of fastDivisor(Math.max(d, 1))) this.u32(v);
    return this;
  }

  /** `count` u32 values padded to a whole number of vec4s, as `array<vec4<u32>, count/4>`. */
  u32Array(values: readonly number[], count: number): this {
    this.align16();
    for (let i = 0; i < count; i++) this.u32(values[i] ?? 0);
    return this;
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.view.buffer, 0, Math.max(16, Math.ceil(this.offset / 16) * 16));
  }
}

/**
 * Exact u32 division by a divisor prepared on the host (`Uniforms.divisor`): a multiply-high and two
 * shifts (Granlund & Montgomery's round-up method, exact for every u32 n and d ≥ 1). lavapipe runs a
 * `/` or `%` by a uniform value as one scalar division per lane: a kernel that splits its invocation
 * id into coordinates spent most of its time there (4M ids split three ways: 28 ms → 12.8 ms).
 */
export const FAST_DIV = /* wgsl */ `
fn mulhi(a: u32, b: u32) -> u32 {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}
fn fdiv(n: u32, d: vec4<u32>) -> u32 {
  let t = mulhi(n, d.y);
  return (t + ((n - t) >> d.z)) >> d.w;
}`;

/** [d, multiplier, shift1, shift2] for `fdiv` (d a u32 ≥ 1). */
export function fastDivisor(d: number): [number, number, number, number] {
  if (!Number.isInteger(d) || d < 1 || d > 0xffffffff) throw new Error(`fastDivisor: ${d} is not a u32 ≥ 1`);
  const l = 32 - Math.clz32(d - 1);
  const m = ((1n << 32n) * ((1n << BigInt(l)) - BigInt(d))) / BigInt(d) + 1n;
  return [d, Number(m & 0xffffffffn), Math.min(l, 1), Math.max(l - 1, 0)];
}

/** Linear invocation id over a 2-D grid of workgroups (a 1-D dispatch tops out at 65535 groups). */
export const LINEAR_ID = `fn linear_id(gid: vec3<u32>, groups: vec3<u32>, wg: u32) -> u32 { return gid.x + gid.y * groups.x * wg; }`;

export function gridFor(device: Device, threads: number, workgroupSize: number): [number, number] {
  const groups = Math.ceil(threads / workgroupSize);
  const max = device.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

/** A new pooled tensor without autograd history. */
export function emptyTensor(device: Device, shape: Shape, dtype: DType = 'f32'): Tensor {
  return new Tensor(device, shape, dtype, device.acquire(shapeSize(shape) * 4), 'activation');
}

/** Dispatches a one-invocation-per-element kernel over `threads` elements. */
export function launch(
  device: Device,
  source: KernelSource,
  buffers: readonly GPUBuffer[],
  uniforms: Uniforms,
  threads: number,
): void {
  const kernel = device.kernel(source);
  const [x, y] = gridFor(device, threads, source.workgroupSize);
  device.dispatch(kernel, buffers, uniforms.bytes(), [x, y]);
}

/**
 * `t`'s values under another shape of the same size, as a new pooled tensor; `t` is disposed.
 * Returns `t` itself when the shape already matches. No autograd: for kernels and backward passes.
 */
export function reshapeInto(t: Tensor, shape: Shape): Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const out = emptyTensor(t.device, shape);
  t.device.copy(t.buffer, 0, out.buffer, 0, t.bytes);
  t.dispose();
  return out;
}

/** vec4s one invocation of a vectorized kernel handles. */
export const VEC4_PER_LANE = 4;

/**
 * main() of a vectorized one-pass kernel over `array<vec4<f32>>` views: `body` runs once per
 * vec4 index `i` below `count` (a WGSL expression). Each invocation takes VEC4_PER_LANE vec4s
 * strided by the workgroup size, so a GPU's loads coalesce while lavapipe still gets wide loads
 * (measured on lavapipe, 2^20 floats: 2.9 ms one float per lane → 0.97 ms).
 */
export function vec4Main(workgroupSize: number, count: string, body: string): string {
  return `${LINEAR_ID}
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let lane = linear_id(gid, groups, ${workgroupSize}u);
  let first = (lane / ${workgroupSize}u) * ${workgroupSize * VEC4_PER_LANE}u + lane % ${workgroupSize}u;
  for (var k = 0u; k < ${VEC4_PER_LANE}u; k++) {
    let i = first + k * ${workgroupSize}u;
    if (i >= ${count}) { return; }
${body}
  }
}`;
}

/** Dispatches a `vec4Main` kernel over `vec4s` vec4 elements. */
export function launchVec4(
  device: Device,
  source: KernelSource,
  buffers: readonly GPUBuffer[],
  uniforms: Uniforms,
  vec4s: number,
): void {
  launch(device, source, buffers, uniforms, Math.ceil(vec4s / VEC4_PER_LANE));
}
