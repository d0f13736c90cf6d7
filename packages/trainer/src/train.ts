/**
 * The iteration-based training loop of PaddleSeg's `core/train.py` (spec c.2–c.7): fetch a batch,
 * forward, Σ coef·loss, backward, optimizer step with the LR of this iteration, then log, evaluate
 * and checkpoint at their intervals. Resuming from iter_N continues exactly: same weights,
 * optimizer state, LR, data order and augmentation, dropout stream, best mIoU and checkpoint FIFO.
 */
import { dirname, join, resolve } from 'node:path';
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
  readTrainState,
  recordEvaluation,
  removeCheckpoints,
  retained,
  saveBestModel,
  saveIterCheckpoint,
  type TrainState,
} from './checkpoint.js';
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

/** The loss became NaN or infinite: training stops, and the last checkpoint is left as it was. */
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

/**
 * Trains as PaddleSeg's train.py does, in a save_dir this run holds locked: created, probed and
 * cleaned of an interrupted run's leftovers before the first step.
 */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const lock = openSaveDir(o.saveDir, o.log);
  try {
    return await trainLocked(o);
  } finally {
    lock.release();
  }
}

async function trainLocked(o: TrainOptions): Promise<TrainResult> {
  const { device, config } = o;
  const resumed = o.resumeModel ? readTrainState(o.resumeModel) : null;
  if (resumed && o.seed !== null && o.seed !== resumed.seed)
    o.log(
      `Resuming with the checkpoint's seed ${resumed.seed} (--seed ${o.seed} ignored) so the data order is unchanged`,
    );
  const seed = resumed?.seed ?? o.seed ?? Math.floor(Math.random() * 2 ** 31);
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
  if (o.resumeModel && resumed) {
    await loadIterCheckpoint(o.resumeModel, model, optimizer);
    manualSeed(resumed.randomState);
    o.log(`Resume model from ${o.resumeModel}, continuing after iter ${resumed.iter}`);
  }

  const vdl = o.useVdl ? new EventWriter(o.saveDir) : null;
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

  /** iter_N with the state as of now; retention and the plot follow. Returns the directory. */
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
    crashPoint('save.start');
    const dir = await saveIterCheckpoint(o.saveDir, { model, optimizer, state, evaluation: null });
    await removeCheckpoints(o.saveDir, fifo.slice(0, fifo.length - kept.length));
    writeTrainingPlot(join(o.saveDir, 'training.html'), state.history, `segtrain: ${config.source.file}`);
    return dir;
  };

  /**
   * Evaluates the weights saved in `checkpoint` (iter `iter`), replaces best_model when the mean IoU
   * over the classes present beats the best so far, and records the result in `checkpoint`.
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
    // best_model before the record: a kill between them re-runs this evaluation at resume, which
    // writes the same best_model again (the other order would lose it).
    if (improved) await saveBestModel(o.saveDir, model, evaluation);
    await recordEvaluation(checkpoint, state, evaluation);
    log(
      `[EVAL] The model with the best validation mIoU over the classes present (${state.bestMiou.toFixed(4)}) ` +
        `was saved at iter ${state.bestIter}.`,
    );
    writeTrainingPlot(join(o.saveDir, 'training.html'), state.history, `segtrain: ${config.source.file}`);
    if (vdl) {
      vdl.scalar('Evaluate/mIoU', m.miou, iter);
      vdl.scalar('Evaluate/Acc', m.acc, iter);
      vdl.flush();
    }
  };

  const itersPerEpoch = sampler.length;
  const window = { loss: new WindowAverage(), batch: new WindowAverage(), reader: new WindowAverage() };
  const termWindows: WindowAverage[] = [];
  let iter = state.iter;
  let lastSaved: string | null = o.resumeModel;
  let interrupted: { checkpoint: string } | null = null;
  model.train();
  const batches = batchesFrom(loader, itersPerEpoch, iter);
  let finished = false;
  try {
    // A checkpoint saved just before its evaluation: evaluate it now, as the interrupted run would have.
    if (resumed?.pendingEval && o.resumeModel) {
      const inSaveDir = resolve(dirname(o.resumeModel)) === resolve(o.saveDir);
      if (valSet && inSaveDir) await evaluateSaved(resumed.iter, o.resumeModel);
      else state = withoutMarks(state);
    }
    let tick = performance.now();
    while (iter < config.iters) {
      const next = await batches.next();
      if (next.done) break;
      const { batch, epoch } = next.value;
      const lr = learningRateAt(schedule, iter);
      iter++;
      const losses = await trainStep(model, lossFn, device, batch);
      const total = losses[0] as number;
      if (!Number.isFinite(total))
        throw new NonFiniteLossError(
          `loss is ${total} at iter ${iter} (epoch ${epoch + 1}): training stopped before the optimizer step. ` +
            `${lastSaved ? `The last checkpoint (${lastSaved}) is intact; ` : ''}` +
            'lower the learning rate, add warm-up or gradient clipping, or check the labels.',
        );
      optimizer.step(lr);
      optimizer.zeroGrad();
      const now = performance.now();
      window.loss.add(total);
      window.batch.add((now - tick) / 1000);
      window.reader.add(batch.readerWait / 1000);
      losses.slice(1).forEach((v, i) => {
        termWindows[i] ??= new WindowAverage();
        termWindows[i]?.add(v);
      });
      tick = now;
      bar.update(iter, `loss ${total.toFixed(4)}`);

      if (iter % o.logIters === 0 || iter === config.iters) {
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
      }

      const savePoint = iter % o.saveInterval === 0 || iter === config.iters;
      if (savePoint) {
        // The checkpoint first: an evaluation that fails must not cost the training before it.
        lastSaved = await saveCheckpoint(iter, valSet ? 'pendingEval' : null);
        await evaluateSaved(iter, lastSaved);
        if (o.earlyStopIntervals && valSet && state.staleEvals >= o.earlyStopIntervals) {
          log(
            `Early stopping at iter ${iter}. The best mIoU over the classes present is ${state.bestMiou.toFixed(4)} at iter ${state.bestIter}.`,
          );
          break;
        }
        tick = performance.now();
      }
      if (o.signal?.aborted) {
        const checkpoint = savePoint && lastSaved ? lastSaved : await saveCheckpoint(iter, 'interrupted');
        interrupted = { checkpoint };
        break;
      }
    }
    finished = true;
  } finally {
    bar.finish();
    await batches.return(undefined);
    await loader.close();
    vdl?.close();
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
 * numbers: reading them waits for the GPU, which keeps at most one step in flight (queueing many
 * steps without waiting crashed lavapipe).
 */
async function trainStep(
  model: SegModel,
  lossFn: ReturnType<typeof lossFromConfig>,
  device: Device,
  batch: LoadedBatch,
): Promise<number[]> {
  if (!batch.label) throw new Error(`training needs labels: ${batch.imagePaths[0]} has none`);
  const x = tensor(device, batch.img, batch.shape);
  const y = tensor(device, batch.label, batch.labelShape, 'i32');
  try {
    return await tidyAsync(async () => {
      const logits = model.forward(x);
      const { total, terms } = await lossFn(logits, y);
      backward(total);
      const values: number[] = [];
      for (const t of [total, ...terms] as Tensor[]) values.push(await t.item());
      return values;
    });
  } finally {
    x.dispose();
    y.dispose();
  }
}
