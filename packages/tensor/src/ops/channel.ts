/**
 * Ops across the channels of NCHW tensors that PP-LiteSeg's UAFM composes from several: each pass
 * is one dispatch here (see kernels/channel.ts).
 */
import { record, traceAttrs } from '../autograd/engine.js';
import {
  blendChannels,
  blendChannelsGrad,
  meanMaxChannels,
  meanMaxChannelsGrad,
} from '../kernels/channel.js';
import { emptyTensor } from '../kernels/launch.js';
import { formatShape, type Tensor } from '../tensor.js';
import { mul } from './elementwise.js';
import { sum } from './reduce.js';
import { reshape } from './shape.js';

function nchw(x: Tensor, op: string, what: string): [number, number, number, number] {
  if (x.rank !== 4) throw new Error(`${op}: ${what} must be [N, C, H, W], got ${formatShape(x.shape)}`);
  const [n = 1, c = 1, h = 1, w = 1] = x.shape;
  return [n, c, h, w];
}

/**
 * PaddleSeg's `avg_max_reduce_channel`: for xs[i] of [N, C_i, H, W] (the same N, H, W), channels
 * 2i and 2i + 1 of the [N, 2k, H, W] result are xs[i]'s mean and maximum over its channels — the
 * concat of `mean(x, 1, true)` and `max(x, 1, true)` for each x. On a tie for the maximum every
 * tied channel gets the gradient, as `max`'s does.
 */
export function meanMaxOverChannels(xs: readonly Tensor[]): Tensor {
  const op = 'meanMaxOverChannels';
  const [first] = xs;
  if (!first) throw new Error(`${op}: needs at least one tensor`);
  const [n, , h, w] = nchw(first, op, 'xs[0]');
  for (const [i, x] of xs.entries()) {
    const [ni, , hi, wi] = nchw(x, op, `xs[${i}]`);
    if (ni !== n || hi !== h || wi !== w)
      throw new Error(
        `${op}: xs[${i}] ${formatShape(x.shape)} does not match xs[0] ${formatShape(first.shape)} in N, H, W`,
      );
  }
  const device = first.device;
  const out = emptyTensor(device, [n, 2 * xs.length, h, w]);
  meanMaxChannels(device, xs, out);
  traceAttrs(out, {});
  return record(out, op, xs, [...xs, out], (g) =>
    xs.map((x, i) => {
      if (!x.requiresGrad) return null;
      const dx = emptyTensor(device, x.shape);
      meanMaxChannelsGrad(device, x, i, out, g, dx);
      return dx;
    }),
  );
}

/**
 * UAFM's fusion x·α + y·(s − α): x and y [N, C, H, W], α [N, 1, H, W] weighing every channel of a
 * pixel, s a one-value tensor (PP-LiteSeg's frozen `_scale`).
 */
export function blendByMap(x: Tensor, y: Tensor, alpha: Tensor, s: Tensor): Tensor {
  const op = 'blendByMap';
  const [n, , h, w] = nchw(x, op, 'x');
  if (y.shape.join() !== x.shape.join())
    throw new Error(`${op}: y ${formatShape(y.shape)} must have x's shape ${formatShape(x.shape)}`);
  if (alpha.shape.join() !== [n, 1, h, w].join())
    throw new Error(
      `${op}: alpha ${formatShape(alpha.shape)} must be [${n}, 1, ${h}, ${w}] (one channel of x's map)`,
    );
  if (s.size !== 1) throw new Error(`${op}: s ${formatShape(s.shape)} must hold one value`);
  const device = x.device;
  const out = emptyTensor(device, x.shape);
  blendChannels(device, x, y, alpha, s, out);
  traceAttrs(out, {});
  return record(out, op, [x, y, alpha, s], [x, y, alpha, s], (g) => {
    const grads = {
      dx: emptyTensor(device, x.shape),
      dy: emptyTensor(device, x.shape),
      dalpha: emptyTensor(device, alpha.shape),
    };
    blendChannelsGrad(device, x, y, alpha, s, g, grads);
    // s is a frozen scale in UAFM; its gradient, when asked for, is Σ g·y.
    const ds = s.requiresGrad ? reshape(sum(mul(g, y)), s.shape) : null;
    const keep = (t: Tensor, needed: boolean) => {
      if (needed) return t;
      t.dispose();
      return null;
    };
    return [
      keep(grads.dx, x.requiresGrad),
      keep(grads.dy, y.requiresGrad),
      keep(grads.dalpha, alpha.requiresGrad),
      ds,
    ];
  });
}
