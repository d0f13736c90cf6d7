import { record, traceAttrs } from '../autograd/engine.js';
import { broadcastKernel, mapKernel } from '../kernels/elementwise.js';
import { emptyTensor, reshapeInto } from '../kernels/launch.js';
import { reduceTo } from '../kernels/reduce.js';
import { formatShape, type Tensor } from '../tensor.js';

function normaliseAxes(x: Tensor, axes: number | readonly number[] | undefined, op: string): number[] {
  const list = axes === undefined ? x.shape.map((_, i) => i) : typeof axes === 'number' ? [axes] : [...axes];
  return list.map((a) => {
    const axis = a < 0 ? a + x.rank : a;
    if (axis < 0 || axis >= x.rank)
      throw new Error(`${op}: axis ${a} is out of range for shape ${formatShape(x.shape)}`);
    return axis;
  });
}

function keptShape(x: Tensor, axes: number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function finalShape(x: Tensor, axes: number[], keepDims: boolean): number[] {
  return keepDims ? keptShape(x, axes) : x.shape.filter((_, i) => !axes.includes(i));
}

/** Broadcasts a reduced gradient back to the input's shape. */
function expand(g: Tensor, x: Tensor, kept: number[], factor: number): Tensor {
  const zero = emptyTensor(g.device, x.shape);
  const gk = emptyTensor(g.device, kept);
  g.device.copy(g.buffer, 0, gk.buffer, 0, g.bytes);
  const out = broadcastKernel(g.device, 'b * s0', zero, gk, 'reduce backward', factor);
  zero.dispose();
  gk.dispose();
  return out;
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const list = normaliseAxes(x, axes, 'sum');
  const kept = keptShape(x, list);
  const out = reshapeInto(reduceTo(x.device, x, kept, 'sum'), finalShape(x, list, keepDims));
  traceAttrs(out, { axes: list, keepDims });
  return record(out, 'sum', [x], [], (g) => [expand(g, x, kept, 1)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const list = normaliseAxes(x, axes, 'mean');
  const kept = keptShape(x, list);
  const count = list.reduce((n, a) => n * (x.shape[a] ?? 1), 1);
  const summed = reduceTo(x.device, x, kept, 'sum');
  const scaled = mapKernel(x.device, 'a * s0', [summed], [1 / count]);
  summed.dispose();
  const out = reshapeInto(scaled, finalShape(x, list, keepDims));
  traceAttrs(out, { axes: list, keepDims });
  return record(out, 'mean', [x], [], (g) => [expand(g, x, kept, 1 / count)]);
}

/** Max over axes; the gradient goes to every position equal to the max (ties share it, as in tfjs). */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const list = normaliseAxes(x, axes, 'max');
  const kept = keptShape(x, list);
  const reduced = reduceTo(x.device, x, kept, 'max');
  const keptMax = emptyTensor(x.device, kept);
  x.device.copy(reduced.buffer, 0, keptMax.buffer, 0, reduced.bytes);
  const out = reshapeInto(reduced, finalShape(x, list, keepDims));
  traceAttrs(out, { axes: list, keepDims });
  const result = record(out, 'max', [x], [x, keptMax], (g) => {
    const gk = emptyTensor(g.device, kept);
    g.device.copy(g.buffer, 0, gk.buffer, 0, g.bytes);
    const mask = broadcastKernel(x.device, 'select(0.0, 1.0, a == b)', x, keptMax, 'max backward');
    const gx = broadcastKernel(x.device, 'a * b', mask, gk, 'max backward');
    mask.dispose();
    gk.dispose();
    keptMax.dispose();
    return [gx];
  });
  if (!result.gradFn) keptMax.dispose();
  return result;
}
