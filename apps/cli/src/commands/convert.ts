/**
 * `segtrain convert IN --out OUT [--to safetensors|pdparams] [--config F]`: weights between
 * PaddlePaddle's `.pdparams` (a file, or a PaddleSeg `.tar.gz` holding model.pdparams) and
 * safetensors, both ways, name for name and bit for bit. With `--config`, the keys are checked
 * against that config's model first, as PaddleSeg's loader would see them.
 */
import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { loadConfig } from '@segtrain/config';
import { buildModel, type ComponentConfig, withoutPretrained } from '@segtrain/models';
import {
  type HostTensor,
  isPaddleWeights,
  loadStateFile,
  PdparamsError,
  SafetensorsError,
  saveStateFile,
} from '@segtrain/nn';
import { getDevice } from '@segtrain/tensor';
import { type CommandSpec, type FlagSpec, type ParsedArgs, UsageError } from '../args.js';
import type { Io } from '../io.js';

const FORMATS = ['safetensors', 'pdparams'] as const;
type Format = (typeof FORMATS)[number];

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  out: {
    kind: 'string',
    value: 'FILE',
    help: 'where the converted weights go (written atomically)',
    required: true,
  },
  to: {
    kind: 'string',
    value: 'safetensors|pdparams',
    help: "the output format (default: from --out's extension, else the other format than the input's)",
  },
  config: {
    kind: 'string',
    value: 'FILE',
    help: "check the keys against this config's model: K/N matched, missing, unexpected and mismatched shapes",
  },
};

function formatOf(path: string): Format | null {
  if (isPaddleWeights(path)) return 'pdparams';
  if (extname(path).toLowerCase() === '.safetensors') return 'safetensors';
  return null;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Compares a state dict with the config's model; returns the lines to print and whether shapes clash. */
async function checkAgainstConfig(
  configPath: string,
  values: ReadonlyMap<string, HostTensor>,
): Promise<{ lines: string[]; clashes: number }> {
  const config = loadConfig(configPath);
  const model = buildModel(await getDevice(), withoutPretrained(config.model as unknown as ComponentConfig));
  try {
    const own = model.stateDict();
    const lines: string[] = [];
    let matched = 0;
    let clashes = 0;
    for (const [name, t] of own) {
      const v = values.get(name);
      if (!v) lines.push(`  missing: ${name} ${shapeText(t.shape)}`);
      else if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
        lines.push(
          `  shape: ${name} is ${shapeText(v.shape)} in the file, ${shapeText(t.shape)} in the model`,
        );
        clashes++;
      } else matched++;
    }
    const unexpected = [...values.keys()].filter((k) => !own.has(k));
    for (const k of unexpected) lines.push(`  unexpected: ${k}`);
    lines.unshift(
      `${matched}/${own.size} variables of ${model.constructor.name} (${configPath}) match the file; ` +
        `${own.size - matched - clashes} missing, ${clashes} of another shape, ${unexpected.length} unexpected`,
    );
    return { lines, clashes };
  } finally {
    model.dispose();
  }
}

async function convert(args: ParsedArgs, io: Io): Promise<number> {
  const input = args.positionals[0];
  if (!input)
    throw new UsageError(
      'segtrain convert: name the weights file to convert (IN.pdparams or IN.safetensors)',
    );
  const out = args.flags.out as string;
  const inFormat = formatOf(input);
  if (!inFormat)
    throw new UsageError(
      `segtrain convert: '${input}' is neither .safetensors nor .pdparams/.pdopt (or a .tar.gz/.tgz/.tar holding model.pdparams)`,
    );
  const to = args.flags.to as string | undefined;
  if (to !== undefined && !(FORMATS as readonly string[]).includes(to))
    throw new UsageError(`segtrain convert: --to must be safetensors or pdparams, got '${to}'`);
  const outFormat =
    (to as Format | undefined) ?? formatOf(out) ?? (inFormat === 'pdparams' ? 'safetensors' : 'pdparams');
  const wanted = outFormat === 'pdparams' ? /\.(pdparams|pdopt)$/i : /\.safetensors$/i;
  if (!wanted.test(out))
    throw new UsageError(
      `segtrain convert: --out '${out}' must end in .${outFormat} for the ${outFormat} format`,
    );
  if (!existsSync(input)) {
    io.err(`segtrain convert: '${input}' does not exist\n`);
    return 1;
  }
  let values: Map<string, HostTensor>;
  try {
    ({ values } = await loadStateFile(input));
  } catch (error) {
    if (error instanceof PdparamsError || error instanceof SafetensorsError) {
      io.err(`segtrain convert: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const config = args.flags.config as string | undefined;
  if (config) {
    const { lines, clashes } = await checkAgainstConfig(config, values);
    io.out(`${lines.join('\n')}\n`);
    if (clashes > 0) {
      io.err(`segtrain convert: ${clashes} key(s) have another shape than the model's; nothing written\n`);
      return 1;
    }
  }
  await saveStateFile(out, values, outFormat === 'safetensors' ? { source: input } : undefined);
  const count = [...values.values()].reduce((a, v) => a + v.data.length, 0);
  io.out(
    `Wrote ${out}: ${values.size} arrays, ${count.toLocaleString('en-US')} values (${inFormat} → ${outFormat})\n`,
  );
  return 0;
}

export const CONVERT: CommandSpec = {
  name: 'convert',
  description: 'weights between PaddlePaddle .pdparams (or a PaddleSeg .tar.gz) and safetensors, both ways',
  flags: FLAGS,
  arguments: '<weights>',
  run: convert,
};
