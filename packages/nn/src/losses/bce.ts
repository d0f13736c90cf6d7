import {
  add,
  affine,
  bceWithLogits,
  cachedConstant,
  div,
  full,
  labelMap,
  mapNoGrad,
  mean,
  mul,
  ones as onesTensor,
  reshape,
  sum,
  type Tensor,
} from '@segtrain/tensor';

export interface BCELossOptions {
  /** Per-channel weights (length C, broadcast over N, H, W), 'dynamic', or null. */
  readonly weight?: readonly number[] | 'dynamic' | null;
  /** A positive-class weight, 'dynamic', or null. */
  readonly pos_weight?: number | 'dynamic' | null;
  readonly ignore_index?: number;
  /** Accepted for config compatibility; see the note below. */
  readonly edge_label?: boolean;
}

/**
 * PaddleSeg BCELoss (paddleseg/models/losses/binary_cross_entropy_loss.py), as implemented:
 *   mask = label ≠ ignore ([N, 1, H, W]); when C > 1 the label becomes one-hot over C channels
 *   (an ignored pixel's one-hot is all zeros here; Paddle's one_hot would reject 255);
 *   'dynamic' weight: pos = #(label == 1), neg = #(label == 0) over the (one-hot) label,
 *     weight = 2·neg/(pos+neg+1e-10) at label 1 and 2·pos/(pos+neg+1e-10) at label 0;
 *   'dynamic' pos_weight: 2·neg/(pos+neg+1e-10);
 *   loss_e = F.binary_cross_entropy_with_logits(logit, label, weight, pos_weight, 'none')
 *          = w·[(1 − y)·x + (1 + (pw − 1)·y)·(log(1 + e^{−|x|}) + max(−x, 0))]
 *   loss = mean(loss_e·mask) / (mean(mask) + 1e-10)
 * (mean(loss·mask) is over N·C·H·W, mean(mask) over N·H·W, exactly as Paddle broadcasts them.)
 * For a single channel the label is used as the 0/1 target (ignored pixels are masked; their target
 * is replaced by 0 so the masked term stays finite). edge_label is accepted and has no effect here:
 * the label is expected to already be the edge map (0/1 with ignore_index).
 */
export function bceLoss(logits: Tensor, labels: Tensor, options: BCELossOptions = {}): Tensor {
  const eps = 1e-10;
  const n = logits.shape[0] ?? 1;
  const c = logits.shape[1] ?? 1;
  const ignore = options.ignore_index ?? 255;
  const device = logits.device;
  const spatial = labels.shape.slice(1);
  const valid = labelMap(labels, 'valid', Math.max(c, 2), ignore);
  const mask = reshape(valid, [n, 1, ...spatial]);
  valid.dispose();
  let target: Tensor;
  // What Paddle counts for 'dynamic' weights: the raw label (255 is neither 0 nor 1) or the one-hot.
  let counted: Tensor;
  if (c === 1) {
    const raw = labelMap(labels, 'float', 1, ignore);
    const vflat = labelMap(labels, 'valid', 2, ignore);
    target = reshape(mapNoGrad('a * b', [raw, vflat]), logits.shape);
    vflat.dispose();
    counted = raw;
  } else {
    target = labelMap(labels, 'onehot', c, ignore);
    counted = target;
  }
  const ones = onesTensor(device, logits.shape);
  let weightT: Tensor;
  let posWeightT: Tensor;
  const counts = () => {
    const pos = sum(mapNoGrad('select(0.0, 1.0, a == 1.0)', [counted]));
    const neg = sum(mapNoGrad('select(0.0, 1.0, a == 0.0)', [counted]));
    const total = affine(add(pos, neg), 1, eps);
    return { pos, neg, total };
  };
  const w = options.weight ?? null;
  if (w === 'dynamic') {
    const { pos, neg, total } = counts();
    const wPos = affine(div(neg, total), 2);
    const wNeg = affine(div(pos, total), 2);
    // weight = wPos·label + wNeg·(1 − label)
    weightT = add(mul(target, wPos), mul(affine(target, -1, 1), wNeg));
  } else if (w) {
    if (w.length !== c) throw new Error(`BCELoss: ${w.length} weights for ${c} channels`);
    weightT = mul(ones, cachedConstant(device, w, [1, c, ...spatial.map(() => 1)]));
  } else weightT = ones;
  const pw = options.pos_weight ?? null;
  if (pw === 'dynamic') {
    const { neg, total } = counts();
    posWeightT = reshape(affine(div(neg, total), 2), [1]);
  } else posWeightT = full(device, [1], pw ?? 1);
  const loss = bceWithLogits(logits, target, weightT, posWeightT);
  const numerator = mean(mul(loss, mask));
  return div(numerator, affine(mean(mask), 1, eps));
}
