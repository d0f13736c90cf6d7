/**
 * Small GPU kernels the losses need that @segtrain/tensor does not export as ops: label maps
 * (valid mask, one-hot, per-pixel class weight, label as float), scalar comparisons, a per-pixel
 * cross-entropy op with autograd, and PaddleSeg's binary_cross_entropy_with_logits with autograd.
 * They use only the public Device/Tensor API (kernel + dispatch + pooled buffers).
 */
import {
  type Device,
  type KernelSource,
  persistent,
  record,
  type Shape,
  shapeSize,
  Tensor,
} from '@segtrain/tensor';

const WG = 256;
const LINEAR_ID = `fn linear_id(gid: vec3<u32>, groups: vec3<u32>, wg: u32) -> u32 { return gid.x + gid.y * groups.x * wg; }`;
const MAIN = `${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);`;

/** A new pooled activation tensor (no autograd history). */
export function empty(device: Device, shape: Shape): Tensor {
  return new Tensor(device, shape, 'f32', device.acquire(shapeSize(shape) * 4), 'activation');
}

function run(
  device: Device,
  source: KernelSource,
  buffers: Tensor['buffer'][],
  uniforms: ArrayBuffer,
  threads: number,
) {
  const groups = Math.max(1, Math.ceil(threads / WG));
  const max = device.limits.maxComputeWorkgroupsPerDimension;
  const y = Math.ceil(groups / max);
  device.dispatch(device.kernel(source), buffers, new Uint8Array(uniforms), [Math.ceil(groups / y), y]);
}

/** Uniform block: u32 count, then up to 7 f32 scalars (32 bytes). */
function uniforms(n: number, scalars: readonly number[] = [], ints: readonly number[] = []): ArrayBuffer {
  const buf = new ArrayBuffer(48);
  const view = new DataView(buf);
  view.setUint32(0, n, true);
  for (let i = 0; i < 4; i++) view.setFloat32(4 + 4 * i, scalars[i] ?? 0, true);
  for (let i = 0; i < 4; i++) view.setInt32(20 + 4 * i, ints[i] ?? 0, true);
  return buf;
}

const U = 'struct U { n: u32, s0: f32, s1: f32, s2: f32, s3: f32, i0: i32, i1: i32, i2: i32, i3: i32 }';

function mapSource(expr: string, arity: number): KernelSource {
  const names = ['a', 'b', 'c'].slice(0, arity);
  return {
    key: `nn-losses/map/${arity}/${expr}`,
    bindings: [...names.map(() => 'read' as const), 'rw'],
    workgroupSize: WG,
    wgsl: () => `${U}
@group(0) @binding(0) var<uniform> u: U;
${names.map((x, i) => `@group(0) @binding(${i + 1}) var<storage, read> in_${x}: array<f32>;`).join('\n')}
@group(0) @binding(${arity + 1}) var<storage, read_write> out: array<f32>;
${MAIN}
  if (t >= u.n) { return; }
  let s0 = u.s0; let s1 = u.s1; let s2 = u.s2; let s3 = u.s3;
${names.map((x) => `  let ${x} = in_${x}[t];`).join('\n')}
  out[t] = ${expr};
}`,
  };
}

/** `out = expr(a, b, c, s0..s3)` elementwise over same-size f32 tensors, without autograd. */
export function mapNoGrad(expr: string, inputs: readonly Tensor[], scalars: readonly number[] = []): Tensor {
  const [first] = inputs;
  if (!first) throw new Error('mapNoGrad needs an input');
  for (const t of inputs) {
    if (t.size !== first.size) throw new Error('mapNoGrad: inputs must have the same size');
    if (t.dtype !== 'f32') throw new Error('mapNoGrad: inputs must be f32');
  }
  const out = empty(first.device, first.shape);
  run(
    first.device,
    mapSource(expr, inputs.length),
    [...inputs.map((t) => t.buffer), out.buffer],
    uniforms(first.size, scalars),
    first.size,
  );
  return out;
}

export type LabelMapKind = 'valid' | 'onehot' | 'weight' | 'float';

/**
 * Label-derived f32 maps (no gradient) from i32 labels [N, ...spatial] and C classes:
 * - 'valid': [N, ...] 1 where label ≠ ignoreIndex and 0 ≤ label < C (the tensor engine's rule), else 0;
 * - 'onehot': [N, C, ...] one-hot of valid labels, all zeros at invalid pixels;
 * - 'weight': [N, ...] classWeights[label] at valid pixels, 0 elsewhere (1 per class without weights);
 * - 'float': [N, ...] the raw label value as f32 (ignored pixels keep their value, e.g. 255).
 */
export function labelMap(
  labels: Tensor,
  kind: LabelMapKind,
  c: number,
  ignoreIndex: number,
  classWeights?: readonly number[] | null,
): Tensor {
  if (labels.dtype !== 'i32') throw new Error('labelMap: labels must be an i32 tensor');
  const device = labels.device;
  const n = labels.shape[0] ?? 1;
  const hw = labels.size / n;
  const outShape = kind === 'onehot' ? [n, c, ...labels.shape.slice(1)] : labels.shape;
  const out = empty(device, outShape);
  if (classWeights && classWeights.length !== c)
    throw new Error(`labelMap: ${classWeights.length} class weights for ${c} classes`);
  // Only 'weight' reads w; the other kinds bind the labels buffer in its place (read-only aliasing).
  const wBuffer =
    kind === 'weight'
      ? cachedConstant(device, classWeights ?? new Array<number>(c).fill(1), [c]).buffer
      : labels.buffer;
  const body =
    kind === 'onehot'
      ? `if (t >= u.n * u32(u.i1)) { return; }
  let i = t % u32(u.i2);
  let k = (t / u32(u.i2)) % u32(u.i1);
  let p = (t / (u32(u.i2) * u32(u.i1))) * u32(u.i2) + i;
  let l = labels[p];
  out[t] = select(0.0, 1.0, valid(l) && u32(l) == k);`
      : `if (t >= u.n) { return; }
  let l = labels[t];
  ${
    kind === 'valid'
      ? 'out[t] = select(0.0, 1.0, valid(l));'
      : kind === 'weight'
        ? 'out[t] = select(0.0, w[max(l, 0)], valid(l));'
        : 'out[t] = f32(l);'
  }`;
  const source: KernelSource = {
    key: `nn-losses/label/${kind}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: WG,
    wgsl: () => `${U}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
fn valid(l: i32) -> bool { return l != u.i0 && l >= 0 && l < u.i1; }
${MAIN}
  ${body}
}`,
  };
  run(
    device,
    source,
    [labels.buffer, wBuffer, out.buffer],
    uniforms(labels.size, [], [ignoreIndex, c, hw]),
    out.size,
  );
  return out;
}

const PIXEL_CE_HEAD = `${U}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
fn valid(l: i32) -> bool { return l != u.i0 && l >= 0 && l < u.i1; }
fn lse(base: u32) -> f32 {
  let c = u32(u.i1); let hw = u32(u.i2);
  var m = logits[base];
  for (var k = 1u; k < c; k++) { m = max(m, logits[base + k * hw]); }
  var s = 0.0;
  for (var k = 0u; k < c; k++) { s += exp(logits[base + k * hw] - m); }
  return m + log(s);
}`;

const pixelCeForward: KernelSource = {
  key: 'nn-losses/pixel-ce/forward',
  bindings: ['read', 'read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => `${PIXEL_CE_HEAD}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${MAIN}
  if (t >= u.n) { return; }
  let c = u32(u.i1); let hw = u32(u.i2);
  let base = (t / hw) * c * hw + t % hw;
  let l = labels[t];
  if (!valid(l)) { out[t] = 0.0; return; }
  out[t] = w[l] * (lse(base) - logits[base + u32(l) * hw]);
}`,
};

// One invocation per pixel: the log-sum-exp is computed once and all C gradients written (one
// invocation per logit recomputed it C times, which made this the slowest kernel of a step).
const pixelCeBackward: KernelSource = {
  key: 'nn-losses/pixel-ce/backward',
  bindings: ['read', 'read', 'read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => `${PIXEL_CE_HEAD}
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
${MAIN}
  if (t >= u.n) { return; }
  let c = u32(u.i1); let hw = u32(u.i2);
  let base = (t / hw) * c * hw + t % hw;
  let l = labels[t];
  if (!valid(l)) {
    for (var k = 0u; k < c; k++) { dx[base + k * hw] = 0.0; }
    return;
  }
  let m = lse(base);
  let s = g[t] * w[l];
  for (var k = 0u; k < c; k++) {
    let at = base + k * hw;
    dx[at] = s * (exp(logits[at] - m) - select(0.0, 1.0, u32(l) == k));
  }
}`,
};

/**
 * Per-pixel (optionally class-weighted) cross-entropy [N, ...spatial] from logits [N, C, ...] and
 * i32 labels: w[label]·(logsumexp − logit[label]) at valid pixels, 0 at ignored ones — Paddle's
 * F.cross_entropy(..., weight, ignore_index, reduction='none'). Gradient g·w·(softmax − onehot).
 */
export function pixelCrossEntropy(
  logits: Tensor,
  labels: Tensor,
  ignoreIndex = 255,
  classWeights?: readonly number[] | null,
): Tensor {
  const n = logits.shape[0] ?? 1;
  const c = logits.shape[1] ?? 1;
  const spatial = logits.shape.slice(2);
  const expected = [n, ...spatial];
  if (labels.dtype !== 'i32') throw new Error('pixelCrossEntropy: labels must be an i32 tensor');
  if (labels.rank !== expected.length || labels.shape.some((d, i) => d !== expected[i]))
    throw new Error(
      `pixelCrossEntropy: labels [${labels.shape.join(', ')}] must be [${expected.join(', ')}] for logits [${logits.shape.join(', ')}]`,
    );
  const weights = classWeights ?? new Array<number>(c).fill(1);
  if (weights.length !== c)
    throw new Error(`pixelCrossEntropy: ${weights.length} class weights for ${c} classes`);
  const device = logits.device;
  const hw = labels.size / n;
  const wt = cachedConstant(device, weights, [c]);
  const out = empty(device, labels.shape);
  const u = uniforms(labels.size, [], [ignoreIndex, c, hw]);
  run(device, pixelCeForward, [logits.buffer, labels.buffer, wt.buffer, out.buffer], u, labels.size);
  return record(out, 'pixelCrossEntropy', [logits], [logits, labels], (g) => {
    const dx = empty(device, logits.shape);
    run(
      device,
      pixelCeBackward,
      [logits.buffer, labels.buffer, wt.buffer, g.buffer, dx.buffer],
      u,
      labels.size,
    );
    return [dx];
  });
}

const BCE_TERMS = `
fn softplus_neg_abs(x: f32) -> f32 { return log(1.0 + exp(-abs(x))); }
fn sig(x: f32) -> f32 { return select(exp(x) / (1.0 + exp(x)), 1.0 / (1.0 + exp(-x)), x >= 0.0); }`;

function bceSource(backward: boolean): KernelSource {
  return {
    key: `nn-losses/bce/${backward ? 'backward' : 'forward'}`,
    bindings: backward
      ? ['read', 'read', 'read', 'read', 'read', 'rw']
      : ['read', 'read', 'read', 'read', 'rw'],
    workgroupSize: WG,
    wgsl: () => `${U}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> pw: array<f32>;
${backward ? '@group(0) @binding(5) var<storage, read> g: array<f32>;\n@group(0) @binding(6) var<storage, read_write> out: array<f32>;' : '@group(0) @binding(5) var<storage, read_write> out: array<f32>;'}
${BCE_TERMS}
${MAIN}
  if (t >= u.n) { return; }
  let xv = x[t]; let yv = y[t];
  let lw = 1.0 + (pw[0] - 1.0) * yv;
  ${
    backward
      ? 'out[t] = g[t] * w[t] * ((1.0 - yv) - lw * sig(-xv));'
      : 'out[t] = w[t] * ((1.0 - yv) * xv + lw * (softplus_neg_abs(xv) + max(-xv, 0.0)));'
  }
}`,
  };
}

/**
 * Elementwise Paddle F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction='none'):
 *   w·[(1 − y)·x + (1 + (pw − 1)·y)·(log(1 + e^{−|x|}) + max(−x, 0))]
 * (pw = 1 gives max(x, 0) − x·y + log(1 + e^{−|x|})). y, w same shape as x; pw a 1-element tensor.
 * Gradient (x only): g·w·[(1 − y) − (1 + (pw − 1)·y)·σ(−x)].
 */
export function bceWithLogits(x: Tensor, y: Tensor, w: Tensor, pw: Tensor): Tensor {
  if (y.size !== x.size || w.size !== x.size || pw.size !== 1)
    throw new Error('bceWithLogits: target and weight must match the logits; pos_weight one value');
  const device = x.device;
  const out = empty(device, x.shape);
  const u = uniforms(x.size);
  run(device, bceSource(false), [x.buffer, y.buffer, w.buffer, pw.buffer, out.buffer], u, x.size);
  return record(out, 'bceWithLogits', [x], [x, y, w, pw], (g) => {
    const dx = empty(device, x.shape);
    run(device, bceSource(true), [x.buffer, y.buffer, w.buffer, pw.buffer, g.buffer, dx.buffer], u, x.size);
    return [dx];
  });
}

const constantCache = new WeakMap<Device, Map<string, Tensor>>();

/**
 * A small persistent constant (class weights, fixed kernels), uploaded once per device and values —
 * not every step (an upload flushes the recorded work). Never dispose the result.
 */
export function cachedConstant(device: Device, values: readonly number[], shape: Shape): Tensor {
  let byKey = constantCache.get(device);
  if (!byKey) {
    byKey = new Map();
    constantCache.set(device, byKey);
  }
  const key = `${shape.join('x')}:${values.join(',')}`;
  let t = byKey.get(key);
  if (!t || t.isDisposed) {
    t = persistent(device, values, shape, 'loss-constant');
    byKey.set(key, t);
  }
  return t;
}

/** Uploads host values as a (non-grad) f32 activation tensor. */
export function constant(device: Device, values: ArrayLike<number>, shape: Shape): Tensor {
  const t = empty(device, shape);
  device.write(t.buffer, Float32Array.from(values));
  return t;
}
