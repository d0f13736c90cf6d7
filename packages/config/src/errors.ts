/** Where a config value came from: a file (and line, 1-based, and column), or a command-line flag. */
export interface Origin {
  readonly file: string;
  readonly line?: number;
  /** 1-based column within the line (UTF-16 code units, as an editor counts); only with a line. */
  readonly column?: number;
}

export interface ConfigErrorDetails {
  /** The file (or command-line source) the offending value came from. */
  readonly origin: Origin;
  /** Dotted key path, e.g. `train_dataset.transforms[1].crop_size`; empty for the whole file. */
  readonly keyPath: string;
  /** What a valid value looks like. */
  readonly expected?: string;
  /** What was found instead (already rendered). */
  readonly found?: string;
  /** What to do about it. */
  readonly hint?: string;
  /** Free text for errors that are not about one value's type. */
  readonly problem?: string;
  /** Source lines shown under the message (e.g. the offending YAML line with a caret), already indented. */
  readonly excerpt?: string;
}

/** `file`, `file:line` or `file:line:column`, the form editors and terminals turn into links. */
export function formatOrigin(origin: Origin): string {
  if (origin.line === undefined) return origin.file;
  return origin.column === undefined
    ? `${origin.file}:${origin.line}`
    : `${origin.file}:${origin.line}:${origin.column}`;
}

/** Every config error names the file (and line), the dotted key path, what was expected and what was found. */
export class ConfigError extends Error {
  readonly origin: Origin;
  readonly keyPath: string;
  readonly expected: string | undefined;
  readonly found: string | undefined;
  readonly hint: string | undefined;
  readonly excerpt: string | undefined;

  constructor(details: ConfigErrorDetails) {
    const parts: string[] = [formatOrigin(details.origin)];
    if (details.keyPath) parts.push(`key '${details.keyPath}'`);
    let message = `${parts.join(': ')}: `;
    if (details.problem) message += details.problem;
    if (details.expected !== undefined) {
      message += `${details.problem ? '; ' : ''}expected ${details.expected}`;
      if (details.found !== undefined) message += `, found ${details.found}`;
    }
    if (details.hint) message += `. ${details.hint}`;
    if (details.excerpt) message += `\n${details.excerpt}`;
    super(message);
    this.name = 'ConfigError';
    this.origin = details.origin;
    this.keyPath = details.keyPath;
    this.expected = details.expected;
    this.found = details.found;
    this.hint = details.hint;
    this.excerpt = details.excerpt;
  }
}

/** Renders a value for an error message: short, with its type visible. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (the key is missing)';
  if (value === null) return 'null';
  if (typeof value === 'string')
    return `the string '${value.length > 60 ? `${value.slice(0, 57)}...` : value}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) {
    const text = JSON.stringify(value);
    return `a list ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
  }
  const text = JSON.stringify(value);
  return `a mapping ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}
