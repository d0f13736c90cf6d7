import { record } from '../autograd/engine.js';
import { mapKernel } from '../kernels/elementwise.js';
import {
  bceKernel,
  type LabelMapKind,
  labelMapKernel,
  ratioOfMeansGradKernel,
  ratioOfMeansKernel,
} from '../kernels/loss.js';
import type { Tensor } from '../tensor.js';
import { cachedConstant } from './create.js';

export type { LabelMapKind };

/**
 * Label-derived f32 maps (no gradient) from i32 labels [N, ...spatial] and C classes:
 * - 'valid': [N, ...] 1 where label ≠ ignoreIndex and 0 ≤ label < C, else 0;
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
  if (classWeights && classWeights.length !== c)
    throw new Error(`labelMap: ${classWeights.length} class weights for ${c} classes`);
  const device = labels.device;
  const weights =
    kind === 'weight' ? cachedConstant(device, classWeights ?? new Array<number>(c).fill(1), [c]) : null;
  return labelMapKernel(device, labels, kind, c, ignoreIndex, weights);
}

/**
 * `expr(a, b, c, s0..s3)` elementwise over same-size f32 tensors, without autograd: masks,
 * thresholds and weights that no gradient flows through. `expr` is WGSL.
 */
export function mapNoGrad(expr: string, inputs: readonly Tensor[], scalars: readonly number[] = []): Tensor {
  const [first] = inputs;
  if (!first) throw new Error('mapNoGrad needs an input');
  if (inputs.length > 3) throw new Error(`mapNoGrad: at most 3 inputs, got ${inputs.length}`);
  for (const t of inputs) {
    if (t.size !== first.size) throw new Error('mapNoGrad: inputs must have the same size');
    if (t.dtype !== 'f32') throw new Error('mapNoGrad: inputs must be f32');
  }
  return mapKernel(first.device, expr, inputs, scalars);
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
  const out = bceKernel(device, x, y, w, pw, null);
  return record(out, 'bceWithLogits', [x], [x, y, w, pw], (g) => [bceKernel(device, x, y, w, pw, g)]);
}

/**
 * mean(v·w) / (mean(w) + eps), a scalar: PaddleSeg's masked-loss normalisation (OHEM's
 * `paddle.mean(loss·mask) / (paddle.mean(mask) + EPS)`) in three dispatches and a one-dispatch
 * gradient, where mul, two means, an affine and a division took ten. Gradient wrt v only: w is a
 * mask or weight computed without one.
 */
export function ratioOfMeans(v: Tensor, w: Tensor, eps: number): Tensor {
  if (v.size !== w.size)
    throw new Error(`ratioOfMeans: v has ${v.size} values, w ${w.size}; they must match`);
  if (v.dtype !== 'f32' || w.dtype !== 'f32') throw new Error('ratioOfMeans: v and w must be f32');
  if (w.requiresGrad) throw new Error('ratioOfMeans: w gets no gradient; compute it under noGrad');
  const { loss, sums } = ratioOfMeansKernel(v.device, v, w, eps);
  const out = record(loss, 'ratioOfMeans', [v], [w], (g) => {
    const dv = ratioOfMeansGradKernel(v.device, w, sums, g, eps);
    sums.dispose();
    return [dv];
  });
  if (!out.gradFn) sums.dispose();
  return out;
}
