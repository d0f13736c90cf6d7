import type { Device, KernelSource } from '../device/device.js';
import { type Shape, shapeSize, type Tensor } from '../tensor.js';
import {
  emptyTensor,
  FAST_DIV,
  f32Type,
  LINEAR_ID,
  launch,
  launchVec4,
  Uniforms,
  vec4Main,
} from './launch.js';
import { collapseDims, MAX_RANK, pushLayout, stridedFields, stridedOffsets } from './strided.js';

const WG = 256;

/** Exact-erf GELU and its derivative in WGSL, shared by the elementwise ops and the GEMM epilogue. */
export const GELU_WGSL = /* wgsl */ `
fn erf_approx(x: f32) -> f32 {
  // Abramowitz-Stegun 7.1.26 is too coarse for GELU gradients; use the 1.2e-7 rational form.
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
      t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
fn gelu_grad(x: f32) -> f32 {
  return 0.5 * (1.0 + erf_approx(x * 0.70710678118654752)) + x * 0.39894228040143268 * exp(-0.5 * x * x);
}`;

/** WGSL helpers every elementwise expression may call. */
const MATH = /* wgsl */ `
${GELU_WGSL}
fn spow(x: f32, p: f32) -> f32 {
  // pow() is undefined for x < 0 in WGSL; integer exponents keep their sign as in NumPy.
  if (x >= 0.0 || fract(p) != 0.0) { return pow(x, p); }
  let m = pow(-x, p);
  return select(m, -m, fract(p * 0.5) != 0.0);
}
fn sigmoid(x: f32) -> f32 { return select(exp(x) / (1.0 + exp(x)), 1.0 / (1.0 + exp(-x)), x >= 0.0); }
fn safe_tanh(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
`;

/**
 * `out[i] = expr(a[i], b[i], c[i], s0..s3)` over same-shape inputs: unary ops, their backward,
 * optimizer updates. `expr` is WGSL in terms of a, b, c (f32) and s0..s3 (uniform f32).
 * `vec4`: the buffers are read as vec4s (the element count must be a multiple of 4) and `expr`
 * is applied per component.
 */
export function mapSource(expr: string, arity: number, vec4 = false): KernelSource {
  const inputs = ['a', 'b', 'c'].slice(0, arity);
  const element = f32Type(vec4);
  const params = inputs.map((name) => `${name}: f32`).join(', ');
  const call = (component: string) => `op(${inputs.map((name) => `in_${name}[i]${component}`).join(', ')})`;
  return {
    key: `map${vec4 ? '4' : ''}/${arity}/${expr}`,
    bindings: [...inputs.map(() => 'read' as const), 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { n: u32, s0: f32, s1: f32, s2: f32, s3: f32 }
@group(0) @binding(0) var<uniform> u: U;
${inputs.map((name, i) => `@group(0) @binding(${i + 1}) var<storage, read> in_${name}: array<${element}>;`).join('\n')}
@group(0) @binding(${arity + 1}) var<storage, read_write> out: array<${element}>;
${MATH}
fn op(${params}) -> f32 {
  let s0 = u.s0; let s1 = u.s1; let s2 = u.s2; let s3 = u.s3;
  return ${expr};
}
${
  vec4
    ? vec4Main(WG, 'u.n / 4u', `    out[i] = vec4<f32>(${['.x', '.y', '.z', '.w'].map(call).join(', ')});`)
    : `${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i >= u.n) { return; }
  out[i] = ${call('')};
}`
}`,
  };
}

/** Launches `source` (built with `vec4` when the count allows) over `n` elements. */
function launchElementwise(
  device: Device,
  source: (vec4: boolean) => KernelSource,
  buffers: readonly GPUBuffer[],
  u: Uniforms,
  n: number,
): void {
  if (n % 4 === 0) launchVec4(device, source(true), buffers, u, n / 4);
  else launch(device, source(false), buffers, u, n);
}

export function mapKernel(
  device: Device,
  expr: string,
  inputs: readonly Tensor[],
  scalars: readonly number[] = [],
  out?: Tensor,
): Tensor {
  const [first] = inputs;
  if (!first) throw new Error('mapKernel needs an input');
  const result = out ?? emptyTensor(device, first.shape);
  const u = new Uniforms().u32(first.size);
  for (let i = 0; i < 4; i++) u.f32(scalars[i] ?? 0);
  launchElementwise(
    device,
    (vec4) => mapSource(expr, inputs.length, vec4),
    [...inputs.map((t) => t.buffer), result.buffer],
    u,
    first.size,
  );
  return result;
}

/** Fills a tensor with a constant. */
export function fill(device: Device, shape: Shape, value: number): Tensor {
  const out = emptyTensor(device, shape);
  // Zeros by clearing the buffer (+0.0; −0 keeps the kernel): no dispatch.
  if (value === 0 && !Object.is(value, -0)) {
    device.clear(out.buffer);
    return out;
  }
  const u = new Uniforms().u32(shapeSize(shape)).f32(value).f32(0).f32(0).f32(0);
  launchElementwise(device, (vec4) => mapSource('s0', 0, vec4), [out.buffer], u, out.size);
  return out;
}

/** The shape two operands broadcast to (NumPy rules), or a clear error. */
export function broadcastShape(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new Error(
        `${op}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast (dim ${i}: ${da} vs ${db})`,
      );
    out.push(da === 1 ? db : da); // NumPy: a size-1 dim takes the other size, 0 included
  }
  return out;
}

/** Strides of `shape` read through a broadcast to `outShape` (0 on broadcast dims). */
function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const rank = outShape.length;
  const strides = new Array<number>(rank).fill(0);
  let stride = 1;
  for (let i = rank - 1; i >= 0; i--) {
    const dim = shape[shape.length - rank + i] ?? 1;
    strides[i] = dim === 1 ? 0 : stride;
    stride *= dim;
  }
  return strides;
}

function broadcastSource(expr: string, rank: number): KernelSource {
  return {
    key: `broadcast/r${rank}/${expr}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { n: u32, s0: f32, p0: u32, p1: u32, ${stridedFields(['sa', 'sb'])} }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> in_a: array<f32>;
@group(0) @binding(2) var<storage, read> in_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${MATH}
${LINEAR_ID}
${FAST_DIV}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i >= u.n) { return; }
  var ia = 0u;
  var ib = 0u;
${stridedOffsets(rank, 'i', ['ia', 'ib'], ['sa', 'sb'])}
  let a = in_a[ia];
  let b = in_b[ib];
  let s0 = u.s0;
  out[i] = ${expr};
}`,
  };
}

/** `out = expr(a, b)` with NumPy broadcasting. */
export function broadcastKernel(
  device: Device,
  expr: string,
  a: Tensor,
  b: Tensor,
  op: string,
  scalar = 0,
): Tensor {
  const shape = broadcastShape(a.shape, b.shape, op);
  if (shape.length > MAX_RANK) throw new Error(`${op}: rank ${shape.length} exceeds ${MAX_RANK}`);
  const out = emptyTensor(device, shape);
  const layout = collapseDims(shape, [broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape)]);
  const u = pushLayout(new Uniforms().u32(out.size).f32(scalar).u32(0).u32(0), layout);
  launch(device, broadcastSource(expr, layout.dims.length), [a.buffer, b.buffer, out.buffer], u, out.size);
  return out;
}

function accumulateSource(vec4: boolean): KernelSource {
  const element = f32Type(vec4);
  return {
    key: `accumulate${vec4 ? '4' : ''}`,
    bindings: ['read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> addend: array<${element}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${element}>;
${
  vec4
    ? vec4Main(WG, 'u.n / 4u', '    dst[i] = dst[i] + addend[i];')
    : `${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i < u.n) { dst[i] = dst[i] + addend[i]; }
}`
}`,
  };
}

/** target += addend, in place (a buffer may not be bound both read-only and read-write). */
export function accumulate(device: Device, target: Tensor, addend: Tensor): void {
  if (target.size !== addend.size) throw new Error(`accumulate: ${target.size} vs ${addend.size} elements`);
  launchElementwise(
    device,
    accumulateSource,
    [addend.buffer, target.buffer],
    new Uniforms().u32(target.size),
    target.size,
  );
}
