import { record, traceAttrs } from '../autograd/engine.js';
import {
  crossEntropyBackward,
  crossEntropyForward,
  type PixelArgs,
  pixelCrossEntropyBackward,
  pixelCrossEntropyForward,
  softmaxBackward,
  softmaxForward,
  trueClassProb,
} from '../kernels/softmax.js';
import { formatShape, type Tensor } from '../tensor.js';
import { cachedConstant } from './create.js';

/** Softmax along `axis` (negative counts from the end). */
export function softmax(x: Tensor, axis = -1): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  if (a < 0 || a >= x.rank)
    throw new Error(`softmax: axis ${axis} is out of range for shape ${formatShape(x.shape)}`);
  const device = x.device;
  const y = softmaxForward(device, x, a);
  traceAttrs(y, { axis: a });
  return record(y, 'softmax', [x], [y], (g) => [softmaxBackward(device, y, g, a)]);
}

export interface CrossEntropyOptions {
  /** Pixels with this label contribute nothing (PaddleSeg default 255). */
  readonly ignoreIndex?: number;
  /** Per-class weights (length C), applied to each pixel by its label. */
  readonly classWeights?: readonly number[];
  /**
   * true (default): divide by the weighted count of non-ignored pixels; false: by the pixel count
   * (PaddleSeg's mask of ones).
   */
  readonly avgNonIgnore?: boolean;
}

function pixelArgs(
  op: string,
  logits: Tensor,
  labels: Tensor,
  ignoreIndex: number,
  classWeights: readonly number[] | undefined,
  avgNonIgnore: boolean,
): PixelArgs {
  if (logits.rank < 2) throw new Error(`${op}: logits must be [N, C, ...], got ${formatShape(logits.shape)}`);
  const n = logits.shape[0] ?? 1;
  const c = logits.shape[1] ?? 1;
  const spatial = logits.shape.slice(2);
  const expected = [n, ...spatial];
  if (labels.rank !== expected.length || labels.shape.some((d, i) => d !== expected[i]))
    throw new Error(
      `${op}: labels ${formatShape(labels.shape)} must be ${formatShape(expected)} for logits ${formatShape(logits.shape)}`,
    );
  if (labels.dtype !== 'i32') throw new Error(`${op}: labels must be an i32 tensor`);
  if (classWeights && classWeights.length !== c)
    throw new Error(`${op}: ${classWeights.length} class weights for ${c} classes`);
  return {
    logits,
    labels,
    weights: classWeights ? cachedConstant(logits.device, classWeights, [c]) : null,
    ignoreIndex,
    avgNonIgnore,
  };
}

/**
 * PaddleSeg CrossEntropyLoss (top_k_percent_pixels 1.0) on logits [N, C, H, W] and i32 labels
 * [N, H, W], fused: per-pixel log-softmax over C, then the scalar
 *   loss = mean(w·CE·mask) / (mean(w·mask) + 1e-8)
 * with w = classWeights[label] (1 without weights) and mask = label ≠ ignoreIndex — means over all
 * N·H·W pixels, so the 1e-8 is added to a mean, as in PaddleSeg. With avgNonIgnore false the
 * denominator is mean(1) + 1e-8 (PaddleSeg's mask of ones; ignored pixels still add no loss).
 * Labels outside [0, C) other than ignoreIndex cannot be reported from the GPU without a readback:
 * the data layer validates them; here they count as ignored.
 */
export function softmaxCrossEntropy(
  logits: Tensor,
  labels: Tensor,
  options: CrossEntropyOptions = {},
): Tensor {
  const args = pixelArgs(
    'softmaxCrossEntropy',
    logits,
    labels,
    options.ignoreIndex ?? 255,
    options.classWeights,
    options.avgNonIgnore ?? true,
  );
  const device = logits.device;
  const { loss, lse, sums } = crossEntropyForward(device, args);
  const out = record(loss, 'softmaxCrossEntropy', [logits], [logits], (g) => {
    const dx = crossEntropyBackward(device, args, lse, sums, g);
    lse.dispose();
    sums.dispose();
    return [dx];
  });
  if (!out.gradFn) {
    lse.dispose();
    sums.dispose();
  }
  return out;
}

/**
 * Per-pixel softmax probability of the ground-truth class ([N, H, W]), for OHEM thresholds; pixels
 * labelled ignoreIndex get 2.0 so they sort after every real probability. No gradient.
 */
export function pixelTrueProb(logits: Tensor, labels: Tensor, ignoreIndex = 255): Tensor {
  return trueClassProb(
    logits.device,
    pixelArgs('pixelTrueProb', logits, labels, ignoreIndex, undefined, true),
  );
}

export interface PixelCrossEntropyOptions {
  /** Pixels with this label get 0 loss and 0 gradient (PaddleSeg default 255). */
  readonly ignoreIndex?: number;
  /** Per-class weights (length C), applied to each pixel by its label. */
  readonly classWeights?: readonly number[] | null;
}

/**
 * Per-pixel (optionally class-weighted) cross-entropy [N, ...spatial] from logits [N, C, ...] and
 * i32 labels: w[label]·(logsumexp − logit[label]) at valid pixels, 0 at ignored ones — Paddle's
 * F.cross_entropy(..., weight, ignore_index, reduction='none'). Gradient g·w·(softmax − onehot).
 */
export function pixelCrossEntropy(
  logits: Tensor,
  labels: Tensor,
  options: PixelCrossEntropyOptions = {},
): Tensor {
  const args = pixelArgs(
    'pixelCrossEntropy',
    logits,
    labels,
    options.ignoreIndex ?? 255,
    options.classWeights ?? undefined,
    true,
  );
  return withPixelCrossEntropyGradient(args, pixelCrossEntropyForward(logits.device, args));
}

/** Records the per-pixel loss's gradient, which reads the forward's log-sum-exp (freed after it). */
function withPixelCrossEntropyGradient(args: PixelArgs, forward: { loss: Tensor; lse: Tensor }): Tensor {
  const { loss, lse } = forward;
  const out = record(loss, 'pixelCrossEntropy', [args.logits], [args.logits, args.labels], (g) => {
    const dx = pixelCrossEntropyBackward(loss.device, args, lse, g);
    lse.dispose();
    return [dx];
  });
  if (!out.gradFn) lse.dispose();
  return out;
}

/**
 * `pixelCrossEntropy` (no class weights) and `pixelTrueProb` from one walk over the logits, the
 * same values as the two (OHEM needs both).
 */
export function pixelCrossEntropyAndTrueProb(
  logits: Tensor,
  labels: Tensor,
  ignoreIndex = 255,
): { loss: Tensor; trueProb: Tensor } {
  const args = pixelArgs('pixelCrossEntropyAndTrueProb', logits, labels, ignoreIndex, undefined, true);
  const forward = pixelCrossEntropyForward(logits.device, args, true);
  return { loss: withPixelCrossEntropyGradient(args, forward), trueProb: forward.trueProb as Tensor };
}
