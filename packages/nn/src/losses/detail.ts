import {
  add,
  affine,
  bceWithLogits,
  cachedConstant,
  conv2d,
  div,
  labelMap,
  mapNoGrad,
  mean,
  mul,
  noGrad,
  ones,
  reshape,
  resizeBilinear,
  resizeNearest,
  sigmoid,
  sum,
  type Tensor,
} from '@segtrain/tensor';

export interface DetailAggregateLossOptions {
  /** Stored only: PaddleSeg's DetailAggregateLoss does not use it (ignored labels make boundaries). */
  readonly ignore_index?: number;
  /**
   * The 1×1 fuse weights over [stride 1, stride 2, stride 4] (not a PaddleSeg config key). Default
   * STDC's [0.6, 0.3, 0.1]. NOTE: PaddleSeg creates fuse_kernel with paddle.create_parameter and no
   * initializer, i.e. a random Xavier-uniform value that no optimizer updates (it is not a model
   * parameter) — not reproducible bit-for-bit; STDC's original values are used instead.
   */
  readonly fuse_kernel?: readonly [number, number, number];
}

const LAPLACIAN = [-1, -1, -1, -1, 8, -1, -1, -1, -1];
const STDC_FUSE: readonly [number, number, number] = [0.6, 0.3, 0.1];

/**
 * The fused boundary target [N, 1, H, W] of STDC's DetailAggregateLoss: Laplacian conv of the raw
 * label (as float, 255s included) at strides 1, 2, 4 (padding 1), clipped at 0; strides 2 and 4 are
 * nearest-upsampled to H×W; each is binarised (> 0.1 → 1, else 0); fused = 0.6·t1 + 0.3·t2 + 0.1·t4
 * binarised again (> 0.1). (The stride-8 map PaddleSeg computes is unused.) No gradient.
 */
export function detailBoundaryTarget(
  labels: Tensor,
  fuse: readonly [number, number, number] = STDC_FUSE,
): Tensor {
  return noGrad(() => {
    const n = labels.shape[0] ?? 1;
    const h = labels.shape[1] ?? 1;
    const w = labels.shape[2] ?? 1;
    const device = labels.device;
    const flat = labelMap(labels, 'float', 1, -1);
    const x = reshape(flat, [n, 1, h, w]);
    flat.dispose();
    const kernel = cachedConstant(device, LAPLACIAN, [1, 1, 3, 3]);
    const level = (stride: number) => {
      const raw = conv2d(x, kernel, null, { stride, padding: 1 });
      const up = stride === 1 ? raw : resizeNearest(raw, [h, w]);
      if (up !== raw) raw.dispose();
      // clip(min=0) then > 0.1 → 1 else 0: together just > 0.1.
      const bin = mapNoGrad('select(0.0, 1.0, max(a, 0.0) > s0)', [up], [0.1]);
      up.dispose();
      return bin;
    };
    const [t1, t2, t4] = [level(1), level(2), level(4)] as [Tensor, Tensor, Tensor];
    // f32 arithmetic as Paddle's 1×1 conv: 0.6·t1 + 0.3·t2 + 0.1·t4 > 0.1 (so t4 alone is not a boundary).
    const fused = mapNoGrad('select(0.0, 1.0, a * s0 + b * s1 + c * s2 > s3)', [t1, t2, t4], [...fuse, 0.1]);
    for (const t of [t1, t2, t4, x]) t.dispose();
    return fused;
  });
}

/**
 * PaddleSeg DetailAggregateLoss (STDC; paddleseg/models/losses/detail_aggregate_loss.py) on the
 * single-channel detail logit [N, 1, h, w] (bilinearly resized with align_corners True to the
 * label's H×W when the widths differ):
 *   loss = mean(BCEWithLogits(x, target)) + mean_n [1 − (2·Σ σ(x)·t + 1) / (Σ σ(x) + Σ t + 1)]
 */
export function detailAggregateLoss(
  logits: Tensor,
  labels: Tensor,
  options: DetailAggregateLossOptions = {},
): Tensor {
  const n = logits.shape[0] ?? 1;
  const h = labels.shape[1] ?? 1;
  const w = labels.shape[2] ?? 1;
  if ((logits.shape[1] ?? 1) !== 1)
    throw new Error(`DetailAggregateLoss: logits must have one channel, got [${logits.shape.join(', ')}]`);
  const target = detailBoundaryTarget(labels, options.fuse_kernel);
  const x = logits.shape[3] !== w ? resizeBilinear(logits, [h, w], { alignCorners: true }) : logits;
  const device = logits.device;
  const weight = ones(device, x.shape);
  const pw = ones(device, [1]);
  const bce = mean(bceWithLogits(x, target, weight, pw));
  const p = reshape(sigmoid(x), [n, -1]);
  const t = reshape(target, [n, -1]);
  const inter = sum(mul(p, t), 1);
  const denom = affine(add(sum(p, 1), sum(t, 1)), 1, 1);
  const dice = mean(affine(div(affine(inter, 2, 1), denom), -1, 1));
  return add(bce, dice);
}
