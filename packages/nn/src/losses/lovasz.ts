import { add, affine, labelMap, mul, softmax, sum, type Tensor, tensor } from '@segtrain/tensor';

export interface LovaszSoftmaxLossOptions {
  readonly ignore_index?: number;
  /** 'present' (default), 'all', or a list of class ids. */
  readonly classes?: 'present' | 'all' | readonly number[];
}

/** lovasz_grad of a descending-sorted 0/1 foreground vector (float64). */
function lovaszGrad(fgSorted: ArrayLike<number>): Float64Array {
  const p = fgSorted.length;
  let gts = 0;
  for (let i = 0; i < p; i++) gts += fgSorted[i] ?? 0;
  const jaccard = new Float64Array(p);
  let cumFg = 0;
  let cumBg = 0;
  for (let i = 0; i < p; i++) {
    const f = fgSorted[i] ?? 0;
    cumFg += f;
    cumBg += 1 - f;
    jaccard[i] = 1 - (gts - cumFg) / (gts + cumBg);
  }
  for (let i = p - 1; i > 0; i--) jaccard[i] = (jaccard[i] ?? 0) - (jaccard[i - 1] ?? 0);
  return jaccard;
}

/**
 * Per-pixel coefficients of the Lovász-softmax loss, computed on the CPU in float64 from the
 * errors and labels: for each summed class c, errors e = |fg_c − p_c| over the valid pixels are sorted
 * descending and pixel at rank r gets lovasz_grad(fg sorted)[r] (times the class's share of the
 * final mean). Returned as [N, C, ...spatial] (0 at ignored pixels and unused classes).
 * Exported for the float64 test reference.
 */
export function lovaszCoefficients(
  errors: ArrayLike<number>,
  labels: ArrayLike<number>,
  shape: readonly number[],
  ignoreIndex: number,
  classes: 'present' | 'all' | readonly number[],
): { coef: Float64Array; count: number } {
  const n = shape[0] ?? 1;
  const c = shape[1] ?? 1;
  const hw = shape.slice(2).reduce((a, b) => a * b, 1);
  const coef = new Float64Array(n * c * hw);
  const validPixels: number[] = [];
  for (let i = 0; i < n * hw; i++) {
    const l = labels[i] ?? 0;
    if (l !== ignoreIndex) validPixels.push(i);
  }
  const toSum = classes === 'all' || classes === 'present' ? [...Array(c).keys()] : [...classes];
  const used: number[] = [];
  const perClass = new Map<number, Float64Array>();
  for (const cls of toSum) {
    const channel = c === 1 ? 0 : cls;
    const items = validPixels.map((pix) => {
      const at = Math.floor(pix / hw) * c * hw + channel * hw + (pix % hw);
      return { at, e: errors[at] ?? 0, fg: (labels[pix] ?? 0) === cls ? 1 : 0 };
    });
    const present = items.some((it) => it.fg === 1);
    // Stable sort, descending: the order among equal errors does not change the loss value.
    items.sort((a, b) => b.e - a.e);
    const g = lovaszGrad(items.map((it) => it.fg));
    const col = new Float64Array(n * c * hw);
    items.forEach((it, r) => {
      col[it.at] = (col[it.at] ?? 0) + (g[r] ?? 0);
    });
    perClass.set(cls, col);
    if (classes !== 'present' || present) used.push(cls);
  }
  // A single summed class returns its loss directly; otherwise the mean over used classes.
  const scaleBy = toSum.length === 1 ? 1 : used.length;
  for (const cls of toSum.length === 1 ? toSum : used) {
    const col = perClass.get(cls) as Float64Array;
    for (let i = 0; i < col.length; i++) coef[i] = (coef[i] ?? 0) + (col[i] ?? 0) / scaleBy;
  }
  return { coef, count: toSum.length === 1 ? 1 : used.length };
}

/**
 * PaddleSeg LovaszSoftmaxLoss (paddleseg/models/losses/lovasz_loss.py): probs = softmax(logits, 1),
 * ignored pixels dropped; per class c: e = |fg_c − probs_c|, sorted descending, loss_c = Σ e_sorted ·
 * lovasz_grad(fg_sorted) (the grad is stop-gradient); 'present' averages over classes present in the
 * label, 'all' over all classes, a list over those classes (one class: its loss).
 *
 * Since lovasz_grad depends only on the sort order, loss = Σ_pixels e·coef with a per-pixel
 * coefficient that is constant almost everywhere. Implementation: e is computed on the GPU
 * (e = fg + p·(1 − 2·fg), differentiable), then ONE READBACK of e and the labels, a CPU float64 sort
 * per class and lovasz_grad, and the coefficients are uploaded as a [N, C, H, W] tensor (the
 * scatter of the permutation happens on the CPU); loss = Σ e·coef on the GPU, so autograd gives
 * coef·∂e. With no class present ('present'), Paddle's mean over an empty selection is NaN: so is this.
 * As in Paddle, softmax is applied even for C = 1 (then class 0's foreground is label == 0).
 */
export async function lovaszSoftmaxLoss(
  logits: Tensor,
  labels: Tensor,
  options: LovaszSoftmaxLossOptions = {},
): Promise<Tensor> {
  const ignore = options.ignore_index ?? 255;
  const classes = options.classes ?? 'present';
  const c = logits.shape[1] ?? 1;
  if (c === 1 && Array.isArray(classes) && classes.length > 1)
    throw new Error('Sigmoid output possible only with 1 class');
  const probs = softmax(logits, 1);
  const onehot = labelMap(labels, 'onehot', c, ignore);
  // |fg − p| for fg ∈ {0, 1}.
  const errors = add(onehot, mul(probs, affine(onehot, -2, 1)));
  const [errData, labelData] = await Promise.all([errors.data(), labels.data()]);
  const { coef, count } = lovaszCoefficients(errData, labelData, logits.shape, ignore, classes);
  const coefT = tensor(logits.device, coef, logits.shape);
  const loss = sum(mul(errors, coefT));
  // No valid pixel: Paddle returns probas·0.
  if (!Array.from(labelData).some((l) => l !== ignore)) return affine(loss, 0);
  if (count === 0) return affine(loss, Number.NaN);
  return loss;
}
