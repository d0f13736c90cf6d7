import { ConfigError } from '@segtrain/config';
import { Command, CommanderError } from 'commander';
import {
  addFlags,
  type CommandSpec,
  commanderExitCode,
  configureCommand,
  parsedArgs,
  UsageError,
} from './args.js';
import { CONFIG_SHOW } from './commands/config.js';
import { CONVERT } from './commands/convert.js';
import { DATA_DEMO } from './commands/data.js';
import { DOCTOR } from './commands/doctor.js';
import { EXPORT } from './commands/export.js';
import { LAUNCH } from './commands/launch.js';
import { MODEL_RUN, MODEL_SUMMARY } from './commands/model.js';
import { PREDICT, TRAIN, VAL } from './commands/train.js';
import type { Io } from './io.js';
import { VERSION } from './version.js';

interface CommandGroup {
  readonly name: string;
  readonly description: string;
  readonly commands: readonly CommandSpec[];
}

const TREE: ReadonlyArray<CommandSpec | CommandGroup> = [
  TRAIN,
  VAL,
  PREDICT,
  LAUNCH,
  EXPORT,
  CONVERT,
  { name: 'data', description: 'datasets: generate the embedded demo street scenes', commands: [DATA_DEMO] },
  { name: 'config', description: 'print a resolved PaddleSeg-style config', commands: [CONFIG_SHOW] },
  {
    name: 'model',
    description: 'layer tree, parameters and MACs; one forward (and backward) from weights',
    commands: [MODEL_SUMMARY, MODEL_RUN],
  },
  DOCTOR,
];

/** `path` is the parent's full name, e.g. `segtrain model`. */
function addCommand(parent: Command, path: string, spec: CommandSpec, io: Io, ran: (code: number) => void) {
  const command = configureCommand(parent.command(spec.name), io, `${path} ${spec.name}`);
  addFlags(command.description(spec.description), spec.flags);
  if (spec.arguments) command.arguments(spec.arguments);
  if (spec.passThrough) command.passThroughOptions();
  command.action(async () => ran(await spec.run(parsedArgs(command, spec.flags), io)));
}

/** The `segtrain` command tree, writing through `io`; `ran` receives the exit code of the command run. */
function program(io: Io, ran: (code: number) => void): Command {
  const root = configureCommand(new Command('segtrain'), io, 'segtrain')
    .description('Semantic-segmentation training on WebGPU with PaddleSeg configs')
    .version(VERSION, '-V, --version', 'print the version')
    .helpCommand('help [command]', 'show help for a command')
    .enablePositionalOptions();
  for (const entry of TREE) {
    if ('run' in entry) {
      addCommand(root, 'segtrain', entry, io, ran);
      continue;
    }
    const path = `segtrain ${entry.name}`;
    const group = configureCommand(root.command(entry.name), io, path).description(entry.description);
    for (const spec of entry.commands) addCommand(group, path, spec, io, ran);
  }
  return root;
}

/** Runs the CLI; returns the exit code. Errors a user can fix are printed as one message, not a stack. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  let code = 0;
  const name = argv[0] ?? 'segtrain';
  try {
    await program(io, (c) => {
      code = c;
    }).parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) return commanderExitCode(error);
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
