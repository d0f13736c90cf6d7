import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { launchVec4, Uniforms, vec4Main } from './launch.js';

const WG = 256;

function updateSource(name: string, state: readonly string[], body: string) {
  return (vec4: boolean): KernelSource => {
    const element = vec4 ? 'vec4<f32>' : 'f32';
    return {
      key: `optimizer/${name}${vec4 ? '4' : ''}`,
      bindings: ['read', 'rw', ...state.map(() => 'rw' as const)],
      workgroupSize: WG,
      wgsl: () => /* wgsl */ `
struct U { n: u32, lr: f32, wd: f32, s0: f32, s1: f32, s2: f32, s3: f32, s4: f32, s5: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> grad: array<${element}>;
@group(0) @binding(2) var<storage, read_write> param: array<${element}>;
${state.map((s, i) => `@group(0) @binding(${i + 3}) var<storage, read_write> ${s}: array<${element}>;`).join('\n')}
${vec4Main(WG, vec4 ? 'u.n / 4u' : 'u.n', `    var p = param[i];\n    var g = grad[i];\n${body}\n    param[i] = p;`)}`,
    };
  };
}

/** Launches an update over `n` elements, as vec4s when n allows (every parameter but odd-sized ones). */
function launchUpdate(
  device: Device,
  source: (vec4: boolean) => KernelSource,
  buffers: readonly GPUBuffer[],
  u: Uniforms,
  n: number,
): void {
  const vec4 = n % 4 === 0;
  launchVec4(device, source(vec4), buffers, u, vec4 ? n / 4 : n);
}

// Paddle's Momentum: L2 decay joins the gradient; v ← μv + g; p ← p − lr·v (Nesterov: p ← p − lr·(g + μv)).
const momentum = updateSource(
  'momentum',
  ['velocity'],
  /* wgsl */ `
  g = g + u.wd * p;
  let v = u.s0 * velocity[i] + g;
  velocity[i] = v;
  p = p - u.lr * select(v, g + u.s0 * v, u.s1 > 0.5);`,
);

// Paddle's Adam/AdamW: s0 β1, s1 β2, s3 = 1 for decoupled decay (AdamW) else L2 (Adam); the bias
// corrections are folded into s4 = lr_t and s5 = ε_t, computed on the CPU once per step.
const adam = updateSource(
  'adam',
  ['moment1', 'moment2'],
  /* wgsl */ `
  if (u.s3 > 0.5) { p = p * (1.0 - u.lr * u.wd); } else { g = g + u.wd * p; }
  let m = u.s0 * moment1[i] + (1.0 - u.s0) * g;
  let v = u.s1 * moment2[i] + (1.0 - u.s1) * g * g;
  moment1[i] = m;
  moment2[i] = v;
  p = p - u.s4 * m / (sqrt(v) + u.s5);`,
);

export interface MomentumOptions {
  readonly lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov?: boolean;
}

/** One fused in-place Momentum update of a parameter. */
export function momentumUpdate(
  device: Device,
  param: Tensor,
  grad: Tensor,
  velocity: Tensor,
  o: MomentumOptions,
): void {
  const u = new Uniforms()
    .u32(param.size)
    .f32(o.lr)
    .f32(o.weightDecay)
    .f32(o.momentum)
    .f32(o.nesterov ? 1 : 0);
  for (let i = 0; i < 4; i++) u.f32(0);
  launchUpdate(device, momentum, [grad.buffer, param.buffer, velocity.buffer], u, param.size);
}

export interface AdamOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** AdamW's decoupled decay (p ← p·(1 − lr·wd)) instead of Adam's L2 term. */
  readonly decoupled: boolean;
}

/**
 * One fused in-place Adam/AdamW update at 1-based step `t`, with Paddle's bias correction:
 * p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε·√(1−β2ᵗ)).
 */
export function adamUpdate(
  device: Device,
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  lr: number,
  t: number,
  o: AdamOptions,
): void {
  const c2 = Math.sqrt(1 - o.beta2 ** t);
  const lrT = (lr * c2) / (1 - o.beta1 ** t);
  const u = new Uniforms()
    .u32(param.size)
    .f32(lr)
    .f32(o.weightDecay)
    .f32(o.beta1)
    .f32(o.beta2)
    .f32(0)
    .f32(o.decoupled ? 1 : 0)
    .f32(lrT)
    .f32(o.epsilon * c2);
  launchUpdate(device, adam, [grad.buffer, param.buffer, m.buffer, v.buffer], u, param.size);
}
