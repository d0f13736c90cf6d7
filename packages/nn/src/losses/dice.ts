import {
  add,
  affine,
  cachedConstant,
  div,
  labelMap,
  mean,
  mul,
  reshape,
  softmax,
  sum,
  type Tensor,
} from '@segtrain/tensor';

export interface DiceLossOptions {
  /** Per-class weights (length C) or null. */
  readonly weight?: readonly number[] | null;
  readonly ignore_index?: number;
  readonly smooth?: number;
}

/**
 * PaddleSeg DiceLoss (paddleseg/models/losses/dice_loss.py, 2.5+): probs = softmax(logits, 1);
 * mask = label ≠ ignore; one-hot of label with ignored pixels set to class 0; per class c and
 * sample n (dice_loss_helper):
 *   p = probs[:, c]·mask, t = onehot[:, c]·mask
 *   d[n, c] = 1 − (2·Σ p·t + smooth) / (Σ (p + t) + smooth + 1e-8)
 * loss = Σ_c weight[c]·mean_n d[n, c] / C   (weight 1 without weights).
 */
export function diceLoss(logits: Tensor, labels: Tensor, options: DiceLossOptions = {}): Tensor {
  const n = logits.shape[0] ?? 1;
  const c = logits.shape[1] ?? 1;
  const weight = options.weight ?? null;
  if (weight && weight.length !== c) throw new Error('The lenght of weight should be euqal to the num class');
  const ignore = options.ignore_index ?? 255;
  const smooth = options.smooth ?? 1.0;
  const device = logits.device;
  // onehot is zero at invalid pixels, which equals one_hot(0)·mask.
  const onehot = labelMap(labels, 'onehot', c, ignore);
  const valid = labelMap(labels, 'valid', c, ignore);
  const mask = reshape(valid, [n, 1, ...labels.shape.slice(1)]);
  valid.dispose();
  const probs = mul(softmax(logits, 1), mask);
  const axes = logits.shape.slice(2).map((_, i) => i + 2);
  const inter = sum(mul(probs, onehot), axes);
  const card = add(sum(probs, axes), sum(onehot, axes));
  const d = affine(div(affine(inter, 2, smooth), affine(card, 1, smooth + 1e-8)), -1, 1);
  const perClass = mean(d, 0);
  const w = cachedConstant(device, weight ?? new Array<number>(c).fill(1), [c]);
  return affine(sum(mul(perClass, w)), 1 / c);
}
