import { existsSync } from 'node:fs';
import { loadConfig, type ResolvedConfig } from '@segtrain/config';
import { buildModel, type ComponentConfig, type SegModel } from '@segtrain/models';
import {
  Conv2d,
  type DecodedTensor,
  Dropout,
  type HostTensor,
  Linear,
  type LossBlock,
  lossFromConfig,
  type Module,
  readSafetensors,
  type SafetensorsEntry,
  writeSafetensors,
} from '@segtrain/nn';
import { backward, getDevice, noGrad, type Tensor, tensor, tidy, zeros } from '@segtrain/tensor';
import { type CommandSpec, type FlagSpec, type ParsedArgs, UsageError } from '../args.js';
import type { Io } from '../io.js';
import { OVERRIDE_FLAGS, overridesFrom } from './config.js';

/** An error a user can fix (a missing file or tensor, a wrong shape): printed as one line, exit 1. */
class ModelCommandError extends Error {}

const SUMMARY_FLAGS: Readonly<Record<string, FlagSpec>> = {
  config: {
    kind: 'string',
    value: 'FILE',
    help: 'the PaddleSeg-style config whose model block is built',
    required: true,
  },
  input: {
    kind: 'string',
    value: 'NxCxHxW',
    help: 'input shape for the MACs count (default 1x3x512x1024)',
  },
  ...OVERRIDE_FLAGS,
};

const RUN_FLAGS: Readonly<Record<string, FlagSpec>> = {
  config: {
    kind: 'string',
    value: 'FILE',
    help: 'the PaddleSeg-style config (model and loss blocks)',
    required: true,
  },
  weights: {
    kind: 'string',
    value: 'W.safetensors',
    required: true,
    help: 'every state-dict entry by PaddleSeg name (float32, Paddle layouts)',
  },
  input: {
    kind: 'string',
    value: 'X.safetensors',
    help: "holds 'x': the NCHW float32 input",
    required: true,
  },
  label: {
    kind: 'string',
    value: 'Y.safetensors',
    help: "holds 'y': int32 N×H×W labels (255 = ignore); adds 'loss' and 'grad.<name>' to the output",
  },
  mode: {
    kind: 'string',
    value: 'train|eval',
    help: 'train: BN uses batch statistics (default); eval: running ones. Dropout is off in both',
  },
  out: {
    kind: 'string',
    value: 'OUT.safetensors',
    help: "where 'logits.<i>', 'loss' and 'grad.<name>' go",
    required: true,
  },
  ...OVERRIDE_FLAGS,
};

function parseShape(text: string): number[] {
  const parts = text.split(/[x×,]/i).map((p) => p.trim());
  const dims = parts.map(Number);
  if (dims.length !== 4 || !dims.every((d) => Number.isInteger(d) && d > 0))
    throw new UsageError(
      `segtrain model summary: --input expects NxCxHxW with four positive integers, got '${text}'`,
    );
  return dims;
}

/** The module's class name (what PaddleSeg prints). */
const className = (m: Module) => m.constructor.name;

/** The layer tree: one line per module, indented by depth, with its trainable parameter count. */
function layerTree(model: Module): string[] {
  const lines: string[] = [];
  for (const [name, m] of model.namedModules()) {
    const depth = name === '' ? 0 : name.split('.').length;
    const label = name === '' ? className(m) : `${name.split('.').at(-1)}: ${className(m)}`;
    lines.push(`${'  '.repeat(depth)}${label} (${m.parameterCount()})`);
  }
  return lines;
}

interface MacsResult {
  readonly perBlock: Map<string, number>;
  readonly total: number;
}

/**
 * Multiply-adds of every Conv2d (out·H_out·W_out·(in/groups)·kh·kw per sample) and Linear
 * (outputs·in) in one eval-mode forward on an all-zeros input, grouped by top-level child. The
 * layers' `forward` is wrapped on the instance for the count and restored after.
 */
function countMacs(model: SegModel, input: readonly number[]): MacsResult {
  const perBlock = new Map<string, number>();
  for (const [name] of model.namedModules()) {
    if (name !== '' && !name.includes('.')) perBlock.set(name, 0);
  }
  const restore: Array<() => void> = [];
  for (const [name, m] of model.namedModules()) {
    const block = name === '' ? '(model)' : (name.split('.')[0] as string);
    if (m instanceof Conv2d) {
      const conv = m;
      const original = conv.forward;
      const [, inPerGroup = 0, kh = 1, kw = 1] = conv.weight.shape;
      conv.forward = (x: Tensor) => {
        const y = original.call(conv, x);
        const [n = 1, c = 0, h = 1, w = 1] = y.shape;
        perBlock.set(block, (perBlock.get(block) ?? 0) + n * c * h * w * inPerGroup * kh * kw);
        return y;
      };
      restore.push(() => {
        delete (conv as { forward?: unknown }).forward;
      });
    } else if (m instanceof Linear) {
      const lin = m;
      const original = lin.forward;
      const inFeatures = lin.weight.shape[0] ?? 0;
      lin.forward = (x: Tensor) => {
        const y = original.call(lin, x);
        perBlock.set(block, (perBlock.get(block) ?? 0) + y.size * inFeatures);
        return y;
      };
      restore.push(() => {
        delete (lin as { forward?: unknown }).forward;
      });
    }
  }
  const wasTraining = model.training;
  model.eval();
  try {
    tidy(() => {
      noGrad(() => {
        const x = zeros(model.device, input);
        model.forward(x);
      });
    });
  } finally {
    for (const r of restore) r();
    model.train(wasTraining);
  }
  let total = 0;
  for (const v of perBlock.values()) total += v;
  return { perBlock, total };
}

function loadModelConfig(args: ParsedArgs): ResolvedConfig {
  const file = args.flags.config as string;
  if (!existsSync(file)) throw new ModelCommandError(`config file not found: ${file}`);
  return loadConfig(file, overridesFrom(args));
}

async function summary(args: ParsedArgs, io: Io): Promise<number> {
  const input = parseShape((args.flags.input as string | undefined) ?? '1x3x512x1024');
  const config = loadModelConfig(args);
  const device = await getDevice();
  const model = buildModel(device, config.model as unknown as ComponentConfig);
  try {
    io.out(`${layerTree(model).join('\n')}\n\n`);
    io.out(`Trainable parameters: ${model.parameterCount()}\n\n`);
    const macs = countMacs(model, input);
    io.out(
      `Multiply-adds for input ${input.join('x')} (eval mode; Conv2d and Linear layers only, ` +
        'matmuls outside them such as attention are not counted):\n',
    );
    const width = Math.max(8, ...[...macs.perBlock.keys()].map((k) => k.length)) + 2;
    for (const [block, n] of macs.perBlock)
      io.out(`  ${block.padEnd(width)}${String(n).padStart(16)}  (${(n / 1e9).toFixed(3)} G)\n`);
    io.out(
      `  ${'total'.padEnd(width)}${String(macs.total).padStart(16)}  (${(macs.total / 1e9).toFixed(3)} G)\n`,
    );
  } finally {
    model.dispose();
  }
  return 0;
}

async function readTensorFile(path: string, flag: string): Promise<Map<string, DecodedTensor>> {
  if (!existsSync(path)) throw new ModelCommandError(`--${flag} file not found: ${path}`);
  try {
    return (await readSafetensors(path)).tensors;
  } catch (e) {
    throw new ModelCommandError(`--${flag} ${path}: ${(e as Error).message}`);
  }
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

async function runModel(args: ParsedArgs, io: Io): Promise<number> {
  const weightsPath = args.flags.weights as string;
  const inputPath = args.flags.input as string;
  const outPath = args.flags.out as string;
  const labelPath = args.flags.label as string | undefined;
  const mode = (args.flags.mode as string | undefined) ?? 'train';
  if (mode !== 'train' && mode !== 'eval')
    throw new UsageError(`segtrain model run: --mode expects train or eval, got '${mode}'`);
  const config = loadModelConfig(args);

  // Inputs first, so a bad file fails before the model is built.
  const inputs = await readTensorFile(inputPath, 'input');
  const x = inputs.get('x');
  if (!x)
    throw new ModelCommandError(
      `--input ${inputPath}: no tensor 'x' (has: ${[...inputs.keys()].join(', ') || 'none'})`,
    );
  if (!(x.data instanceof Float32Array))
    throw new ModelCommandError(`--input ${inputPath}: tensor 'x' has dtype ${x.dtype}; expected F32`);
  if (x.shape.length !== 4 || x.shape.some((d) => d <= 0))
    throw new ModelCommandError(
      `--input ${inputPath}: tensor 'x' has shape ${fmt(x.shape)}; expected NCHW (4 positive dimensions)`,
    );
  const [n = 0, , h = 0, w = 0] = x.shape;
  let y: DecodedTensor | undefined;
  if (labelPath) {
    const labels = await readTensorFile(labelPath, 'label');
    y = labels.get('y');
    if (!y)
      throw new ModelCommandError(
        `--label ${labelPath}: no tensor 'y' (has: ${[...labels.keys()].join(', ') || 'none'})`,
      );
    if (y.dtype === 'F32' || y.dtype === 'F16')
      throw new ModelCommandError(`--label ${labelPath}: tensor 'y' has dtype ${y.dtype}; expected I32`);
    if (y.shape.length !== 3 || y.shape[0] !== n || y.shape[1] !== h || y.shape[2] !== w)
      throw new ModelCommandError(
        `--label ${labelPath}: tensor 'y' has shape ${fmt(y.shape)}; expected ${fmt([n, h, w])} (N×H×W of 'x')`,
      );
  }
  const weights = await readTensorFile(weightsPath, 'weights');

  const device = await getDevice();
  const model = buildModel(device, config.model as unknown as ComponentConfig);
  try {
    const own = model.stateDict();
    const values = new Map<string, HostTensor>();
    for (const [name, t] of weights) {
      if (!own.has(name)) continue;
      if (!(t.data instanceof Float32Array))
        throw new ModelCommandError(
          `--weights ${weightsPath}: tensor '${name}' has dtype ${t.dtype}; expected F32`,
        );
      values.set(name, { shape: t.shape, data: t.data });
    }
    const missing = [...own.keys()].filter((k) => !weights.has(k));
    if (missing.length)
      throw new ModelCommandError(
        `--weights ${weightsPath}: ${missing.length} state-dict entr${missing.length === 1 ? 'y is' : 'ies are'} missing: ` +
          `${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}`,
      );
    const unexpected = [...weights.keys()].filter((k) => !own.has(k));
    if (unexpected.length)
      io.err(
        `[WARNING] --weights ${weightsPath}: ${unexpected.length} tensor(s) not in ${className(model)} were ignored: ` +
          `${unexpected.slice(0, 10).join(', ')}${unexpected.length > 10 ? ', ...' : ''}\n`,
      );
    try {
      model.loadStateDict(values);
    } catch (e) {
      throw new ModelCommandError(`--weights ${weightsPath}: ${(e as Error).message}`);
    }

    model.train(mode === 'train');
    // Dropout and drop-path are off in both modes: those modules alone go to eval.
    for (const [, m] of model.namedModules()) if (m instanceof Dropout) m.training = false;

    const out = new Map<string, SafetensorsEntry>();
    const xt = tensor(device, x.data, x.shape);
    if (!y) {
      const logits = noGrad(() => model.forward(xt));
      for (const [i, l] of logits.entries())
        out.set(`logits.${i}`, { dtype: 'F32', shape: [...l.shape], data: (await l.data()) as Float32Array });
      for (const l of logits) l.dispose();
    } else {
      const yt = tensor(device, y.data, y.shape, 'i32');
      const lossFn = lossFromConfig(config.loss as unknown as LossBlock);
      const logits = model.forward(xt);
      for (const [i, l] of logits.entries())
        out.set(`logits.${i}`, { dtype: 'F32', shape: [...l.shape], data: (await l.data()) as Float32Array });
      let total: Tensor;
      try {
        total = (await lossFn(logits, yt)).total;
      } catch (e) {
        throw new ModelCommandError(
          `loss (--config ${config.source.file}) on ${logits.length} logit(s) in ${mode} mode: ${(e as Error).message}`,
        );
      }
      out.set('loss', { dtype: 'F32', shape: [...total.shape], data: (await total.data()) as Float32Array });
      backward(total);
      const noGradient: string[] = [];
      for (const [name, p] of model.namedParameters()) {
        if (!p.requiresGrad) continue;
        if (!p.grad) {
          noGradient.push(name);
          continue;
        }
        out.set(`grad.${name}`, {
          dtype: 'F32',
          shape: [...p.shape],
          data: (await p.grad.data()) as Float32Array,
        });
      }
      if (noGradient.length)
        io.err(
          `[NOTE] ${noGradient.length} parameter(s) took no part in the ${mode}-mode forward and have no 'grad.' entry: ` +
            `${noGradient.slice(0, 10).join(', ')}${noGradient.length > 10 ? ', ...' : ''}\n`,
        );
      yt.dispose();
    }
    xt.dispose();
    await writeSafetensors(outPath, out, { mode, config: config.source.file });
    const logitShapes = [...out.entries()]
      .filter(([k]) => k.startsWith('logits.'))
      .map(([k, v]) => `${k} ${fmt(v.shape)}`);
    io.out(
      `Wrote ${outPath}: ${logitShapes.join(', ')}${y ? `, loss, ${out.size - logitShapes.length - 1} grad.* entries` : ''}\n`,
    );
  } finally {
    model.dispose();
  }
  return 0;
}

/** A model subcommand whose own errors (a missing file or tensor, a wrong shape) print as one line, exit 1. */
function reportingModelErrors(
  name: string,
  body: (args: ParsedArgs, io: Io) => Promise<number>,
): (args: ParsedArgs, io: Io) => Promise<number> {
  return async (args, io) => {
    try {
      return await body(args, io);
    } catch (e) {
      if (!(e instanceof ModelCommandError)) throw e;
      io.err(`segtrain model ${name}: ${e.message}\n`);
      return 1;
    }
  };
}

export const MODEL_SUMMARY: CommandSpec = {
  name: 'summary',
  description: 'layer tree, trainable parameters and multiply-adds of the config model',
  flags: SUMMARY_FLAGS,
  run: reportingModelErrors('summary', summary),
};

export const MODEL_RUN: CommandSpec = {
  name: 'run',
  description: 'one forward (and with --label, loss and backward) from safetensors weights and input',
  flags: RUN_FLAGS,
  run: reportingModelErrors('run', runModel),
};
