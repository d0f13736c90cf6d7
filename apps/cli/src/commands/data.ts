import { resolve } from 'node:path';
import { generateDemoDataset, isDemoDatasetComplete } from '@segtrain/data';
import { type CommandSpec, type FlagSpec, type ParsedArgs, UsageError } from '../args.js';
import type { Io } from '../io.js';

const DEMO_FLAGS: Readonly<Record<string, FlagSpec>> = {
  out: { kind: 'string', value: 'DIR', help: 'where the dataset goes (default data/demo)' },
  train: { kind: 'int', value: 'N', help: 'training images (default 300)' },
  val: { kind: 'int', value: 'N', help: 'validation images (default 30)' },
  width: { kind: 'int', value: 'W', help: 'image width (default 256)' },
  height: { kind: 'int', value: 'H', help: 'image height (default 128)' },
  seed: { kind: 'int', value: 'N', help: 'generator seed (default 0): same seed, same bytes' },
  force: { kind: 'bool', help: 'regenerate even when a complete dataset is there' },
};

function positive(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || value < 1)
    throw new UsageError(`segtrain data demo: --${name} must be ≥ 1`);
  return value;
}

async function demo(args: ParsedArgs, io: Io): Promise<number> {
  const root = resolve((args.flags.out as string | undefined) ?? 'data/demo');
  const options = {
    root,
    ...(positive(args.flags.train, 'train') ? { trainCount: args.flags.train as number } : {}),
    ...(positive(args.flags.val, 'val') ? { valCount: args.flags.val as number } : {}),
    ...(positive(args.flags.width, 'width') ? { width: args.flags.width as number } : {}),
    ...(positive(args.flags.height, 'height') ? { height: args.flags.height as number } : {}),
    ...(typeof args.flags.seed === 'number' ? { seed: args.flags.seed } : {}),
  };
  if (!args.flags.force && (await isDemoDatasetComplete(root, options))) {
    io.out(`The demo dataset is already complete in ${root} (use --force to regenerate).\n`);
    return 0;
  }
  const started = performance.now();
  const result = await generateDemoDataset(options);
  io.out(
    `Wrote the demo dataset to ${result.root}: ${result.train} training and ${result.val} validation images ` +
      `(Cityscapes layout) in ${((performance.now() - started) / 1000).toFixed(1)} s.\n`,
  );
  return 0;
}

/** `segtrain data demo`: the embedded street-scene dataset, in the Cityscapes layout. */
export const DATA_DEMO: CommandSpec = {
  name: 'demo',
  description: 'generate the embedded street-scene dataset (Cityscapes layout) once',
  flags: DEMO_FLAGS,
  run: demo,
};
