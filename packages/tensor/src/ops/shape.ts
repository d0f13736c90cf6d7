import { record, traceAttrs } from '../autograd/engine.js';
import { concatColumns, stridedCopy } from '../kernels/copy.js';
import { fill } from '../kernels/elementwise.js';
import { emptyTensor } from '../kernels/launch.js';
import { formatShape, type Shape, shapeSize, type Tensor } from '../tensor.js';

function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = (s[i + 1] ?? 1) * (shape[i + 1] ?? 1);
  return s;
}

function axisOf(rank: number, axis: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Same data, new shape (one -1 is inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  if (shapeSize(resolved) !== x.size || !resolved.every(Number.isInteger)) {
    throw new Error(
      `reshape: cannot view ${formatShape(x.shape)} (${x.size} values) as ${formatShape(shape)}`,
    );
  }
  const out = emptyTensor(x.device, resolved);
  x.device.copy(x.buffer, 0, out.buffer, 0, x.bytes);
  return record(out, 'reshape', [x], [], (g) => [reshape(g, x.shape)]);
}

/** Permutes axes (`transpose(x, [0, 2, 3, 1])` is NCHW → NHWC). */
export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort().some((p, i) => p !== i))
    throw new Error(`transpose: ${JSON.stringify(perm)} is not a permutation of ${x.rank} axes`);
  const inStrides = stridesOf(x.shape);
  const outShape = perm.map((p) => x.shape[p] ?? 1);
  const out = emptyTensor(x.device, outShape);
  stridedCopy(
    x.device,
    'gather',
    x,
    out,
    outShape,
    perm.map((p) => inStrides[p] ?? 0),
    0,
  );
  const inverse = perm.map((_, i) => perm.indexOf(i));
  traceAttrs(out, { perm });
  return record(out, 'transpose', [x], [], (g) => [transpose(g, inverse)]);
}

/** `x[..., start:start+length, ...]` along one axis. */
export function slice(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = axisOf(x.rank, axis, 'slice');
  const dim = x.shape[a] ?? 0;
  if (start < 0 || length < 1 || start + length > dim)
    throw new Error(`slice: [${start}, ${start + length}) is outside axis ${a} of size ${dim}`);
  const outShape = x.shape.map((d, i) => (i === a ? length : d));
  const strides = stridesOf(x.shape);
  const out = emptyTensor(x.device, outShape);
  stridedCopy(x.device, 'gather', x, out, outShape, strides, start * (strides[a] ?? 0));
  traceAttrs(out, { axis: a, start, length });
  return record(out, 'slice', [x], [], (g) => {
    const gx = fill(g.device, x.shape, 0);
    stridedCopy(g.device, 'scatter', g, gx, outShape, strides, start * (strides[a] ?? 0));
    return [gx];
  });
}

/** Splits along an axis into pieces of the given sizes. */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  const a = axisOf(x.rank, axis, 'split');
  if (sizes.reduce((s, v) => s + v, 0) !== x.shape[a])
    throw new Error(
      `split: sizes ${JSON.stringify(sizes)} do not add up to axis ${a} of ${formatShape(x.shape)}`,
    );
  let start = 0;
  return sizes.map((size) => {
    const part = slice(x, a, start, size);
    start += size;
    return part;
  });
}

/** Concatenates along an axis; all other dims must match. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const [first] = xs;
  if (!first) throw new Error('concat: needs at least one tensor');
  const a = axisOf(first.rank, axis, 'concat');
  for (const x of xs) {
    if (x.rank !== first.rank || x.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(
        `concat: ${formatShape(x.shape)} does not match ${formatShape(first.shape)} outside axis ${a}`,
      );
    }
  }
  const outShape = first.shape.map((d, i) => (i === a ? xs.reduce((s, x) => s + (x.shape[a] ?? 0), 0) : d));
  const device = first.device;
  const out = emptyTensor(device, outShape);
  // Each tensor as [outer, its own axis length × inner] rows, side by side in the output's rows.
  const outer = first.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const cols = xs.map((x) => x.size / outer);
  if (out.size > 0) concatColumns(device, 'concat', out, xs, outer, cols);
  traceAttrs(out, { axis: a });
  return record(out, 'concat', xs, [], (g) => {
    const grads = xs.map((x) => emptyTensor(device, x.shape));
    if (g.size > 0) concatColumns(device, 'split', g, grads, outer, cols);
    return grads.map((grad, i) => {
      if (xs[i]?.requiresGrad) return grad;
      grad.dispose();
      return null;
    });
  });
}
