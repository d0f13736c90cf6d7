import { record, traceAttrs } from '../autograd/engine.js';
import { fill, mapKernel } from '../kernels/elementwise.js';
import { emptyTensor } from '../kernels/launch.js';
import {
  bnApply,
  bnGradInput,
  bnGradSums,
  bnStats,
  bnTrainForward,
  bnTrainGrad,
  bnUpdateRunning,
  lnForward,
  lnGradInput,
  lnGradParams,
} from '../kernels/norm.js';
import { formatShape, type Shape, type Tensor } from '../tensor.js';
import { relu } from './elementwise.js';

/**
 * Synchronised (cross-device) batch norm, PyTorch's SyncBatchNorm. In training, batchNorm2d hands
 * it this device's per-channel statistics and gets back the statistics over every device:
 * - `stats`: [mean (C), biased variance (C)] over this device's `count` values per channel (N·H·W),
 *   computed per chunk with Welford's update and merged (no cancellation) → the same over all
 *   devices (combine them in float64: raw Σx² − mean² in float32 loses the variance to cancellation). The output is normalised with
 *   it and the running statistics are updated from it;
 * - `gradSums`: the backward's [Σg (C), Σg·x̂ (C)] → the sums over all devices scaled to this
 *   device's count (global sum × count / global count), so the input gradient uses global means.
 * The weight and bias gradients stay local: data parallelism averages them with the other
 * gradients. A tensor passed in is disposed after the call unless returned.
 */
export interface BatchNormSync {
  stats(local: Tensor, count: number): Tensor;
  gradSums(local: Tensor, count: number): Tensor;
}

export interface BatchNormOptions {
  /** Batch statistics and a running-statistics update (true) or the running statistics (false). */
  readonly training: boolean;
  /** Weight of the old running value (Paddle convention): running = m·running + (1 − m)·batch. */
  readonly momentum?: number;
  readonly eps?: number;
  readonly sync?: BatchNormSync;
  /** A ReLU fused into the same kernels (forward and backward): relu(batchNorm2d(x)), one pass less each way. */
  readonly activation?: 'relu';
}

/** Copies `size` f32 values starting at element `offset` of `src` into a new tensor of `shape`. */
function sliceInto(src: Tensor, offset: number, shape: Shape): Tensor {
  const out = emptyTensor(src.device, shape);
  src.device.copy(src.buffer, offset * 4, out.buffer, 0, out.bytes);
  return out;
}

/** `local` through a cross-device exchange that may return it; the caller owns the result. */
function synced(local: Tensor, exchange: (t: Tensor) => Tensor): Tensor {
  const global = exchange(local);
  if (global !== local) local.dispose();
  return global;
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

  const fusedRelu = options.activation === 'relu';
  if (training && count === 1) {
    // One value per channel normalises to 0: the output is x; a fused ReLU goes through the op.
    if (fusedRelu)
      return relu(
        batchNorm2d(x, weight, bias, runningMean, runningVar, { ...options, activation: undefined }),
      );
    const y = mapKernel(device, 'a', [x]);
    return record(y, op, [x, weight, bias], [], (g) => [
      x.requiresGrad ? mapKernel(device, 'a', [g]) : null,
      weight.requiresGrad ? fill(device, weight.shape, 0) : null,
      bias.requiresGrad ? fill(device, bias.shape, 0) : null,
    ]);
  }

  let stats: Tensor;
  let y: Tensor;
  if (training && !options.sync) {
    const running = { mean: runningMean, variance: runningVar, momentum };
    ({ y, stats } = bnTrainForward(device, x, weight, bias, running, eps, fusedRelu));
  } else {
    if (options.sync) {
      // The running statistics follow the global batch, known only after the exchange.
      stats = synced(bnStats(device, x), (t) => options.sync?.stats(t, count) ?? t);
      bnUpdateRunning(device, stats, runningMean, runningVar, momentum);
    } else {
      // A snapshot: the backward must see the statistics the forward used.
      stats = emptyTensor(device, [2 * c]);
      device.copy(runningMean.buffer, 0, stats.buffer, 0, c * 4);
      device.copy(runningVar.buffer, 0, stats.buffer, c * 4, c * 4);
    }
    y = bnApply(device, x, stats, weight, bias, eps, fusedRelu);
  }
  traceAttrs(y, { runningMean, runningVar, eps, training, activation: fusedRelu ? 'relu' : 'none' });
  // With the fused ReLU, the output masks the gradient (positive exactly where BN's output was).
  const mask = fusedRelu ? y : null;
  const out = record(y, op, [x, weight, bias], fusedRelu ? [x, weight, y] : [x, weight], (g) => {
    let gsums: Tensor;
    let dx: Tensor | null = null;
    const sync = training ? options.sync : undefined;
    if (training && !sync)
      ({ gsums, dx } = bnTrainGrad(device, x, g, stats, weight, eps, mask, x.requiresGrad));
    else {
      gsums = bnGradSums(device, x, g, stats, eps, mask);
      if (x.requiresGrad) {
        const dxSums = sync ? synced(sliceInto(gsums, 0, [2 * c]), (t) => sync.gradSums(t, count)) : gsums;
        dx = bnGradInput(device, x, g, stats, weight, dxSums, eps, training, mask);
        if (dxSums !== gsums) dxSums.dispose();
      }
    }
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
  traceAttrs(y, { eps });
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
