import {
  type ConfigOverrides,
  loadConfig,
  loadRawMerged,
  type PlainValue,
  printableConfig,
} from '@segtrain/config';
import { Document, isSeq, visit } from 'yaml';
import type { CommandSpec, FlagSpec, ParsedArgs } from '../args.js';
import type { Io } from '../io.js';

/** The override flags every config-reading command accepts, with PaddleSeg's names. */
export const OVERRIDE_FLAGS: Readonly<Record<string, FlagSpec>> = {
  batch_size: {
    kind: 'int',
    value: 'N',
    min: 1,
    help: 'samples per card per iteration (overrides batch_size)',
  },
  iters: { kind: 'int', value: 'N', min: 1, help: 'total iterations (overrides iters)' },
  learning_rate: { kind: 'float', value: 'X', help: 'overrides lr_scheduler.learning_rate' },
  opts: {
    kind: 'list',
    value: 'K=V',
    help: 'dotted-path overrides, applied last (Python literal values)',
  },
};

export function overridesFrom(args: ParsedArgs): ConfigOverrides {
  const { flags } = args;
  return {
    batchSize: flags.batch_size as number | undefined,
    iters: flags.iters as number | undefined,
    learningRate: flags.learning_rate as number | undefined,
    opts: flags.opts as string[] | undefined,
  };
}

const SHOW_FLAGS: Readonly<Record<string, FlagSpec>> = {
  ...OVERRIDE_FLAGS,
  raw: { kind: 'bool', help: 'print the merged dict before normalisation and validation' },
  json: { kind: 'bool', help: 'print JSON on stdout and nothing else' },
};

/** YAML as PaddleSeg prints configs, with short lists of scalars on one line (`crop_size: [1024, 512]`). */
export function toYaml(value: PlainValue): string {
  const doc = new Document(value);
  visit(doc, {
    Seq(_, node) {
      if (isSeq(node) && node.items.every((item) => !(item && typeof item === 'object' && 'items' in item)))
        node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

function show(args: ParsedArgs, io: Io): number {
  const file = args.positionals[0] as string;
  const overrides = overridesFrom(args);
  if (args.flags.raw) {
    const raw = loadRawMerged(file, overrides);
    io.out(args.flags.json ? `${JSON.stringify(raw, null, 2)}\n` : toYaml(raw));
    return 0;
  }
  const config = loadConfig(file, overrides);
  const printable = printableConfig(config);
  if (args.flags.json) {
    io.out(`${JSON.stringify(printable, null, 2)}\n`);
    return 0;
  }
  for (const note of config.source.notes) io.err(`[NOTE] ${note}\n`);
  io.out(toYaml(printable));
  return 0;
}

/** `segtrain config show FILE`: the resolved config (its `_base_` chain, overrides, normalisation). */
export const CONFIG_SHOW: CommandSpec = {
  name: 'show',
  description: 'resolve a PaddleSeg-style config (_base_ chain, overrides, validation) and print it',
  flags: SHOW_FLAGS,
  arguments: '<file>',
  run: show,
};
