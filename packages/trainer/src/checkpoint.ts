/**
 * Training checkpoints (spec c.4, c.5), as directories under save_dir:
 *   iter_N/model.safetensors      state dict by PaddleSeg names (parameters and BN statistics)
 *   iter_N/optimizer.safetensors  optimizer accumulators and step count
 *   iter_N/train_state.json       iteration, seed, RNG position, best mIoU, checkpoint FIFO, history
 *   iter_N/eval.json              {mIoU, Acc, iter} when this save point was evaluated
 *   best_model/                   model.safetensors + eval.json of the best mIoU so far
 * Each directory is written under a temporary name and renamed into place, and each JSON file is
 * written, flushed and renamed, so a crash never leaves a half-written checkpoint where a resume would
 * find it; save-dir.ts puts back what a crash between two renames left (see recoverSaveDir).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { SegModel } from '@segtrain/models';
import {
  type HostTensor,
  isPaddleWeights,
  loadModule,
  loadStateFile,
  type Optimizer,
  type PdparamsFile,
  readPdparams,
  saveModule,
  saveStateFile,
} from '@segtrain/nn';
import { z } from 'zod';
import type { TrainingHistory } from './plot.js';
import { crashPoint, fsyncDirectory } from './save-dir.js';

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'train_state.json';
export const EVAL_FILE = 'eval.json';
export const BEST_DIR = 'best_model';

/** What a resumed run needs besides the weights and the optimizer state. */
export interface TrainState {
  readonly version: 1;
  /** Iterations completed. */
  readonly iter: number;
  readonly seed: number;
  /** The GPU dropout stream's position (tensor randomState). */
  readonly randomState: number;
  readonly bestMiou: number;
  readonly bestIter: number;
  /** Evaluations in a row without a new best (early stopping). */
  readonly staleEvals: number;
  /** This run's iter_* directories, oldest first (retention FIFO). */
  readonly checkpoints: readonly string[];
  readonly history: TrainingHistory;
  /** Saved before this save point's evaluation ran: a resume evaluates these weights first. */
  readonly pendingEval?: boolean;
  /** Saved on SIGINT/SIGTERM between two save points. */
  readonly interrupted?: boolean;
}

const finite = z.number().refine(Number.isFinite, 'a finite number');
const TRAIN_STATE = z.object({
  version: z.literal(1),
  iter: z.number().int().nonnegative(),
  seed: z.number().int(),
  randomState: z.number(),
  bestMiou: finite,
  bestIter: z.number().int(),
  staleEvals: z.number().int().nonnegative(),
  checkpoints: z.array(z.string()),
  history: z.object({
    iters: z.array(z.number()),
    loss: z.array(z.number()),
    lr: z.array(z.number()),
    evals: z.array(z.object({ iter: z.number(), miou: z.number(), miouPresent: z.number().optional() })),
  }),
  pendingEval: z.boolean().optional(),
  interrupted: z.boolean().optional(),
});

export interface EvalRecord {
  readonly mIoU: number;
  readonly Acc: number;
  readonly iter: number;
  readonly mIoUPresent?: number;
}

/** An error in a checkpoint the user pointed at (missing directory or file). */
export class CheckpointError extends Error {}

/** Writes JSON to a temp name, flushes it, renames it over `path` and flushes the directory. */
async function writeJson(path: string, value: unknown): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  const file = await open(temp, 'w');
  try {
    await file.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  fsyncDirectory(dirname(path));
}

/**
 * Replaces `target` by a directory filled by `fill`, atomically from a reader's point of view. A kill
 * between the two renames leaves `target.old-PID` complete, which the next start renames back.
 */
async function writeDirectory(
  target: string,
  fill: (dir: string) => Promise<void>,
  crashLabel: string,
): Promise<void> {
  const temp = `${target}.tmp-${process.pid}`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  try {
    await fill(temp);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  fsyncDirectory(temp);
  crashPoint(`${crashLabel}.filled`);
  const old = `${target}.old-${process.pid}`;
  const replacing = existsSync(target);
  if (replacing) {
    await rename(target, old);
    crashPoint(`${crashLabel}.set-aside`);
  }
  await rename(temp, target);
  fsyncDirectory(dirname(target));
  crashPoint(`${crashLabel}.renamed`);
  if (replacing) await rm(old, { recursive: true, force: true });
}

export interface SavePoint {
  readonly model: SegModel;
  readonly optimizer: Optimizer;
  readonly state: TrainState;
  readonly evaluation: EvalRecord | null;
}

/** Writes `save_dir/iter_<N>/`; returns its path. */
export async function saveIterCheckpoint(saveDir: string, point: SavePoint): Promise<string> {
  const dir = join(saveDir, `iter_${point.state.iter}`);
  await mkdir(saveDir, { recursive: true });
  const optimizerState = await point.optimizer.stateValues();
  await writeDirectory(
    dir,
    async (temp) => {
      await saveModule(point.model, join(temp, MODEL_FILE));
      await saveStateFile(join(temp, OPTIMIZER_FILE), optimizerState);
      await writeJson(join(temp, STATE_FILE), point.state);
      if (point.evaluation) await writeJson(join(temp, EVAL_FILE), point.evaluation);
    },
    'iter',
  );
  return dir;
}

/** Records a save point's evaluation in its (already written) iter_N: eval.json, then the state. */
export async function recordEvaluation(
  dir: string,
  state: TrainState,
  evaluation: EvalRecord,
): Promise<void> {
  await writeJson(join(dir, EVAL_FILE), evaluation);
  crashPoint('state.eval-written');
  await writeJson(join(dir, STATE_FILE), state);
}

/** Writes `save_dir/best_model/` (weights and the evaluation that made them best). */
export async function saveBestModel(
  saveDir: string,
  model: SegModel,
  evaluation: EvalRecord,
): Promise<string> {
  const dir = join(saveDir, BEST_DIR);
  await writeDirectory(
    dir,
    async (temp) => {
      await saveModule(model, join(temp, MODEL_FILE));
      await writeJson(join(temp, EVAL_FILE), evaluation);
    },
    'best',
  );
  return dir;
}

/** The newest `keep` entries of the iter_* FIFO (all of them when keep ≤ 0): what retention leaves. */
export function retained(fifo: readonly string[], keep: number): string[] {
  return keep > 0 ? fifo.slice(-keep) : [...fifo];
}

/**
 * Deletes the named iter_* directories of `saveDir`: each is renamed away first, so a kill mid-delete
 * never leaves a partial directory under a checkpoint's name (the next start removes `*.del-PID`).
 */
export async function removeCheckpoints(saveDir: string, names: readonly string[]): Promise<void> {
  for (const name of names) {
    const path = join(saveDir, name);
    if (!existsSync(path)) continue;
    const doomed = `${path}.del-${process.pid}`;
    await rename(path, doomed);
    crashPoint('retention.renamed');
    await rm(doomed, { recursive: true, force: true });
  }
  if (names.length) fsyncDirectory(saveDir);
}

/** PaddleSeg's weights file in its checkpoint directories (iter_N, best_model). */
export const PADDLE_MODEL_FILE = 'model.pdparams';

/**
 * The weights file a `--model_path` names: a .safetensors or .pdparams file, a .tar.gz archive
 * holding model.pdparams, or a checkpoint directory (segtrain's or PaddleSeg's iter_N or
 * best_model) holding model.safetensors or model.pdparams.
 */
export function resolveWeights(modelPath: string): string {
  const path = resolve(modelPath);
  if (!existsSync(path))
    throw new CheckpointError(
      `model_path '${modelPath}' does not exist: pass a .safetensors or .pdparams file or a checkpoint directory (save_dir/best_model or save_dir/iter_N)`,
    );
  if (path.endsWith('.safetensors') || isPaddleWeights(path)) return path;
  for (const file of [MODEL_FILE, PADDLE_MODEL_FILE]) {
    const inDir = join(path, file);
    if (existsSync(inDir)) return inDir;
  }
  throw new CheckpointError(
    `model_path '${modelPath}' holds no ${MODEL_FILE} or ${PADDLE_MODEL_FILE}: pass a checkpoint directory written by segtrain train or PaddleSeg, or the weights file itself`,
  );
}

/** Loads weights for val/predict; shape mismatches name the key, missing keys are listed. */
export async function loadWeights(model: SegModel, modelPath: string): Promise<string[]> {
  const file = resolveWeights(modelPath);
  const report = await loadModule(model, file);
  const notes = [`Loaded weights from ${file}`];
  if (report.missing.length)
    notes.push(
      `${report.missing.length} key(s) missing from the file: ${report.missing.slice(0, 5).join(', ')}`,
    );
  if (report.unexpected.length)
    notes.push(
      `${report.unexpected.length} unexpected key(s) in the file: ${report.unexpected.slice(0, 5).join(', ')}`,
    );
  return notes;
}

/** PaddleSeg's optimizer state in its iter_N directories. */
export const PADDLE_OPTIMIZER_FILE = 'model.pdopt';

/** Whether `dir` is a PaddleSeg checkpoint (model.pdparams + model.pdopt, no segtrain training state). */
export function isPaddleCheckpoint(dir: string): boolean {
  const path = resolve(dir);
  return !existsSync(join(path, STATE_FILE)) && existsSync(join(path, PADDLE_MODEL_FILE));
}

/**
 * The training state to resume a PaddleSeg `iter_N` directory with: PaddleSeg keeps only the
 * weights and optimizer there and takes the iteration from the directory's name, as here; the data
 * order starts afresh from `seed` (PaddleSeg's sampler state is not saved either).
 */
function paddleTrainState(dir: string, seed: number): TrainState {
  const path = resolve(dir);
  if (!existsSync(join(path, PADDLE_OPTIMIZER_FILE)))
    throw new CheckpointError(
      `resume_model '${dir}' has ${PADDLE_MODEL_FILE} but no ${PADDLE_OPTIMIZER_FILE}: PaddleSeg writes both to save_dir/iter_N; a weights-only file goes to --model_path or pretrained instead`,
    );
  const named = /_(\d+)$/.exec(basename(path));
  if (!named)
    throw new CheckpointError(
      `resume_model '${dir}': a PaddleSeg checkpoint's iteration comes from its directory name (iter_N), and '${basename(path)}' has none`,
    );
  return {
    version: 1,
    iter: Number(named[1]),
    seed,
    randomState: seed,
    bestMiou: -1,
    bestIter: -1,
    staleEvals: 0,
    checkpoints: [],
    history: { iters: [], loss: [], lr: [], evals: [] },
  };
}

/**
 * Reads and checks the training state of `--resume_model DIR` (before anything is built): a
 * segtrain iter_N directory, or PaddleSeg's (model.pdparams + model.pdopt; `seed` starts its data order).
 */
export function readResumeState(dir: string, seed: number): TrainState {
  return isPaddleCheckpoint(dir) ? paddleTrainState(dir, seed) : readTrainState(dir);
}

/** Reads and checks the training state of a segtrain `--resume_model DIR` (before anything is built). */
export function readTrainState(dir: string): TrainState {
  const path = resolve(dir);
  if (!existsSync(path))
    throw new CheckpointError(
      `resume_model '${dir}' does not exist: pass a save_dir/iter_N directory written by segtrain train (or PaddleSeg)`,
    );
  for (const file of [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE])
    if (!existsSync(join(path, file)))
      throw new CheckpointError(
        `resume_model '${dir}' has no ${file}: it is not a complete iter_N checkpoint (best_model holds weights only)`,
      );
  const statePath = join(path, STATE_FILE);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(statePath, 'utf8'));
  } catch (error) {
    throw new CheckpointError(
      `resume_model '${dir}': ${statePath} is not valid JSON (${(error as Error).message}); resume from another iter_N`,
    );
  }
  const parsed = TRAIN_STATE.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CheckpointError(
      `resume_model '${dir}': ${statePath} is not a segtrain training state: ` +
        `'${issue?.path.join('.') || '(root)'}' ${issue?.message ?? 'is invalid'}; resume from another iter_N`,
    );
  }
  const state: TrainState = parsed.data;
  const named = /_(\d+)$/.exec(basename(path));
  if (named && Number(named[1]) !== state.iter)
    throw new CheckpointError(
      `resume_model '${dir}': the directory name says iteration ${named[1]} but ${STATE_FILE} says ${state.iter}`,
    );
  return state;
}

/** Restores model weights and optimizer state from `--resume_model DIR` (strict: every key). */
export async function loadIterCheckpoint(dir: string, model: SegModel, optimizer: Optimizer): Promise<void> {
  const path = resolve(dir);
  if (isPaddleCheckpoint(path)) {
    const { nameTable } = await loadModule(model, join(path, PADDLE_MODEL_FILE), { strict: true });
    const pdopt = await readPdparams(join(path, PADDLE_OPTIMIZER_FILE));
    const iter = Number(/_(\d+)$/.exec(basename(path))?.[1] ?? 0);
    try {
      optimizer.loadStateValues(paddleOptimizerState(pdopt, nameTable, optimizer.beta1, iter), {
        strict: true,
      });
    } catch (error) {
      throw new CheckpointError(
        `resume_model '${dir}': ${join(path, PADDLE_OPTIMIZER_FILE)}: ${(error as Error).message}`,
      );
    }
    return;
  }
  await loadModule(model, join(path, MODEL_FILE), { strict: true });
  const { values } = await loadStateFile(join(path, OPTIMIZER_FILE));
  optimizer.loadStateValues(values, { strict: true });
}

/** Paddle's accumulator suffixes (`<internal name><suffix>` in a .pdopt) → segtrain's optimizer slots. */
const PADDLE_ACCUMULATORS: ReadonlyArray<[string, string]> = [
  ['_velocity_0', 'velocity'],
  ['_moment1_0', 'moment1'],
  ['_moment2_0', 'moment2'],
];

/**
 * A PaddleSeg `.pdopt` as segtrain optimizer state: accumulators are named by Paddle's internal
 * parameter names (`conv2d_0.w_0_moment1_0`), matched to structured names through model.pdparams'
 * `StructuredToParameterName@@` table. Adam's step count comes from `_beta1_pow_acc_0`, which Paddle
 * starts at β1 and multiplies by β1 after each step (β1^(t+1) after t steps).
 */
export function paddleOptimizerState(
  pdopt: PdparamsFile,
  nameTable: ReadonlyMap<string, string>,
  beta1: number,
  iter: number,
): Map<string, HostTensor> {
  if (nameTable.size === 0)
    throw new Error(
      'model.pdparams has no StructuredToParameterName@@ table, so the accumulators cannot be matched to parameters',
    );
  const values = new Map<string, HostTensor>();
  const floats = (name: string) => {
    const t = pdopt.tensors.get(name);
    if (t && !(t.data instanceof Float32Array)) throw new Error(`'${name}' is ${t.dtype}, not a float array`);
    return t as { shape: number[]; data: Float32Array } | undefined;
  };
  for (const [structured, internal] of nameTable) {
    for (const [suffix, slot] of PADDLE_ACCUMULATORS) {
      const t = floats(`${internal}${suffix}`);
      if (t) values.set(`${structured}.${slot}`, { shape: t.shape, data: t.data });
    }
    const pow = floats(`${internal}_beta1_pow_acc_0`)?.data[0];
    if (pow !== undefined && pow > 0)
      values.set(`${structured}.step`, {
        shape: [1],
        data: Float32Array.of(Math.round(Math.log(pow) / Math.log(beta1)) - 1),
      });
  }
  values.set('@step', { shape: [1], data: Float32Array.of(iter) });
  return values;
}
