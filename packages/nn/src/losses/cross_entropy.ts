import {
  affine,
  div,
  kthSmallest,
  labelMap,
  mapNoGrad,
  mul,
  noGrad,
  ohemKeepMask,
  pixelCrossEntropy,
  pixelCrossEntropyAndTrueProb,
  ratioOfMeans,
  softmaxCrossEntropy,
  sum,
  type Tensor,
} from '@segtrain/tensor';

export interface CrossEntropyLossOptions {
  /** Per-class weights (length C) or null. */
  readonly weight?: readonly number[] | null;
  readonly ignore_index?: number;
  /** In (0, 1]: keep only the top k% per-pixel losses. */
  readonly top_k_percent_pixels?: number;
  readonly avg_non_ignore?: boolean;
}

/**
 * PaddleSeg CrossEntropyLoss (paddleseg/models/losses/cross_entropy_loss.py):
 *   loss_p = w[label_p]·CE_p·mask_p (mask = label ≠ ignore; F.cross_entropy reduction 'none')
 *   coef_p = w[label_p] (1 without weights)
 *   top_k_percent_pixels == 1: mean(loss) / (mean(mask·coef) + 1e-8)   (means over all N·H·W pixels)
 *   top_k_percent_pixels < 1: k = int(top_k·N·H·W); keep the k largest loss_p;
 *                             mean(kept loss) / (mean(coef of kept pixels) + 1e-8)
 * avg_non_ignore false: the denominator mask is all ones (see softmaxCrossEntropy).
 *
 * The top-k path reads back: the k-th largest per-pixel loss is found exactly on the GPU by
 * kthSmallest(−loss, k−1) (two 256 KiB histogram readbacks), so it returns a Promise. Pixels tied
 * with that value share the remaining (k − #greater) slots equally (a fractional keep weight):
 * the forward value is the same as any choice among the ties (paddle.topk's choice among equal
 * values is unspecified); the tied pixels' coef and gradient are averaged. Ties happen in practice
 * at 0 (ignored pixels) when k exceeds the number of non-zero losses; there, as in Paddle, an
 * ignored pixel's coef is w[0] (Paddle one-hot of label·mask = class 0) — 1 without weights.
 */
export function crossEntropyLoss(
  logits: Tensor,
  labels: Tensor,
  options: CrossEntropyLossOptions = {},
): Tensor {
  const topK = options.top_k_percent_pixels ?? 1.0;
  if (topK !== 1.0)
    throw new Error('crossEntropyLoss: top_k_percent_pixels < 1 reads back; use crossEntropyLossAsync');
  return softmaxCrossEntropy(logits, labels, {
    ignoreIndex: options.ignore_index ?? 255,
    classWeights: options.weight ?? undefined,
    avgNonIgnore: options.avg_non_ignore ?? true,
  });
}

export async function crossEntropyLossAsync(
  logits: Tensor,
  labels: Tensor,
  options: CrossEntropyLossOptions = {},
): Promise<Tensor> {
  const topK = options.top_k_percent_pixels ?? 1.0;
  if (!(topK > 0 && topK <= 1))
    throw new Error(`CrossEntropyLoss: top_k_percent_pixels must be in (0, 1], got ${topK}`);
  const c = logits.shape[1] ?? 1;
  const weight = options.weight ?? null;
  if (weight && weight.length !== c)
    throw new Error(
      `The number of weights = ${weight.length} must be the same as the number of classes = ${c}.`,
    );
  if (topK === 1.0) return crossEntropyLoss(logits, labels, options);
  const ignore = options.ignore_index ?? 255;
  const loss = pixelCrossEntropy(logits, labels, { ignoreIndex: ignore, classWeights: weight });
  const total = loss.size;
  const k = Math.trunc(topK * total);
  if (k < 1) throw new Error(`CrossEntropyLoss: top_k_percent_pixels ${topK} keeps no pixel of ${total}`);
  const negLoss = mapNoGrad('-a', [loss]);
  // coef = w[label·mask]: w[label] at valid pixels, w[0] at ignored ones (1 everywhere without weights).
  const w = labelMap(labels, 'weight', c, ignore, weight);
  const valid = labelMap(labels, 'valid', c, ignore);
  const coef = mapNoGrad('select(s0, a, b > 0.5)', [w, valid], [weight ? (weight[0] ?? 1) : 1]);
  w.dispose();
  valid.dispose();
  // Readback: exact k-th largest per-pixel loss.
  const threshold = -(await kthSmallest(logits.device, negLoss, k - 1));
  negLoss.dispose();
  // Second readback: how many losses lie strictly above / exactly at the threshold (exact integer
  // counts read as i32-exact f32 sums up to 2^24 pixels).
  const gt = mapNoGrad('select(0.0, 1.0, a > s0)', [loss], [threshold]);
  const eq = mapNoGrad('select(0.0, 1.0, a == s0)', [loss], [threshold]);
  const sgt = sum(gt);
  const seq = sum(eq);
  const greater = await sgt.item();
  const tied = await seq.item();
  sgt.dispose();
  seq.dispose();
  const share = Math.max(0, k - greater) / Math.max(tied, 1);
  const keepWeight = mapNoGrad('a + b * s0', [gt, eq], [share]);
  gt.dispose();
  eq.dispose();
  const numerator = affine(sum(mul(loss, keepWeight)), 1 / k);
  const denom = noGrad(() => affine(sum(mul(coef, keepWeight)), 1 / k, 1e-8));
  coef.dispose();
  return div(numerator, denom);
}

export interface OhemCrossEntropyLossOptions {
  readonly thresh?: number;
  readonly min_kept?: number;
  readonly ignore_index?: number;
}

/**
 * PaddleSeg OhemCrossEntropyLoss (spec d.1): p = softmax prob of the label per pixel (ignored > 1);
 * if min_kept < #valid (and min_kept > 0): threshold = max(thresh, p sorted ascending at position
 * min_kept − 1), kept = valid ∧ p < threshold (strict); otherwise kept = valid. (With min_kept ≤ 0
 * Paddle computes the threshold but applies no keep mask — reproduced.)
 *   loss = mean(CE·kept) / (mean(kept) + 1e-5)   (means over all N·H·W pixels)
 *
 * No readback: ohemKeepMask finds the (min_kept − 1)-th and min_kept-th smallest p on the GPU
 * (exact radix selection on the float32 p; the second is ≤ 1 iff more than min_kept pixels are
 * valid), so the step never waits for the GPU here (it used to, four times per loss).
 */
export async function ohemCrossEntropyLoss(
  logits: Tensor,
  labels: Tensor,
  options: OhemCrossEntropyLossOptions = {},
): Promise<Tensor> {
  const thresh = options.thresh ?? 0.7;
  const minKept = options.min_kept ?? 10000;
  const ignore = options.ignore_index ?? 255;
  const c = logits.shape[1] ?? 1;
  const device = logits.device;
  // The per-pixel loss and p from one walk over the logits.
  const { loss: ce, trueProb: p } = pixelCrossEntropyAndTrueProb(logits, labels, ignore);
  const kept = noGrad(() =>
    minKept > 0 && minKept < p.size
      ? ohemKeepMask(device, p, minKept, thresh)
      : labelMap(labels, 'valid', c, ignore),
  );
  p.dispose();
  return ratioOfMeans(ce, kept, 1e-5);
}
