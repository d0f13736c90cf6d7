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
import { loadModule, loadStateFile, type Optimizer, saveModule, saveStateFile } from '@segtrain/nn';
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

/**
 * The weights file a `--model_path` names: a .safetensors file, or a checkpoint directory
 * (iter_N or best_model) holding model.safetensors.
 */
export function resolveWeights(modelPath: string): string {
  const path = resolve(modelPath);
  if (!existsSync(path))
    throw new CheckpointError(
      `model_path '${modelPath}' does not exist: pass a model.safetensors file or a checkpoint directory (save_dir/best_model or save_dir/iter_N)`,
    );
  if (path.endsWith('.safetensors')) return path;
  const inDir = join(path, MODEL_FILE);
  if (!existsSync(inDir))
    throw new CheckpointError(
      `model_path '${modelPath}' holds no ${MODEL_FILE}: pass a checkpoint directory written by segtrain train, or the .safetensors file itself`,
    );
  return inDir;
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

/** Reads and checks the training state of `--resume_model DIR` (before anything is built). */
export function readTrainState(dir: string): TrainState {
  const path = resolve(dir);
  if (!existsSync(path))
    throw new CheckpointError(
      `resume_model '${dir}' does not exist: pass a save_dir/iter_N directory written by segtrain train`,
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
  await loadModule(model, join(path, MODEL_FILE), { strict: true });
  const { values } = await loadStateFile(join(path, OPTIMIZER_FILE));
  optimizer.loadStateValues(values, { strict: true });
}
