import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { emptyTensor, FAST_DIV, LINEAR_ID, launch, Uniforms } from './launch.js';
import { reduceTo } from './reduce.js';

const WG = 256;

const MAIN = `${LINEAR_ID}
${FAST_DIV}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);`;

export type LabelMapKind = 'valid' | 'onehot' | 'weight' | 'float';

const LABEL_BODY: Record<LabelMapKind, string> = {
  valid: `  if (t >= u.n) { return; }
  out[t] = select(0.0, 1.0, valid(labels[t]));`,
  onehot: `  if (t >= u.n * u.c) { return; }
  let plane = fdiv(t, u.div_hw);
  let n = fdiv(plane, u.div_c);
  let l = labels[n * u.hw + t - plane * u.hw];
  let k = plane - n * u.c;
  out[t] = select(0.0, 1.0, valid(l) && u32(l) == k);`,
  weight: `  if (t >= u.n) { return; }
  let l = labels[t];
  out[t] = select(0.0, w[max(l, 0)], valid(l));`,
  float: `  if (t >= u.n) { return; }
  out[t] = f32(labels[t]);`,
};

const labelMapSource = (kind: LabelMapKind): KernelSource => ({
  key: `loss/label-${kind}`,
  bindings: ['read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32, c: u32, hw: u32, ignore: i32, div_hw: vec4<u32>, div_c: vec4<u32> }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
/** The tensor engine's rule: neither ignore_index nor outside [0, C). */
fn valid(l: i32) -> bool { return l != u.ignore && l >= 0 && l < i32(u.c); }
${MAIN}
${LABEL_BODY[kind]}
}`,
});

/**
 * A label-derived f32 map of i32 labels [N, ...]: `weights` ([C]) is read by 'weight' only (the
 * labels buffer stands in otherwise). The output is [N, C, ...] for 'onehot', [N, ...] else.
 */
export function labelMapKernel(
  device: Device,
  labels: Tensor,
  kind: LabelMapKind,
  c: number,
  ignoreIndex: number,
  weights: Tensor | null,
): Tensor {
  const n = labels.shape[0] ?? 1;
  const hw = labels.size / n;
  const out = emptyTensor(device, kind === 'onehot' ? [n, c, ...labels.shape.slice(1)] : labels.shape);
  const u = new Uniforms().u32(labels.size).u32(c).u32(hw).i32(ignoreIndex).divisor(hw).divisor(c);
  launch(device, labelMapSource(kind), [labels.buffer, (weights ?? labels).buffer, out.buffer], u, out.size);
  return out;
}

const bceSource = (backward: boolean): KernelSource => ({
  key: `loss/bce-${backward ? 'backward' : 'forward'}`,
  bindings: backward
    ? ['read', 'read', 'read', 'read', 'read', 'rw']
    : ['read', 'read', 'read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> pw: array<f32>;
${
  backward
    ? '@group(0) @binding(5) var<storage, read> g: array<f32>;\n@group(0) @binding(6) var<storage, read_write> out: array<f32>;'
    : '@group(0) @binding(5) var<storage, read_write> out: array<f32>;'
}
fn softplus_neg_abs(v: f32) -> f32 { return log(1.0 + exp(-abs(v))); }
fn sig(v: f32) -> f32 { return select(exp(v) / (1.0 + exp(v)), 1.0 / (1.0 + exp(-v)), v >= 0.0); }
${MAIN}
  if (t >= u.n) { return; }
  let xv = x[t];
  let yv = y[t];
  let lw = 1.0 + (pw[0] - 1.0) * yv;
  ${
    backward
      ? 'out[t] = g[t] * w[t] * ((1.0 - yv) - lw * sig(-xv));'
      : 'out[t] = w[t] * ((1.0 - yv) * xv + lw * (softplus_neg_abs(xv) + max(-xv, 0.0)));'
  }
}`,
});

/** Elementwise BCE with logits (forward), or its gradient wrt x given the upstream `g`. */
export function bceKernel(
  device: Device,
  x: Tensor,
  y: Tensor,
  w: Tensor,
  pw: Tensor,
  g: Tensor | null,
): Tensor {
  const out = emptyTensor(device, x.shape);
  const buffers = [x.buffer, y.buffer, w.buffer, pw.buffer, ...(g ? [g.buffer] : []), out.buffer];
  launch(device, bceSource(g !== null), buffers, new Uniforms().u32(x.size), x.size);
  return out;
}

/**
 * loss = (Σ num / count) / (Σ den / count + eps) from sums = [Σ num, Σ den]: PaddleSeg's
 * paddle.mean(a) / (paddle.mean(b) + EPS), its cross-entropy's and OHEM's final division.
 */
export const ratioFinalSource: KernelSource = {
  key: 'loss/ratio-final',
  bindings: ['read', 'rw'],
  workgroupSize: 1,
  wgsl: () => /* wgsl */ `
struct U { count: f32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> sums: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@compute @workgroup_size(1)
fn main() {
  loss[0] = (sums[0] / u.count) / (sums[1] / u.count + u.eps);
}`,
};

/** [v·w; w] (two rows), for the sums of `ratioOfMeansKernel`. */
const ratioTermsSource: KernelSource = {
  key: 'loss/ratio-terms',
  bindings: ['read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> terms: array<f32>;
${MAIN}
  if (t >= u.n) { return; }
  terms[t] = v[t] * w[t];
  terms[u.n + t] = w[t];
}`,
};

/** d loss / d v = g·w / (count·(Σ w / count + eps)). */
const ratioGradSource: KernelSource = {
  key: 'loss/ratio-grad',
  bindings: ['read', 'read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> sums: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dv: array<f32>;
${MAIN}
  if (t >= u.n) { return; }
  let count = f32(u.n);
  dv[t] = g[0] * w[t] / (count * (sums[1] / count + u.eps));
}`,
};

/** mean(v·w) / (mean(w) + eps) as a scalar, and the sums [Σ v·w, Σ w] its gradient reads. */
export function ratioOfMeansKernel(
  device: Device,
  v: Tensor,
  w: Tensor,
  eps: number,
): { loss: Tensor; sums: Tensor } {
  const terms = emptyTensor(device, [2, v.size]);
  launch(device, ratioTermsSource, [v.buffer, w.buffer, terms.buffer], new Uniforms().u32(v.size), v.size);
  const sums = reduceTo(device, terms, [2, 1], 'sum');
  terms.dispose();
  const loss = emptyTensor(device, []);
  launch(device, ratioFinalSource, [sums.buffer, loss.buffer], new Uniforms().f32(v.size).f32(eps), 1);
  return { loss, sums };
}

/** The gradient of `ratioOfMeansKernel` wrt v, given the upstream scalar `g`. */
export function ratioOfMeansGradKernel(
  device: Device,
  w: Tensor,
  sums: Tensor,
  g: Tensor,
  eps: number,
): Tensor {
  const dv = emptyTensor(device, w.shape);
  launch(
    device,
    ratioGradSource,
    [w.buffer, sums.buffer, g.buffer, dv.buffer],
    new Uniforms().u32(w.size).f32(eps),
    w.size,
  );
  return dv;
}
