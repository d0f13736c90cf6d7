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

/** WGSL: the element type of an f32 array read as vec4s (`vec4`) or one float at a time. */
export const f32Type = (vec4: boolean): string => (vec4 ? 'vec4<f32>' : 'f32');

/** WGSL: zero of `f32Type(vec4)`. */
export const f32Zero = (vec4: boolean): string => (vec4 ? 'vec4<f32>()' : '0.0');

/**
 * WGSL: `statement(c, k)` once per component c = '.x', '.y', '.z', '.w' (k = 0…3) of a vec4, in
 * order, or once (c = '', k = 0) for a scalar: a vec4 step that runs a scalar walk's updates in the
 * scalar walk's order.
 */
export function perComponent(vec4: boolean, statement: (c: string, k: number) => string): string {
  return (vec4 ? ['.x', '.y', '.z', '.w'] : ['']).map(statement).join('\n');
}

/** Linear invocation id over a 2-D grid of workgroups (a 1-D dispatch tops out at 65535 groups). */
export const LINEAR_ID = `fn linear_id(gid: vec3<u32>, groups: vec3<u32>, wg: u32) -> u32 { return gid.x + gid.y * groups.x * wg; }`;

/**
 * The head of a WGSL main() over a 1-D index `name` (a `launch` over `bound` items): the linear-id
 * and fast-division helpers, the entry point and the bound check; the body and the closing brace follow.
 */
export function indexedMain(workgroupSize: number, name: string, bound: string): string {
  return `${LINEAR_ID}
${FAST_DIV}
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let ${name} = linear_id(gid, groups, ${workgroupSize}u);
  if (${name} >= ${bound}) { return; }`;
}

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

/**
 * main() of a vectorized one-pass kernel over `array<vec4<f32>>` views: `body` runs once per
 * vec4 index `i` below `count` (a WGSL expression). The dispatch's lanes share out `count`, so how
 * many vec4s a lane handles is the launch's choice (`launchVec4`), not the kernel's. A run of lanes
 * takes a contiguous stretch and steps through it together: the whole workgroup when lanes take
 * at most 4 (a GPU's coalesced pattern), 8 lanes (lavapipe's SIMD width) when they walk further.
 */
export function vec4Main(workgroupSize: number, count: string, body: string): string {
  return `${LINEAR_ID}
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let lane = linear_id(gid, groups, ${workgroupSize}u);
  let count = ${count};
  let lanes = groups.x * groups.y * ${workgroupSize}u;
  let per_lane = (count + lanes - 1u) / lanes;
  let run_lanes = select(8u, ${workgroupSize}u, per_lane <= 4u);
  let run = lane / run_lanes;
  let end = min((run + 1u) * run_lanes * per_lane, count);
  for (var i = run * run_lanes * per_lane + lane % run_lanes; i < end; i += run_lanes) {
${body}
  }
}`;
}

/**
 * vec4s per lane of a `vec4Main` launch. GPUs want many lanes (4 each). lavapipe runs each workgroup
 * as a loop over its SIMD groups on a few threads, and a long walk per lane is cheaper there (2^22
 * floats: ReLU 2.9 → 2.0 ms, add 4.4 → 2.9 ms at 64 per lane), as long as there are enough
 * workgroups to keep every thread busy.
 */
export function vec4PerLane(device: Device, vec4s: number, workgroupSize: number): number {
  if (!device.software || !vec4LaunchConfig.longWalks) return 4;
  return Math.min(64, Math.max(4, Math.ceil(vec4s / (SOFTWARE_MIN_WORKGROUPS * workgroupSize))));
}
const SOFTWARE_MIN_WORKGROUPS = 8;

/** Test hook: `longWalks: false` launches CPU adapters' vec4 kernels as a GPU's (4 vec4s per lane). */
export const vec4LaunchConfig = { longWalks: true };

/** Dispatches a `vec4Main` kernel over `vec4s` vec4 elements. */
export function launchVec4(
  device: Device,
  source: KernelSource,
  buffers: readonly GPUBuffer[],
  uniforms: Uniforms,
  vec4s: number,
): void {
  launch(
    device,
    source,
    buffers,
    uniforms,
    Math.ceil(vec4s / vec4PerLane(device, vec4s, source.workgroupSize)),
  );
}
