import { record, traceAttrs } from '../autograd/engine.js';
import {
  adaptiveAvgPoolBackward,
  adaptiveAvgPoolForward,
  argmaxKernel,
  avgPoolBackward,
  avgPoolForward,
  maxPoolBackward,
  maxPoolForward,
  type PoolGeometry,
} from '../kernels/pool.js';
import { formatShape, type Tensor } from '../tensor.js';

export interface PoolOptions {
  readonly kernel: number | readonly [number, number];
  /** Defaults to the kernel size. */
  readonly stride?: number | readonly [number, number];
  /** Symmetric padding per side. */
  readonly padding?: number | readonly [number, number];
  /** Avg-pool: divide by the cells inside the image (Paddle's exclusive=True, the default). */
  readonly exclusive?: boolean;
}

const pair = (v: number | readonly [number, number]): [number, number] =>
  typeof v === 'number' ? [v, v] : [v[0], v[1]];

function geometry(op: string, x: Tensor, o: PoolOptions): PoolGeometry {
  if (x.rank !== 4) throw new Error(`${op}: expects NCHW, got ${formatShape(x.shape)}`);
  const [n = 0, c = 0, h = 0, w = 0] = x.shape;
  const [kh, kw] = pair(o.kernel);
  const [sh, sw] = pair(o.stride ?? o.kernel);
  const [ph, pw] = pair(o.padding ?? 0);
  const outH = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const outW = Math.floor((w + 2 * pw - kw) / sw) + 1;
  if (outH < 1 || outW < 1)
    throw new Error(
      `${op}: kernel ${kh}x${kw} with padding ${ph},${pw} does not fit input ${formatShape(x.shape)}`,
    );
  if (ph * 2 > kh || pw * 2 > kw)
    throw new Error(`${op}: padding ${ph},${pw} must be at most half the kernel ${kh}x${kw}`);
  return { n, c, h, w, outH, outW, kh, kw, sh, sw, padTop: ph, padLeft: pw };
}

export function avgPool2d(x: Tensor, options: PoolOptions): Tensor {
  const g = geometry('avg_pool2d', x, options);
  const exclusive = options.exclusive ?? true;
  const out = avgPoolForward(x.device, x, g, exclusive);
  traceAttrs(out, { geometry: g, exclusive });
  return record(out, 'avg_pool2d', [x], [], (grad) => [avgPoolBackward(x.device, grad, g, exclusive)]);
}

export function maxPool2d(x: Tensor, options: PoolOptions): Tensor {
  const g = geometry('max_pool2d', x, options);
  const { out, argmax } = maxPoolForward(x.device, x, g);
  traceAttrs(out, { geometry: g });
  const result = record(out, 'max_pool2d', [x], [argmax], (grad) => [
    maxPoolBackward(x.device, grad, argmax, g),
  ]);
  if (!result.gradFn) argmax.dispose();
  return result;
}

/** Adaptive average pooling to [outH, outW] bins (start = ⌊i·H/b⌋, end = ⌈(i+1)·H/b⌉). */
export function adaptiveAvgPool2d(x: Tensor, size: number | readonly [number, number]): Tensor {
  if (x.rank !== 4) throw new Error(`adaptive_avg_pool2d: expects NCHW, got ${formatShape(x.shape)}`);
  const [n = 0, c = 0, h = 0, w = 0] = x.shape;
  const [outH, outW] = pair(size);
  const g: PoolGeometry = { n, c, h, w, outH, outW, kh: 1, kw: 1, sh: 1, sw: 1, padTop: 0, padLeft: 0 };
  const out = adaptiveAvgPoolForward(x.device, x, g);
  traceAttrs(out, { geometry: g });
  return record(out, 'adaptive_avg_pool2d', [x], [], (grad) => [adaptiveAvgPoolBackward(x.device, grad, g)]);
}

/** Index of the maximum along `axis` (first wins), as an i32 tensor without that axis. */
export function argmax(x: Tensor, axis = 1): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  if (a < 0 || a >= x.rank)
    throw new Error(`argmax: axis ${axis} is out of range for ${formatShape(x.shape)}`);
  const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  return argmaxKernel(
    x.device,
    x,
    outer,
    x.shape[a] ?? 1,
    inner,
    x.shape.filter((_, i) => i !== a),
  );
}
