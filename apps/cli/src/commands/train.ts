/**
 * `segtrain train | val | predict`: PaddleSeg's tools/train.py, val.py and predict.py flags
 * (spec b.1–b.3) over @segtrain/trainer.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { arch, cpus, platform, release } from 'node:os';
import { dirname, join } from 'node:path';
import { CollectiveError, launchInfoFromEnv, ProcessGroup } from '@segtrain/collective';
import {
  type ConfigOverrides,
  loadConfig,
  printableConfig,
  type ResolvedConfig,
  type TransformConfig,
} from '@segtrain/config';
import { cityscapesPalette, colorMap, createDataset, DatasetError } from '@segtrain/data';
import { buildModel, type ComponentConfig, type SegModel } from '@segtrain/models';
import { PdparamsError, SafetensorsError, StateDictError } from '@segtrain/nn';
import { OnnxExportError, onnxSegmenter, openOnnx } from '@segtrain/onnx';
import { type Device, DeviceLimitError, getDevice } from '@segtrain/tensor';
import {
  CheckpointError,
  collectImages,
  describeFileError,
  EvaluationError,
  evaluate,
  type InferenceOptions,
  inferenceOptions,
  loadWeights,
  logPrefix,
  NonFiniteLossError,
  PredictInputError,
  predict,
  predictWith,
  SaveDirError,
  train,
} from '@segtrain/trainer';
import { parse as parseYaml } from 'yaml';
import { type CommandSpec, type FlagSpec, type ParsedArgs, UsageError } from '../args.js';
import type { Io } from '../io.js';
import { VERSION } from '../version.js';
import { OVERRIDE_FLAGS, overridesFrom, toYaml } from './config.js';

const DEVICE_FLAG: FlagSpec = {
  kind: 'string',
  value: 'gpu|cpu',
  help: 'gpu: the WebGPU adapter Dawn picks (default); cpu: a software (CPU) adapter such as lavapipe',
};

const TRAIN_FLAGS: Readonly<Record<string, FlagSpec>> = {
  config: { kind: 'string', value: 'FILE', help: 'the PaddleSeg-style YAML config', required: true },
  save_dir: {
    kind: 'string',
    value: 'DIR',
    help: 'checkpoints, event files and the plot (default ./output)',
  },
  save_interval: {
    kind: 'int',
    min: 1,
    value: 'N',
    help: 'iterations between checkpoints/evaluations (default 1000)',
  },
  log_iters: { kind: 'int', value: 'N', min: 1, help: 'iterations between log lines (default 10)' },
  num_workers: {
    kind: 'int',
    value: 'N',
    min: 0,
    help: 'data loader worker threads (default 0: main thread)',
  },
  do_eval: { kind: 'bool', help: 'evaluate at every save point and keep best_model' },
  use_vdl: { kind: 'bool', help: 'write TensorBoard event files (VisualDL scalars) to save_dir' },
  resume_model: { kind: 'string', value: 'DIR', help: 'continue from save_dir/iter_N exactly' },
  seed: {
    kind: 'int',
    value: 'N',
    min: 0,
    help: 'seed for initialisation, data order, augmentation and dropout',
  },
  keep_checkpoint_max: {
    kind: 'int',
    value: 'N',
    help: 'iter_* directories kept (default 5; ≤ 0 keeps all)',
  },
  early_stop_intervals: {
    kind: 'int',
    value: 'N',
    min: 1,
    help: 'stop after N evaluations below the best mIoU over the classes present',
  },
  device: DEVICE_FLAG,
  ...OVERRIDE_FLAGS,
};

const INFER_FLAGS: Readonly<Record<string, FlagSpec>> = {
  aug_eval: {
    kind: 'bool',
    help: 'multi-scale / flip inference (overwrites test_config scales and flips)',
    aliases: ['aug_pred'],
  },
  scales: { kind: 'list', value: 'S', help: 'scales for --aug_eval (default 1.0)' },
  flip_horizontal: { kind: 'bool', help: 'add horizontally flipped inference (with --aug_eval)' },
  flip_vertical: { kind: 'bool', help: 'add vertically flipped inference (with --aug_eval)' },
  is_slide: { kind: 'bool', help: 'sliding-window inference (overwrites test_config crop_size/stride)' },
  crop_size: { kind: 'list', value: 'W_H', help: 'window size W H for --is_slide' },
  stride: { kind: 'list', value: 'W_H', help: 'window stride W H for --is_slide' },
};

const VAL_FLAGS: Readonly<Record<string, FlagSpec>> = {
  config: TRAIN_FLAGS.config as FlagSpec,
  model_path: {
    kind: 'string',
    value: 'PATH',
    help: 'model.safetensors, or a checkpoint directory',
    required: true,
  },
  num_workers: TRAIN_FLAGS.num_workers as FlagSpec,
  device: DEVICE_FLAG,
  ...INFER_FLAGS,
  ...OVERRIDE_FLAGS,
};

const PREDICT_FLAGS: Readonly<Record<string, FlagSpec>> = {
  config: {
    ...(TRAIN_FLAGS.config as FlagSpec),
    required: false,
    help: 'the PaddleSeg-style config (optional with an exported model.onnx: its deploy.yaml names the transforms)',
  },
  model_path: VAL_FLAGS.model_path as FlagSpec,
  image_path: {
    kind: 'string',
    value: 'PATH',
    help: 'an image, a directory (recursive) or a list file',
    required: true,
  },
  save_dir: { kind: 'string', value: 'DIR', help: 'where masks and overlays go (default ./output/result)' },
  device: DEVICE_FLAG,
  custom_color: { kind: 'list', value: 'R_G_B', help: 'colours of classes 0, 1, ... (R G B ints each)' },
  ...INFER_FLAGS,
  ...OVERRIDE_FLAGS,
};

/** A flag declared `required` (commander has checked it is there). */
function requiredString(args: ParsedArgs, name: string): string {
  return args.flags[name] as string;
}

function optionalInt(args: ParsedArgs, name: string, fallback: number): number {
  const v = args.flags[name];
  return typeof v === 'number' ? v : fallback;
}

/** `--device`: WebGPU picks the adapter; `cpu` asks for a software one by name. */
function selectDevice(args: ParsedArgs): void {
  const device = (args.flags.device as string | undefined) ?? 'gpu';
  if (device === 'cpu') {
    process.env.SEGTRAIN_ADAPTER ??= 'llvmpipe';
    return;
  }
  if (device !== 'gpu')
    throw new UsageError(
      `--device ${device} is not supported: segtrain runs on a WebGPU adapter (gpu), or on a CPU adapter such as lavapipe (cpu)`,
    );
}

function logger(io: Io): (line: string) => void {
  return (line) => io.out(`${logPrefix()}${line}\n`);
}

function environmentBlock(device: Device): string {
  const rows: [string, string][] = [
    ['platform', `${platform()}-${release()}-${arch()}`],
    ['Node', process.version],
    ['segtrain', VERSION],
    ['WebGPU adapter', device.adapterName],
    ['CPUs', `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`],
    ['SEGTRAIN_ADAPTER', process.env.SEGTRAIN_ADAPTER ?? '(unset)'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [
    '\n------------Environment Information-------------',
    ...rows.map(([k, v]) => `${k.padEnd(width)}: ${v}`),
    '------------------------------------------------',
  ].join('\n');
}

function configBlock(config: ResolvedConfig): string {
  const printable = printableConfig(config);
  return `\n---------------Config Information---------------\n${toYaml(printable)}------------------------------------------------`;
}

/** test_config, with --aug_eval / --is_slide overwriting it as val.py does (spec b.2). */
function inferenceFrom(config: ResolvedConfig, args: ParsedArgs): InferenceOptions {
  const base = inferenceOptions(config);
  const pair = (name: string): [number, number] => {
    const v = args.flags[name] as string[] | undefined;
    const nums = (v ?? []).map(Number);
    if (nums.length !== 2 || !nums.every((n) => Number.isInteger(n) && n > 0))
      throw new UsageError(`--${name} expects two positive integers W H, got '${(v ?? []).join(' ')}'`);
    return nums as [number, number];
  };
  let o: InferenceOptions = base;
  if (args.flags.aug_eval)
    o = {
      ...o,
      aug: true,
      scales: ((args.flags.scales as string[] | undefined) ?? ['1.0']).map((s) => {
        const n = Number(s);
        if (!(n > 0)) throw new UsageError(`--scales expects positive numbers, got '${s}'`);
        return n;
      }),
      flipHorizontal: args.flags.flip_horizontal === true,
      flipVertical: args.flags.flip_vertical === true,
    };
  if (args.flags.is_slide) o = { ...o, isSlide: true, cropSize: pair('crop_size'), stride: pair('stride') };
  return o;
}

function loadWithOverrides(args: ParsedArgs): ResolvedConfig {
  const overrides: ConfigOverrides = overridesFrom(args);
  return loadConfig(requiredString(args, 'config'), overrides);
}

/** Errors a user fixes from the message alone: one line, exit 1. */
function userError(error: unknown): string | null {
  if (
    error instanceof DatasetError ||
    error instanceof CheckpointError ||
    error instanceof NonFiniteLossError ||
    error instanceof PredictInputError ||
    error instanceof SaveDirError ||
    error instanceof EvaluationError ||
    error instanceof SafetensorsError ||
    error instanceof PdparamsError ||
    error instanceof OnnxExportError ||
    error instanceof StateDictError ||
    error instanceof DeviceLimitError ||
    error instanceof CollectiveError ||
    error instanceof RangeError
  )
    return error.message;
  return describeFileError(error);
}

export async function guarded(io: Io, command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    const message = userError(error);
    if (message === null) throw error;
    io.err(`segtrain ${command}: ${message}\n`);
    return 1;
  }
}

/** The config's model with the weights `--model_path` names (val, predict, export); what loading found is logged. */
export async function modelWithWeights(
  device: Device,
  config: ResolvedConfig,
  modelPath: string,
  log: (line: string) => void,
): Promise<SegModel> {
  const model = buildModel(device, config.model as unknown as ComponentConfig);
  for (const note of await loadWeights(model, modelPath)) log(note);
  return model;
}

/** The common start of train/val/predict/export: the device choice, the resolved config. */
export function prepare(args: ParsedArgs): ResolvedConfig {
  selectDevice(args);
  return loadWithOverrides(args);
}

/** 128 + the signal's number, as a shell reports a process a signal stopped. */
const SIGNAL_EXIT: Readonly<Record<'SIGINT' | 'SIGTERM', number>> = { SIGINT: 130, SIGTERM: 143 };

/**
 * SIGINT / SIGTERM (Ctrl-C, a scheduler's preemption) abort `controller`: training finishes its step
 * and saves. A second signal exits at once. Returns the uninstaller and which signal came.
 */
function stopOnSignals(controller: AbortController, log: (line: string) => void) {
  let received: 'SIGINT' | 'SIGTERM' | null = null;
  const handler = (signal: 'SIGINT' | 'SIGTERM') => {
    if (received) process.exit(SIGNAL_EXIT[signal]);
    received = signal;
    log(`${signal}: finishing this iteration, then writing a checkpoint (send it again to stop at once)`);
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    received: () => received,
    uninstall: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

/** `log_ranks: "0,1"`: the ranks whose log lines are printed (PaddleSeg's develop branch; default 0). */
function logsOnRank(config: ResolvedConfig, rank: number): boolean {
  return config.log_ranks
    .split(',')
    .map((r) => Number(r.trim()))
    .includes(rank);
}

/** The data-parallel group this process belongs to, when a launcher started it with world size > 1. */
async function joinGroup(): Promise<ProcessGroup | null> {
  const info = launchInfoFromEnv();
  if (!info || info.worldSize < 2) return null;
  return ProcessGroup.fromEnv();
}

/**
 * `segtrain launch` sets SEGTRAIN_LAUNCHER_PID: a rank whose launcher vanished (SIGKILL) exits
 * instead of waiting on its peers until the collective deadline.
 */
function exitWithLauncher(): void {
  const pid = Number(process.env.SEGTRAIN_LAUNCHER_PID);
  if (!Number.isInteger(pid) || pid <= 1) return;
  setInterval(() => {
    if (process.ppid !== pid) process.exit(1);
  }, 1000).unref();
}

/** SHA-256 of every parameter and buffer in state-dict order: equal on every rank of a healthy job. */
async function parametersHash(model: SegModel): Promise<string> {
  const hash = createHash('sha256');
  for (const [name, t] of model.stateDict()) {
    const data = await t.data();
    hash.update(name);
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest('hex');
}

async function trainRun(args: ParsedArgs, io: Io): Promise<number> {
  const config = prepare(args);
  exitWithLauncher();
  return guarded(io, 'train', async () => {
    const group = await joinGroup();
    const rank = group?.rank ?? 0;
    const device = await getDevice();
    const printing = logsOnRank(config, rank);
    const log = printing ? logger(io) : () => undefined;
    log(environmentBlock(device));
    log(configBlock(config));
    for (const note of config.source.notes) log(note);
    const controller = new AbortController();
    const signals = stopOnSignals(controller, log);
    try {
      const result = await train({
        device,
        config,
        saveDir: (args.flags.save_dir as string | undefined) ?? 'output',
        saveInterval: optionalInt(args, 'save_interval', 1000),
        logIters: optionalInt(args, 'log_iters', 10),
        numWorkers: optionalInt(args, 'num_workers', 0),
        doEval: args.flags.do_eval === true,
        useVdl: args.flags.use_vdl === true,
        resumeModel: (args.flags.resume_model as string | undefined) ?? null,
        seed: typeof args.flags.seed === 'number' ? args.flags.seed : null,
        keepCheckpointMax: optionalInt(args, 'keep_checkpoint_max', 5),
        earlyStopIntervals:
          typeof args.flags.early_stop_intervals === 'number' ? args.flags.early_stop_intervals : null,
        log,
        signal: controller.signal,
        group,
        ...(io.progress && rank === 0 ? { progress: io.progress } : {}),
      });
      if (group)
        io.out(`${logPrefix()}rank ${rank}: parameters sha256 ${await parametersHash(result.model)}\n`);
      result.model.dispose();
      const signal = signals.received();
      if (result.interrupted && signal) {
        log(
          `interrupted at iter ${result.iter}; resume with --resume_model ${result.interrupted.checkpoint}`,
        );
        return SIGNAL_EXIT[signal];
      }
      log(`Training finished at iter ${result.iter}.`);
      return 0;
    } finally {
      signals.uninstall();
      await group?.close();
    }
  });
}

async function valRun(args: ParsedArgs, io: Io): Promise<number> {
  const config = prepare(args);
  const modelPath = requiredString(args, 'model_path');
  if (!config.val_dataset) throw new UsageError(`segtrain val: ${config.source.file} has no val_dataset`);
  const valBlock = config.val_dataset;
  return guarded(io, 'val', async () => {
    const device = await getDevice();
    const log = logger(io);
    const dataset = createDataset(valBlock, { mode: 'val', configKey: 'val_dataset' });
    const model = await modelWithWeights(device, config, modelPath, log);
    const result = await evaluate(device, model, {
      dataset,
      transforms: valBlock.transforms,
      inference: inferenceFrom(config, args),
      numWorkers: optionalInt(args, 'num_workers', 0),
      log,
      ...(io.progress ? { progress: io.progress } : {}),
    });
    for (const line of result.lines) log(line);
    model.dispose();
    return 0;
  });
}

function paletteFor(config: ResolvedConfig | null, args: ParsedArgs): number[][] {
  const custom = args.flags.custom_color as string[] | undefined;
  const base = config?.train_dataset.type === 'Cityscapes' ? cityscapesPalette() : colorMap(256);
  if (!custom) return base;
  const values = custom.map(Number);
  if (values.length % 3 !== 0 || !values.every((v) => Number.isInteger(v) && v >= 0 && v <= 255))
    throw new UsageError('--custom_color expects R G B triples of integers 0–255');
  const palette = base.map((c) => [...c]);
  for (let i = 0; i < values.length / 3; i++) palette[i] = values.slice(i * 3, i * 3 + 3);
  return palette;
}

/** The val transforms an exported model's deploy.yaml names (PaddleSeg's Deploy.transforms). */
function deployTransforms(modelPath: string): TransformConfig[] {
  const path = join(dirname(modelPath), 'deploy.yaml');
  if (!existsSync(path))
    throw new PredictInputError(
      `no --config and no deploy.yaml beside ${modelPath}: pass the config, or keep the deploy.yaml segtrain export wrote`,
    );
  const deploy = parseYaml(readFileSync(path, 'utf8')) as { Deploy?: { transforms?: unknown } } | null;
  const transforms = deploy?.Deploy?.transforms;
  if (!Array.isArray(transforms))
    throw new PredictInputError(`${path}: Deploy.transforms is missing or not a list`);
  return transforms as TransformConfig[];
}

async function predictRun(args: ParsedArgs, io: Io): Promise<number> {
  const modelPath = requiredString(args, 'model_path');
  const imagePath = requiredString(args, 'image_path');
  const onnxModel = /\.onnx$/i.test(modelPath);
  if (!onnxModel && args.flags.config === undefined)
    throw new UsageError(
      'segtrain predict: --config is required (it may be left out only for an exported model.onnx, whose deploy.yaml names the transforms)',
    );
  const config = args.flags.config === undefined ? null : prepare(args);
  const saveDir = (args.flags.save_dir as string | undefined) ?? 'output/result';
  const palette = paletteFor(config, args);
  return guarded(io, 'predict', async () => {
    const images = collectImages(imagePath);
    const log = logger(io);
    const dataset = config ? (config.val_dataset ?? config.train_dataset) : null;
    const common = {
      images,
      saveDir,
      palette,
      log,
      imgChannels: dataset && 'img_channels' in dataset ? dataset.img_channels : 3,
    } as const;
    let written: string[];
    if (onnxModel) {
      // An exported model runs on onnxruntime (CPU): no WebGPU device, no model code.
      if (!existsSync(modelPath))
        throw new PredictInputError(
          `model_path '${modelPath}' does not exist: pass the model.onnx segtrain export wrote`,
        );
      const transforms = config?.val_dataset?.transforms ?? deployTransforms(modelPath);
      const session = await openOnnx(modelPath);
      const dims = session.inputShape.map((d) => (d < 0 ? 'N' : String(d)));
      log(`Running ${modelPath} on onnxruntime (CPU), input [${dims.join(', ')}]`);
      try {
        written = await predictWith(onnxSegmenter(session), { ...common, transforms });
      } finally {
        await session.close();
      }
    } else {
      const resolved = config as ResolvedConfig;
      const device = await getDevice();
      const model = await modelWithWeights(device, resolved, modelPath, log);
      written = await predict(device, model, {
        ...common,
        transforms: resolved.val_dataset?.transforms ?? [{ type: 'Normalize', mean: [0.5], std: [0.5] }],
        inference: inferenceFrom(resolved, args),
      });
      model.dispose();
    }
    log(
      `Predicted ${written.length} image(s): masks in ${saveDir}/pseudo_color_prediction, overlays in ${saveDir}/added_prediction`,
    );
    return 0;
  });
}

export const TRAIN: CommandSpec = {
  name: 'train',
  description: 'train a model from a PaddleSeg-style config (iteration-based)',
  flags: TRAIN_FLAGS,
  run: trainRun,
};

export const VAL: CommandSpec = {
  name: 'val',
  description: 'evaluate saved weights on the val_dataset (mIoU, Acc, Kappa, Dice)',
  flags: VAL_FLAGS,
  run: valRun,
};

export const PREDICT: CommandSpec = {
  name: 'predict',
  description: 'write colour masks and overlays for images',
  flags: PREDICT_FLAGS,
  run: predictRun,
};
