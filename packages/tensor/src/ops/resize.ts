import { record, traceAttrs } from '../autograd/engine.js';
import { type ResizeMode, resizeBackward, resizeForward } from '../kernels/resize.js';
import { formatShape, type Tensor } from '../tensor.js';

export interface ResizeBilinearOptions {
  /**
   * false (default, PaddleSeg everywhere): half-pixel centres, src = (dst + 0.5)·in/out − 0.5
   * clamped at 0 (Paddle align_mode 0, PyTorch align_corners=False, OpenCV INTER_LINEAR).
   * true: src = dst·(in − 1)/(out − 1), corners aligned.
   */
  readonly alignCorners?: boolean;
}

function resize(x: Tensor, size: readonly [number, number], mode: ResizeMode, alignCorners: boolean): Tensor {
  const op = mode === 'bilinear' ? 'resizeBilinear' : 'resizeNearest';
  if (x.rank < 2) throw new Error(`${op}: input must be [..., H, W], got ${formatShape(x.shape)}`);
  const [outH, outW] = size;
  if (!Number.isInteger(outH) || !Number.isInteger(outW) || outH < 1 || outW < 1)
    throw new Error(`${op}: output size [${size.join(', ')}] must be positive integers`);
  const device = x.device;
  const out = resizeForward(device, x, outH, outW, mode, alignCorners);
  traceAttrs(out, { size: [outH, outW], alignCorners });
  return record(out, op, [x], [], (g) => [resizeBackward(device, g, x.shape, mode, alignCorners)]);
}

/** Bilinear resize of the last two dims (NCHW) to [outH, outW]; backward in gather form. */
export function resizeBilinear(
  x: Tensor,
  size: readonly [number, number],
  options: ResizeBilinearOptions = {},
): Tensor {
  return resize(x, size, 'bilinear', options.alignCorners ?? false);
}

/**
 * Nearest resize of the last two dims: src = floor(dst·in/out), computed exactly in integers
 * (OpenCV INTER_NEAREST, as PaddleSeg resizes labels). Gradient: each input sums the outputs that copied it.
 */
export function resizeNearest(x: Tensor, size: readonly [number, number]): Tensor {
  return resize(x, size, 'nearest', false);
}
