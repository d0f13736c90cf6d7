import { ConfigError } from '@segtrain/config';
import { UsageError } from './args.js';
import { configCommand } from './commands/config.js';
import { dataCommand } from './commands/data.js';
import { doctorCommand } from './commands/doctor.js';
import { modelCommand } from './commands/model.js';
import { predictCommand, trainCommand, valCommand } from './commands/train.js';
import type { Io } from './io.js';

const COMMANDS: Readonly<
  Record<string, { help: string; run: (argv: readonly string[], io: Io) => number | Promise<number> }>
> = {
  train: { help: 'train a model from a PaddleSeg-style config (iteration-based)', run: trainCommand },
  val: { help: 'evaluate saved weights on the val_dataset (mIoU, Acc, Kappa, Dice)', run: valCommand },
  predict: { help: 'write colour masks and overlays for images', run: predictCommand },
  data: { help: 'data demo: generate the embedded street-scene dataset', run: dataCommand },
  config: { help: 'config show FILE: print a resolved PaddleSeg-style config', run: configCommand },
  doctor: { help: 'check the WebGPU adapter, Node, pnpm and ZeroMQ', run: doctorCommand },
  model: {
    help: 'model summary | run: layer tree, parameters, MACs; one forward (and backward) from weights',
    run: modelCommand,
  },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)}${c.help}`);
  return `Usage: segtrain <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun 'segtrain <command> --help' for a command's options.\n`;
}

/** Runs the CLI; returns the exit code. Errors a user can fix are printed as one message, not a stack. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`segtrain: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`${error.message}\n`);
      return 2;
    }
    if (error instanceof ConfigError) {
      io.err(`segtrain ${name}: config error: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
