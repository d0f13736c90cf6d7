import { record } from '../autograd/engine.js';
import { fill, mapKernel } from '../kernels/elementwise.js';
import { emptyTensor } from '../kernels/launch.js';
import {
  bnApply,
  bnChannelSums,
  bnGradInput,
  bnGradSums,
  bnStatsFromSums,
  bnUpdateRunning,
  lnForward,
  lnGradInput,
  lnGradParams,
} from '../kernels/norm.js';
import { formatShape, type Shape, type Tensor } from '../tensor.js';

/**
 * Hook for synchronised (cross-device) batch norm. In training, batchNorm2d calls it with this
 * device's per-channel raw sums Σx and Σx² (each a [C] tensor, over N and the spatial dims) and the
 * number of values `count` behind them (N·H·W), *before* normalising. A collective can all-reduce
 * them and return the global `{ sum, sumSq, count }`; batchNorm2d then normalises with (and updates
 * the running statistics from) mean = sum/count and biased var = sumSq/count − mean². Returning
 * nothing keeps the local statistics. The tensors passed in are disposed after the call unless
 * returned. Only the forward statistics are synchronised: the backward uses this device's Σg and
 * Σg·x̂ (a full SyncBatchNorm backward also needs those all-reduced; not wired up yet).
 */
export type SyncStatsHook = (
  sum: Tensor,
  sumSq: Tensor,
  count: number,
  // biome-ignore lint/suspicious/noConfusingVoidType: a hook that only observes returns nothing
) => void | { sum: Tensor; sumSq: Tensor; count: number };

export interface BatchNormOptions {
  /** Batch statistics and a running-statistics update (true) or the running statistics (false). */
  readonly training: boolean;
  /** Weight of the old running value (Paddle convention): running = m·running + (1 − m)·batch. */
  readonly momentum?: number;
  readonly eps?: number;
  readonly syncStats?: SyncStatsHook;
}

/** Copies `size` f32 values starting at element `offset` of `src` into a new tensor of `shape`. */
function sliceInto(src: Tensor, offset: number, shape: Shape): Tensor {
  const out = emptyTensor(src.device, shape);
  src.device.copy(src.buffer, offset * 4, out.buffer, 0, out.bytes);
  return out;
}

function checkPerChannel(t: Tensor, c: number, what: string, op: string): void {
  if (t.size !== c)
    throw new Error(
      `${op}: ${what} has shape ${formatShape(t.shape)}; expected ${c} values (one per channel)`,
    );
}

/**
 * Batch normalisation over N and the spatial dims of an [N, C, ...] tensor (PaddleSeg BatchNorm2D):
 * training uses the batch mean and biased variance and updates `runningMean`/`runningVar` in place
 * (running = momentum·running + (1 − momentum)·batch, both from the biased batch variance); eval
 * uses the running statistics. With one value per channel in training (N·H·W = 1) Paddle returns
 * the input unchanged — no normalisation, no running update, zero weight/bias gradients — and so
 * does this.
 */
export function batchNorm2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  options: BatchNormOptions,
): Tensor {
  const op = 'batchNorm2d';
  if (x.rank < 2) throw new Error(`${op}: input must be [N, C, ...], got ${formatShape(x.shape)}`);
  const device = x.device;
  const n = x.shape[0] ?? 1;
  const c = x.shape[1] ?? 1;
  const hw = x.size / (n * c);
  checkPerChannel(weight, c, 'weight', op);
  checkPerChannel(bias, c, 'bias', op);
  checkPerChannel(runningMean, c, 'runningMean', op);
  checkPerChannel(runningVar, c, 'runningVar', op);
  const momentum = options.momentum ?? 0.9;
  const eps = options.eps ?? 1e-5;
  const training = options.training;
  const count = n * hw;

  if (training && count === 1) {
    const y = mapKernel(device, 'a', [x]);
    return record(y, op, [x, weight, bias], [], (g) => [
      x.requiresGrad ? mapKernel(device, 'a', [g]) : null,
      weight.requiresGrad ? fill(device, weight.shape, 0) : null,
      bias.requiresGrad ? fill(device, bias.shape, 0) : null,
    ]);
  }

  let stats: Tensor;
  if (training) {
    // Shifted sums locally (less float32 cancellation); raw sums when a collective must add them.
    const shift = !options.syncStats;
    let sums = bnChannelSums(device, x, shift);
    let total = count;
    if (options.syncStats) {
      const sum = sliceInto(sums, 0, [c]);
      const sumSq = sliceInto(sums, c, [c]);
      const reduced = options.syncStats(sum, sumSq, count);
      if (reduced) {
        const merged = emptyTensor(device, [2 * c]);
        device.copy(reduced.sum.buffer, 0, merged.buffer, 0, c * 4);
        device.copy(reduced.sumSq.buffer, 0, merged.buffer, c * 4, c * 4);
        sums.dispose();
        sums = merged;
        total = reduced.count;
        if (reduced.sum !== sum) reduced.sum.dispose();
        if (reduced.sumSq !== sumSq) reduced.sumSq.dispose();
      }
      sum.dispose();
      sumSq.dispose();
    }
    stats = bnStatsFromSums(device, x, sums, shift, total);
    sums.dispose();
    bnUpdateRunning(device, stats, runningMean, runningVar, momentum);
  } else {
    // A snapshot: the backward must see the statistics the forward used.
    stats = emptyTensor(device, [2 * c]);
    device.copy(runningMean.buffer, 0, stats.buffer, 0, c * 4);
    device.copy(runningVar.buffer, 0, stats.buffer, c * 4, c * 4);
  }

  const y = bnApply(device, x, stats, weight, bias, eps);
  const out = record(y, op, [x, weight, bias], [x, weight], (g) => {
    const gsums = bnGradSums(device, x, g, stats, eps);
    const dx = x.requiresGrad ? bnGradInput(device, x, g, stats, weight, gsums, eps, training) : null;
    const dWeight = weight.requiresGrad ? sliceInto(gsums, c, weight.shape) : null;
    const dBias = bias.requiresGrad ? sliceInto(gsums, 0, bias.shape) : null;
    gsums.dispose();
    stats.dispose();
    return [dx, dWeight, dBias];
  });
  if (!out.gradFn) stats.dispose();
  return out;
}

/** Layer normalisation over the last dimension: (x − mean)/sqrt(var + eps)·weight + bias, biased var. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  if (x.rank < 1) throw new Error(`${op}: input must have at least one dimension`);
  const d = x.shape[x.rank - 1] ?? 1;
  if (weight.size !== d || bias.size !== d)
    throw new Error(
      `${op}: weight ${formatShape(weight.shape)} and bias ${formatShape(bias.shape)} must have ${d} values (the last dim of ${formatShape(x.shape)})`,
    );
  const device = x.device;
  const { y, rowstats } = lnForward(device, x, weight, bias, eps);
  const out = record(y, op, [x, weight, bias], [x, weight], (g) => {
    const dx = x.requiresGrad ? lnGradInput(device, x, g, weight, rowstats) : null;
    let dWeight: Tensor | null = null;
    let dBias: Tensor | null = null;
    if (weight.requiresGrad || bias.requiresGrad) {
      const params = lnGradParams(device, x, g, rowstats);
      dWeight = weight.requiresGrad ? sliceInto(params, 0, weight.shape) : null;
      dBias = bias.requiresGrad ? sliceInto(params, d, bias.shape) : null;
      params.dispose();
    }
    rowstats.dispose();
    return [dx, dWeight, dBias];
  });
  if (!out.gradFn) rowstats.dispose();
  return out;
}
