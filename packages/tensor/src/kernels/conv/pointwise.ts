/**
 * 1×1 convolutions with stride 1, no padding and one group are matrix products per image: the
 * autotuner may run them through the GEMM template (whose own tiling it tunes as well) instead of
 * the convolution kernels. Measured on lavapipe, SegFormer-B0's 1024→256 fuse convolution at 16×32:
 * weight gradient 62.6 → 49.5 ms through the GEMM, forward and input gradient equal; its 256→19
 * head's weight gradient 1.4 → 2.8 ms: which one wins depends on the shape, so it is a candidate.
 */
import type { Device } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import { reshapeInto } from '../launch.js';
import { gemm } from '../matmul.js';
import { reduceTo } from '../reduce.js';
import type { ConvGeometry } from './common.js';

/** The candidate's name in the autotune cache. */
export const POINTWISE_GEMM = 'gemm';

export function isPointwise(g: ConvGeometry): boolean {
  return (
    g.kh === 1 &&
    g.kw === 1 &&
    g.sh === 1 &&
    g.sw === 1 &&
    g.pt === 0 &&
    g.pl === 0 &&
    g.groups === 1 &&
    g.hout === g.h &&
    g.wout === g.w
  );
}

/** out[n] (Cout × HW) = W (Cout × Cin) · x[n] (Cin × HW), written into `out`. */
export function pointwiseForward(device: Device, x: Tensor, w: Tensor, out: Tensor, g: ConvGeometry): void {
  const hw = g.h * g.w;
  gemm(
    device,
    w,
    x,
    {
      batch: g.n,
      m: g.cout,
      n: hw,
      k: g.cin,
      transA: false,
      transB: false,
      batchStrideA: 0,
      batchStrideB: g.cin * hw,
    },
    out,
  );
}

/** dx[n] (Cin × HW) = Wᵀ · dy[n], written into `out`. */
export function pointwiseInputGrad(
  device: Device,
  dy: Tensor,
  w: Tensor,
  out: Tensor,
  g: ConvGeometry,
): void {
  const hw = g.h * g.w;
  gemm(
    device,
    w,
    dy,
    {
      batch: g.n,
      m: g.cin,
      n: hw,
      k: g.cout,
      transA: true,
      transB: false,
      batchStrideA: 0,
      batchStrideB: g.cout * hw,
    },
    out,
  );
}

/** dW (Cout × Cin × 1 × 1) = Σ_n dy[n] · x[n]ᵀ. */
export function pointwiseWeightGrad(device: Device, dy: Tensor, x: Tensor, g: ConvGeometry): Tensor {
  const hw = g.h * g.w;
  const perImage = gemm(device, dy, x, {
    batch: g.n,
    m: g.cout,
    n: g.cin,
    k: hw,
    transA: false,
    transB: true,
    batchStrideA: g.cout * hw,
    batchStrideB: g.cin * hw,
  });
  if (g.n === 1) return reshapeInto(perImage, [g.cout, g.cin, 1, 1]);
  const summed = reduceTo(device, perImage, [1, g.cout, g.cin], 'sum');
  perImage.dispose();
  return reshapeInto(summed, [g.cout, g.cin, 1, 1]);
}
