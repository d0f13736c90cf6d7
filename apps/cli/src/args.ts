/**
 * The CLI's flags on commander: PaddleSeg's spellings (`--save_dir DIR`, `--save_dir=DIR`,
 * multi-value `--opts a=1 b=2`), declared once per command as a table the commands read back as
 * `ParsedArgs`. Commander gives `-h`, suggestions for unknown flags and the usage-error exits.
 */
import { type Command, type CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Io } from './io.js';

export type FlagKind = 'string' | 'int' | 'float' | 'bool' | 'list';

export interface FlagSpec {
  readonly kind: FlagKind;
  readonly help: string;
  /** Placeholder shown in help, e.g. FILE (one word; lists show it as WORD...). */
  readonly value?: string;
  /** Reported missing before the command runs (after unknown flags, which are the likelier typo). */
  readonly required?: boolean;
  /** Other spellings (PaddleSeg's, where ours differ). */
  readonly aliases?: readonly string[];
  /** The smallest value an int or float flag takes (PaddleSeg's "0 means the config's value" is not kept). */
  readonly min?: number;
}

export type FlagValue = string | number | boolean | string[];

export interface ParsedArgs {
  readonly flags: Readonly<Record<string, FlagValue>>;
  readonly positionals: readonly string[];
}

/** One runnable command: its flags, its positional arguments (commander syntax) and its body. */
export interface CommandSpec {
  readonly name: string;
  readonly description: string;
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly arguments?: string;
  /** Flags after the first positional belong to it (`segtrain launch --ips … train --config …`). */
  readonly passThrough?: boolean;
  readonly run: (args: ParsedArgs, io: Io) => number | Promise<number>;
}

/** A mistake in how the command was called: printed without a stack, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Where commands write; tests pass their own to capture output. */
export interface Output {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

function numberParser(kind: 'int' | 'float', min: number | undefined): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (kind === 'int' && !/^[-+]?\d+$/.test(text))
      throw new InvalidArgumentError(`expected an integer, got '${text}'.`);
    if (text.trim() === '' || Number.isNaN(value))
      throw new InvalidArgumentError(`expected a number, got '${text}'.`);
    if (min !== undefined && value < min)
      throw new InvalidArgumentError(`expected a value ≥ ${min}, got ${text}.`);
    return value;
  };
}

/** A value that is another flag (`--config --iters 2`) is a missing value, not a path named `--iters`. */
function notAFlag(text: string): string {
  if (/^--[a-z]/i.test(text)) throw new InvalidArgumentError(`expected a value, got the flag '${text}'.`);
  return text;
}

function optionFor(name: string, spec: FlagSpec): Option {
  const placeholder = spec.value ?? 'V';
  const value =
    spec.kind === 'bool' ? '' : spec.kind === 'list' ? ` <${placeholder}...>` : ` <${placeholder}>`;
  const option = new Option(`--${name}${value}`, spec.required ? `${spec.help} (required)` : spec.help);
  if (spec.kind === 'int' || spec.kind === 'float') option.argParser(numberParser(spec.kind, spec.min));
  if (spec.kind === 'string') option.argParser(notAFlag);
  return option;
}

/**
 * Applies the CLI's conventions to a command: output through `io`, errors thrown (not exit),
 * suggestions, and error lines that start with the command's full name (`segtrain train: …`).
 */
export function configureCommand(command: Command, io: Output, fullName: string): Command {
  return command
    .exitOverride()
    .showSuggestionAfterError(true)
    .showHelpAfterError("(add --help for the command's options)")
    .configureOutput({
      writeOut: io.out,
      writeErr: io.err,
      outputError: (text, write) => write(text.replace(/^error: /, `${fullName}: `)),
    })
    .helpOption('-h, --help', 'show this help');
}

/** Declares `specs` on `command`; aliases are hidden options read back under the main name. */
export function addFlags(command: Command, specs: Readonly<Record<string, FlagSpec>>): Command {
  for (const [name, spec] of Object.entries(specs)) {
    command.addOption(optionFor(name, spec));
    for (const alias of spec.aliases ?? [])
      command.addOption(optionFor(alias, { ...spec, required: false }).hideHelp());
  }
  return command;
}

/**
 * What `command` parsed, keyed by the specs' names (an alias's value under its main name). A missing
 * required flag is a usage error, reported as commander reports its own.
 */
export function parsedArgs(command: Command, specs: Readonly<Record<string, FlagSpec>>): ParsedArgs {
  const raw = command.opts<Record<string, FlagValue | undefined>>();
  const flags: Record<string, FlagValue> = {};
  for (const [name, spec] of Object.entries(specs)) {
    for (const key of [name, ...(spec.aliases ?? [])]) {
      const value = raw[key];
      if (value !== undefined) flags[name] = value;
    }
    if (spec.required && flags[name] === undefined)
      command.error(`error: required option '--${name}' not specified`, {
        exitCode: 2,
        code: 'segtrain.missingMandatoryOption',
      });
  }
  return { flags, positionals: command.args };
}

/** The exit code for a commander outcome: 0 after help or the version, 2 for a usage error. */
export function commanderExitCode(error: CommanderError): number {
  return error.exitCode === 0 ? 0 : 2;
}
