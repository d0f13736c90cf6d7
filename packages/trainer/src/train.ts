/**
 * The iteration-based training loop of PaddleSeg's `core/train.py` (spec c.2–c.7): fetch a batch,
 * forward, Σ coef·loss, backward, optimizer step with the LR of this iteration, then log, evaluate
 * and checkpoint at their intervals. Resuming from iter_N continues exactly: same weights,
 * optimizer state, LR, data order and augmentation, dropout stream, best mIoU and checkpoint FIFO.
 */
import { dirname, join, resolve } from 'node:path';
import type { ProcessGroup } from '@segtrain/collective';
import type { ResolvedConfig } from '@segtrain/config';
import { createDataset, DataLoader, DistributedBatchSampler, type LoadedBatch } from '@segtrain/data';
import { buildModelWithPretrained, type ComponentConfig, type SegModel } from '@segtrain/models';
import {
  buildLrSchedule,
  createOptimizer,
  type LossBlock,
  type LrSchedulerConfig,
  learningRateAt,
  lossFromConfig,
  type OptimizerConfig,
  seedInitializers,
} from '@segtrain/nn';
import {
  backward,
  type Device,
  manualSeed,
  randomState,
  type Tensor,
  tensor,
  tidyAsync,
} from '@segtrain/tensor';
import {
  type EvalRecord,
  loadIterCheckpoint,
  readResumeState,
  recordEvaluation,
  removeCheckpoints,
  retained,
  saveBestModel,
  saveIterCheckpoint,
  type TrainState,
} from './checkpoint.js';
import { broadcastJson, DataParallel } from './data-parallel.js';
import { type EvaluationResult, evaluate } from './evaluate.js';
import type { InferenceOptions } from './inference.js';
import {
  formatTrainLine,
  NO_PROGRESS,
  ProgressBar,
  type ProgressStream,
  WindowAverage,
} from './log-format.js';
import type { SegMetrics } from './metrics.js';
import { type TrainingHistory, writeTrainingPlot } from './plot.js';
import { crashPoint, openSaveDir } from './save-dir.js';
import { EventWriter } from './tensorboard.js';

export interface TrainOptions {
  readonly device: Device;
  readonly config: ResolvedConfig;
  readonly saveDir: string;
  readonly saveInterval: number;
  readonly logIters: number;
  readonly numWorkers: number;
  readonly doEval: boolean;
  readonly useVdl: boolean;
  readonly resumeModel: string | null;
  /** Seeds initialisers, augmentation, shuffling and dropout; random when null (recorded for resume). */
  readonly seed: number | null;
  readonly keepCheckpointMax: number;
  readonly earlyStopIntervals: number | null;
  readonly log: (line: string) => void;
  /** Where the live progress bar goes (drawn only on a TTY). */
  readonly progress?: ProgressStream;
  /**
   * Aborted on SIGINT/SIGTERM: the current step finishes, a checkpoint is written (marked interrupted)
   * and train() returns with `interrupted` set.
   */
  readonly signal?: AbortSignal;
  /**
   * Data-parallel training with the other ranks of this group (world size > 1): rank 0's state is
   * broadcast, gradients averaged, BatchNorm synchronised, evaluation shared; only rank 0 writes.
   */
  readonly group?: ProcessGroup | null;
}

export interface TrainResult {
  /** Iterations completed (iters, or fewer after an early stop). */
  readonly iter: number;
  readonly bestMiou: number;
  readonly bestIter: number;
  readonly lastEvaluation: SegMetrics | null;
  readonly model: SegModel;
  /** Set when the run stopped on `signal`: the checkpoint it wrote (resume from it). */
  readonly interrupted: { readonly checkpoint: string } | null;
}

/** The loss became NaN or infinite (on any rank): training stops; the last checkpoint is left as it was. */
export class NonFiniteLossError extends Error {}

/** Evaluation at a save point failed; the checkpoint written just before it is named in the message. */
export class EvaluationError extends Error {}

/** The state without the marks that describe how one checkpoint was written (pending, interrupted). */
function withoutMarks({ pendingEval: _pending, interrupted: _interrupted, ...rest }: TrainState): TrainState {
  return rest;
}

/** What best_model and early stopping compare: the mean IoU over the classes the labels contain. */
function selectionScore(m: SegMetrics): number {
  return Number.isNaN(m.miouPresent) ? m.miou : m.miouPresent;
}

/** Test-mode inference options from the config's test_config (spec c.3). */
export function inferenceOptions(config: ResolvedConfig): InferenceOptions {
  const t = config.test_config;
  return {
    aug: t.aug_eval,
    scales: t.scales,
    flipHorizontal: t.flip_horizontal,
    flipVertical: t.flip_vertical,
    isSlide: t.is_slide,
    cropSize: t.crop_size,
    stride: t.stride,
  };
}

/** Batches in sampler order from `iter` on, epoch after epoch (the loop is iteration-based). */
async function* batchesFrom(
  loader: DataLoader,
  itersPerEpoch: number,
  iter: number,
): AsyncGenerator<{ batch: LoadedBatch; epoch: number }> {
  let epoch = Math.floor(iter / itersPerEpoch);
  let skip = iter % itersPerEpoch;
  for (;;) {
    for await (const batch of loader.epoch(epoch, { skipBatches: skip })) yield { batch, epoch };
    skip = 0;
    epoch++;
  }
}

function emptyHistory(): TrainingHistory {
  return { iters: [], loss: [], lr: [], evals: [] };
}

/** Steps recorded ahead of the oldest loss read back: the GPU keeps working, the queue stays bounded. */
const STEPS_IN_FLIGHT = 2;

/** One step's losses on the GPU, read back later (reading each step would stall the pipeline). */
interface PendingLoss {
  readonly iter: number;
  readonly epoch: number;
  readonly values: Tensor[];
}

/**
 * Trains as PaddleSeg's train.py does, in a save_dir this run holds locked: created, probed and
 * cleaned of an interrupted run's leftovers before the first step (by rank 0, the only writer).
 */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const lock = (o.group?.rank ?? 0) === 0 ? openSaveDir(o.saveDir, o.log) : null;
  try {
    return await trainLocked(o);
  } finally {
    lock?.release();
  }
}

/**
 * The loop of ARCHITECTURE.md: start (data, model, optimizer, resume, broadcast), then per
 * iteration step → (log point) → (save point: checkpoint, evaluation, early stop), then finish.
 */
async function trainLocked(o: TrainOptions): Promise<TrainResult> {
  const { device, config } = o;
  const group = o.group && o.group.worldSize > 1 ? o.group : null;
  const rank = group?.rank ?? 0;
  const writer = rank === 0;

  // ---- start ---------------------------------------------------------------------------------
  const chosenSeed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
  let resumed = o.resumeModel && writer ? readResumeState(o.resumeModel, chosenSeed) : null;
  if (resumed && o.seed !== null && o.seed !== resumed.seed)
    o.log(
      `Resuming with the checkpoint's seed ${resumed.seed} (--seed ${o.seed} ignored) so the data order is unchanged`,
    );
  let seed = resumed?.seed ?? chosenSeed;
  let resumeModel = o.resumeModel;
  // Every rank starts from what rank 0 read: the same seed, state and (below) weights.
  const agreed = group ? await broadcastJson(group, { resumed, seed, resumeModel }) : null;
  if (agreed) ({ resumed, seed, resumeModel } = agreed);
  // Data first: a wrong dataset_root fails before the model is built.
  const trainSet = createDataset(config.train_dataset, { mode: 'train' });
  const valSet = o.doEval && config.val_dataset ? createDataset(config.val_dataset, { mode: 'val' }) : null;
  if (o.doEval && !config.val_dataset)
    o.log('--do_eval was given but the config has no val_dataset: training without evaluation');
  seedInitializers(seed);
  manualSeed(seed);
  const model = await buildModelWithPretrained(device, config.model as unknown as ComponentConfig, o.log);
  const lossFn = lossFromConfig(config.loss as unknown as LossBlock);
  const optimizer = createOptimizer(model.namedParameters(), config.optimizer as unknown as OptimizerConfig);
  const schedule = buildLrSchedule(config.lr_scheduler as unknown as LrSchedulerConfig, config.iters);

  const sampler = new DistributedBatchSampler({
    size: trainSet.length,
    batchSize: config.batch_size,
    rank,
    worldSize: group?.worldSize ?? 1,
    shuffle: true,
    dropLast: true,
    seed,
  });
  const loader = new DataLoader({
    dataset: trainSet,
    transforms: config.train_dataset.transforms,
    sampler,
    numWorkers: o.numWorkers,
    seed,
  });

  let state: TrainState = resumed ?? {
    version: 1,
    iter: 0,
    seed,
    randomState: randomState(),
    bestMiou: -1,
    bestIter: -1,
    staleEvals: 0,
    checkpoints: [],
    history: emptyHistory(),
  };
  if (resumeModel && resumed) {
    if (writer) await loadIterCheckpoint(resumeModel, model, optimizer);
    manualSeed(resumed.randomState);
    o.log(`Resume model from ${resumeModel}, continuing after iter ${resumed.iter}`);
  }
  const parallel = group ? new DataParallel(group, device, model) : null;
  if (parallel) {
    await parallel.broadcastState(model, optimizer);
    const mb = parallel.bucketBytes.map((b) => (b / 2 ** 20).toFixed(2));
    o.log(
      `Data parallel: ${group?.describe()}; ${parallel.worldSize} ranks × batch_size ${config.batch_size}; ` +
        `BatchNorm converted to SyncBatchNorm; gradients averaged in ${mb.length} bucket(s) of ${mb.join(', ')} MiB`,
    );
  }

  const vdl = o.useVdl && writer ? new EventWriter(o.saveDir) : null;
  const bar = new ProgressBar({
    total: config.iters,
    label: 'train',
    stream: o.progress ?? NO_PROGRESS,
  });
  const log = (line: string) => {
    bar.clear();
    o.log(line);
  };
  let lastEvaluation: SegMetrics | null = null;
  const plotTitle = `segtrain: ${config.source.file}`;

  /** iter_N with the state as of now (rank 0 writes it); retention and the plot follow. Returns its path. */
  const saveCheckpoint = async (iter: number, mark: 'pendingEval' | 'interrupted' | null) => {
    const fifo = [...state.checkpoints, `iter_${iter}`];
    const kept = retained(fifo, o.keepCheckpointMax);
    state = {
      ...withoutMarks(state),
      iter,
      randomState: randomState(),
      checkpoints: kept,
      ...(mark ? { [mark]: true } : {}),
    };
    if (!writer) return join(o.saveDir, `iter_${iter}`);
    crashPoint('save.start');
    const dir = await saveIterCheckpoint(o.saveDir, { model, optimizer, state, evaluation: null });
    await removeCheckpoints(o.saveDir, fifo.slice(0, fifo.length - kept.length));
    writeTrainingPlot(join(o.saveDir, 'training.html'), state.history, plotTitle);
    return dir;
  };

  /**
   * Evaluates the weights saved in `checkpoint` (iter `iter`) on every rank's share of the val set,
   * replaces best_model when the mean IoU over the classes present beats the best so far, and
   * records the result in `checkpoint`.
   */
  const evaluateSaved = async (iter: number, checkpoint: string) => {
    if (!valSet || !config.val_dataset) return;
    let result: EvaluationResult;
    try {
      result = await evaluate(device, model, {
        dataset: valSet,
        transforms: config.val_dataset.transforms,
        inference: inferenceOptions(config),
        numWorkers: o.numWorkers,
        log,
        ...(o.progress ? { progress: o.progress } : {}),
        ...(group ? { group } : {}),
      });
    } catch (error) {
      throw new EvaluationError(
        `evaluation at iter ${iter} failed: ${error instanceof Error ? error.message : String(error)}. ` +
          `The checkpoint ${checkpoint} was written before it: fix the validation data, then resume with --resume_model ${checkpoint}`,
        { cause: error },
      );
    }
    model.train();
    crashPoint('eval.done');
    for (const line of result.lines) log(line);
    const m = result.metrics;
    lastEvaluation = m;
    const score = selectionScore(m);
    const improved = score > state.bestMiou;
    state = {
      ...withoutMarks(state),
      randomState: randomState(),
      bestMiou: improved ? score : state.bestMiou,
      bestIter: improved ? iter : state.bestIter,
      staleEvals: improved ? 0 : score < state.bestMiou ? state.staleEvals + 1 : state.staleEvals,
      history: {
        ...state.history,
        evals: [...state.history.evals, { iter, miou: m.miou, miouPresent: m.miouPresent }],
      },
    };
    const evaluation: EvalRecord = { mIoU: m.miou, Acc: m.acc, iter, mIoUPresent: m.miouPresent };
    if (writer) {
      // best_model before the record: a kill between them re-runs this evaluation at resume, which
      // writes the same best_model again (the other order would lose it).
      if (improved) await saveBestModel(o.saveDir, model, evaluation);
      await recordEvaluation(checkpoint, state, evaluation);
      writeTrainingPlot(join(o.saveDir, 'training.html'), state.history, plotTitle);
    }
    log(
      `[EVAL] The model with the best validation mIoU over the classes present (${state.bestMiou.toFixed(4)}) ` +
        `was saved at iter ${state.bestIter}.`,
    );
    if (vdl) {
      vdl.scalar('Evaluate/mIoU', m.miou, iter);
      vdl.scalar('Evaluate/Acc', m.acc, iter);
      vdl.flush();
    }
  };

  const itersPerEpoch = sampler.length;
  const window = { loss: new WindowAverage(), batch: new WindowAverage(), reader: new WindowAverage() };
  const termWindows: WindowAverage[] = [];
  const pending: PendingLoss[] = [];
  let iter = state.iter;
  let lastSaved: string | null = resumeModel;
  let interrupted: { checkpoint: string } | null = null;
  /** Set when any rank was asked to stop (SIGINT/SIGTERM): every rank stops after the same step. */
  let stopAsked = false;

  /**
   * Reads back the oldest pending step's losses into the log windows. With several ranks they
   * exchange their totals and stop flags, so a NaN on any rank, or a stop request, stops all.
   */
  const readOldestLoss = async () => {
    const step = pending.shift();
    if (!step) return;
    const values: number[] = [];
    for (const t of step.values) values.push(await t.item());
    for (const t of step.values) t.dispose();
    const total = values[0] as number;
    let totals = [total];
    if (group) {
      const mine = Float64Array.of(total, o.signal?.aborted ? 1 : 0);
      const all = await group.allGather(mine);
      totals = Array.from({ length: group.worldSize }, (_, r) => all[2 * r] as number);
      if (totals.some((_, r) => all[2 * r + 1] === 1)) stopAsked = true;
    } else if (o.signal?.aborted) stopAsked = true;
    const bad = totals.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0)
      throw new NonFiniteLossError(
        `loss is ${totals[bad]} at iter ${step.iter} (epoch ${step.epoch + 1})${group ? ` on rank ${bad}` : ''}: training stopped. ` +
          `${lastSaved ? `The last checkpoint (${lastSaved}) is intact; ` : ''}` +
          'lower the learning rate, add warm-up or gradient clipping, or check the labels.',
      );
    window.loss.add(total);
    values.slice(1).forEach((v, i) => {
      termWindows[i] ??= new WindowAverage();
      termWindows[i]?.add(v);
    });
    bar.update(step.iter, `loss ${total.toFixed(4)}`);
  };
  const readAllLosses = async () => {
    while (pending.length > 0) await readOldestLoss();
  };

  /** One log line (rank 0's losses, as PaddleSeg logs the local rank's), the plot data and event scalars. */
  const logPoint = (lr: number) => {
    const batchCost = window.batch.mean();
    const loss = window.loss.mean();
    log(
      formatTrainLine({
        epoch: Math.floor((iter - 1) / itersPerEpoch) + 1,
        iter,
        iters: config.iters,
        loss,
        lr,
        batchCost,
        readerCost: window.reader.mean(),
        ips: (window.batch.count * config.batch_size) / window.batch.sum,
      }),
    );
    const h = state.history;
    state = {
      ...state,
      history: { ...h, iters: [...h.iters, iter], loss: [...h.loss, loss], lr: [...h.lr, lr] },
    };
    if (vdl) {
      vdl.scalar('Train/loss', loss, iter);
      if (termWindows.length > 1)
        termWindows.forEach((w, i) => {
          vdl.scalar(`Train/loss_${i}`, w.mean(), iter);
        });
      vdl.scalar('Train/lr', lr, iter);
      vdl.scalar('Train/batch_cost', batchCost, iter);
      vdl.scalar('Train/reader_cost', window.reader.mean(), iter);
      vdl.flush();
    }
    for (const w of [window.loss, window.batch, window.reader, ...termWindows]) w.reset();
  };

  /** Checkpoint, then evaluation; returns true on an early stop. */
  const savePoint = async (): Promise<boolean> => {
    // The checkpoint first: an evaluation that fails must not cost the training before it.
    lastSaved = await saveCheckpoint(iter, valSet ? 'pendingEval' : null);
    await evaluateSaved(iter, lastSaved);
    if (o.earlyStopIntervals && valSet && state.staleEvals >= o.earlyStopIntervals) {
      log(
        `Early stopping at iter ${iter}. The best mIoU over the classes present is ${state.bestMiou.toFixed(4)} at iter ${state.bestIter}.`,
      );
      return true;
    }
    return false;
  };

  model.train();
  const batches = batchesFrom(loader, itersPerEpoch, iter);
  let finished = false;
  try {
    // A checkpoint saved just before its evaluation: evaluate it now, as the interrupted run would have.
    if (resumed?.pendingEval && resumeModel) {
      const inSaveDir = resolve(dirname(resumeModel)) === resolve(o.saveDir);
      if (valSet && inSaveDir) await evaluateSaved(resumed.iter, resumeModel);
      else state = withoutMarks(state);
    }
    let tick = performance.now();
    while (iter < config.iters) {
      // ---- step ------------------------------------------------------------------------------
      const next = await batches.next();
      if (next.done) break;
      const { batch, epoch } = next.value;
      const lr = learningRateAt(schedule, iter);
      iter++;
      pending.push({ iter, epoch, values: await trainStep(model, lossFn, device, batch) });
      await parallel?.synchronize();
      optimizer.step(lr);
      optimizer.zeroGrad();
      while (pending.length > STEPS_IN_FLIGHT) await readOldestLoss();
      // Kernel shape classes first seen in this step (or the evaluation before it) get tuned now,
      // outside the batch cost (on by default on GPUs; see SEGTRAIN_AUTOTUNE).
      if (device.tuner.pending > 0) {
        const started = performance.now();
        const tuned = await device.tuner.run();
        log(
          `autotune: ${tuned.length} kernel shape class(es) tuned in ${((performance.now() - started) / 1000).toFixed(1)} s` +
            `${device.tuner.options.cacheFile ? `, cached in ${device.tuner.options.cacheFile}` : ''}`,
        );
        tick = performance.now();
      }
      const now = performance.now();
      window.batch.add((now - tick) / 1000);
      window.reader.add(batch.readerWait / 1000);
      tick = now;

      const logAt = iter % o.logIters === 0 || iter === config.iters;
      const saveAt = iter % o.saveInterval === 0 || iter === config.iters;
      // Losses are complete before anything is logged or saved: a NaN never reaches a checkpoint.
      if (logAt || saveAt) await readAllLosses();
      // ---- log point -------------------------------------------------------------------------
      if (logAt) logPoint(lr);
      // ---- save point ------------------------------------------------------------------------
      if (saveAt) {
        if (await savePoint()) break;
        tick = performance.now();
      }
      if (!group && o.signal?.aborted) stopAsked = true;
      if (stopAsked) {
        await readAllLosses();
        const checkpoint = saveAt && lastSaved ? lastSaved : await saveCheckpoint(iter, 'interrupted');
        interrupted = { checkpoint };
        break;
      }
    }
    await readAllLosses();
    finished = true;
  } finally {
    // ---- finish ----------------------------------------------------------------------------
    bar.finish();
    for (const step of pending.splice(0)) for (const t of step.values) t.dispose();
    await batches.return(undefined);
    await loader.close();
    vdl?.close();
    parallel?.dispose(model);
    optimizer.dispose();
    // On an error the caller never receives the model: free it here.
    if (!finished) model.dispose();
  }
  return {
    iter,
    bestMiou: state.bestMiou,
    bestIter: state.bestIter,
    lastEvaluation,
    model,
    interrupted,
  };
}

/**
 * One iteration's forward, loss and backward in a tidy scope. Returns [total, ...terms] as
 * tensors, kept for a later readback.
 */
async function trainStep(
  model: SegModel,
  lossFn: ReturnType<typeof lossFromConfig>,
  device: Device,
  batch: LoadedBatch,
): Promise<Tensor[]> {
  if (!batch.label) throw new Error(`training needs labels: ${batch.imagePaths[0]} has none`);
  const x = tensor(device, batch.img, batch.shape);
  const y = tensor(device, batch.label, batch.labelShape, 'i32');
  try {
    return await tidyAsync(async () => {
      const logits = model.forward(x);
      const { total, terms } = await lossFn(logits, y);
      backward(total);
      return [total, ...terms] as Tensor[];
    });
  } finally {
    x.dispose();
    y.dispose();
  }
}
