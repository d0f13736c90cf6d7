/** A small argument parser with PaddleSeg's flag spellings: `--flag value`, `--flag=value`, and multi-value `--opts a=1 b=2`. */
export type FlagKind = 'string' | 'int' | 'float' | 'bool' | 'list';

export interface FlagSpec {
  readonly kind: FlagKind;
  readonly help: string;
  /** Placeholder shown in help, e.g. FILE. */
  readonly value?: string;
}

export type FlagValue = string | number | boolean | string[];

export interface ParsedArgs {
  readonly flags: Readonly<Record<string, FlagValue>>;
  readonly positionals: readonly string[];
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function convert(command: string, name: string, kind: FlagKind, text: string): FlagValue {
  if (kind === 'int') {
    if (!/^[-+]?\d+$/.test(text))
      throw new UsageError(`${command}: --${name} expects an integer, got '${text}'`);
    return Number(text);
  }
  if (kind === 'float') {
    const value = Number(text);
    if (text.trim() === '' || Number.isNaN(value))
      throw new UsageError(`${command}: --${name} expects a number, got '${text}'`);
    return value;
  }
  return text;
}

export function parseArgs(
  command: string,
  argv: readonly string[],
  specs: Readonly<Record<string, FlagSpec>>,
): ParsedArgs {
  const flags: Record<string, FlagValue> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--') || arg === '--') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = (eq < 0 ? arg.slice(2) : arg.slice(2, eq)).replaceAll('-', '_');
    const spec = specs[name];
    if (!spec) {
      const known = Object.keys(specs)
        .map((k) => `--${k}`)
        .join(', ');
      throw new UsageError(`${command}: unknown option --${name}. Known options: ${known || '(none)'}`);
    }
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    if (spec.kind === 'bool') {
      if (inline !== undefined && !['true', 'false'].includes(inline)) {
        throw new UsageError(`${command}: --${name} is a switch; write --${name} (or --${name}=false)`);
      }
      flags[name] = inline !== 'false';
      continue;
    }
    if (spec.kind === 'list') {
      const values = inline !== undefined ? [inline] : [];
      while (i + 1 < argv.length && !(argv[i + 1] ?? '').startsWith('--')) values.push(argv[++i] ?? '');
      if (values.length === 0) throw new UsageError(`${command}: --${name} needs at least one value`);
      flags[name] = [...((flags[name] as string[] | undefined) ?? []), ...values];
      continue;
    }
    const text = inline ?? argv[++i];
    if (text === undefined)
      throw new UsageError(`${command}: --${name} needs a value${spec.value ? ` (${spec.value})` : ''}`);
    flags[name] = convert(command, name, spec.kind, text);
  }
  return { flags, positionals };
}

export function formatHelp(usage: string, specs: Readonly<Record<string, FlagSpec>>): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const left = `  --${name}${spec.kind === 'bool' ? '' : ` ${spec.value ?? (spec.kind === 'list' ? 'V ...' : 'V')}`}`;
    return `${left.padEnd(34)}${spec.help}`;
  });
  return `${usage}\n\nOptions:\n${rows.join('\n')}\n`;
}
