import {
  CST,
  type Document,
  isAlias,
  isCollection,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  parseDocument,
  visit,
  type YAMLError,
  type Node as YamlNode,
} from 'yaml';
import { ConfigError, type Origin } from './errors.js';
import type { ConfigNode, MapNode, Scalar } from './node.js';

// PyYAML's implicit resolvers (YAML 1.1, as PaddleSeg loads configs). Note a float needs a dot and a
// signed exponent: `1e-5` and `1.0e5` stay strings, exactly as in Python.
const BOOL_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const BOOL_FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;
const NULL = /^(?:~|null|Null|NULL|)$/;
const INT =
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/;
const FLOAT =
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;

function sexagesimal(digits: string): number {
  return digits.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
}

function splitSign(text: string): [number, string] {
  if (text.startsWith('-')) return [-1, text.slice(1)];
  if (text.startsWith('+')) return [1, text.slice(1)];
  return [1, text];
}

function constructInt(text: string): number {
  const [sign, body] = splitSign(text.replaceAll('_', ''));
  if (body === '0') return 0;
  if (body.startsWith('0b')) return sign * Number.parseInt(body.slice(2), 2);
  if (body.startsWith('0x')) return sign * Number.parseInt(body.slice(2), 16);
  if (body.startsWith('0')) return sign * Number.parseInt(body, 8);
  if (body.includes(':')) return sign * sexagesimal(body);
  return sign * Number(body);
}

function constructFloat(text: string): number {
  const [sign, body] = splitSign(text.replaceAll('_', '').toLowerCase());
  if (body === '.inf') return sign * Number.POSITIVE_INFINITY;
  if (body === '.nan') return Number.NaN;
  if (body.includes(':')) return sign * sexagesimal(body);
  return sign * Number(body);
}

/** Resolves a plain (unquoted) scalar the way PyYAML's FullLoader does. */
export function resolvePlainScalar(text: string): Scalar {
  if (NULL.test(text)) return null;
  if (BOOL_TRUE.test(text)) return true;
  if (BOOL_FALSE.test(text)) return false;
  if (INT.test(text)) return constructInt(text);
  if (FLOAT.test(text)) return constructFloat(text);
  return text;
}

const TAG_PREFIX = 'tag:yaml.org,2002:';

function resolveTagged(tag: string, text: string, origin: Origin): Scalar {
  const name = tag.startsWith(TAG_PREFIX) ? tag.slice(TAG_PREFIX.length) : tag.replace(/^!!/, '');
  switch (name) {
    case 'str':
      return text;
    case 'null':
      return null;
    case 'bool':
      if (BOOL_TRUE.test(text)) return true;
      if (BOOL_FALSE.test(text)) return false;
      break;
    case 'int':
      if (INT.test(text)) return constructInt(text);
      break;
    case 'float': {
      if (FLOAT.test(text)) return constructFloat(text);
      if (INT.test(text)) return constructInt(text);
      const n = Number(text);
      if (text.trim() !== '' && !Number.isNaN(n)) return n;
      break;
    }
    default:
      throw new ConfigError({ origin, keyPath: '', problem: `unsupported YAML tag '${tag}'` });
  }
  throw new ConfigError({
    origin,
    keyPath: '',
    problem: `'${text}' is not a valid ${name} for tag '${tag}'`,
  });
}

const EXCERPT_WIDTH = 100;

/**
 * The offending source line with a caret under the column, numbered like a compiler's output. When the
 * error sits at the start of its line (as for an unclosed bracket found at the next line or at the end of
 * the file) the nearest non-blank line before it is shown too, since that is usually where the mistake is.
 */
function sourceExcerpt(text: string, lineStarts: readonly number[], line: number, col: number): string {
  const lineText = (n: number): string =>
    text.slice(lineStarts[n - 1] ?? text.length, lineStarts[n] ?? text.length).replace(/\r?\n$/, '');
  const offending = lineText(line);
  const rows: Array<[string, string]> = [];
  if (/^\s*$/.test(offending.slice(0, col - 1))) {
    let previous = line - 1;
    while (previous >= 1 && /^\s*$/.test(lineText(previous))) previous--;
    if (previous >= 1) rows.push([String(previous), clip(lineText(previous), 0).text]);
  }
  const start = Math.max(0, Math.min(col - 1 - EXCERPT_WIDTH / 2, offending.length - EXCERPT_WIDTH));
  const clipped = clip(offending, start);
  rows.push([String(line), clipped.text]);
  // Keep tabs so the caret lines up however the terminal expands them.
  const pad = clipped.lead + offending.slice(start, col - 1).replace(/[^\t]/g, ' ');
  rows.push(['', `${pad}^`]);
  const width = Math.max(...rows.map(([n]) => n.length));
  return rows.map(([n, body]) => `  ${n.padStart(width)} | ${body}`.trimEnd()).join('\n');
}

/** At most EXCERPT_WIDTH characters of a line from `start`, with an ellipsis where it was cut. */
function clip(line: string, start: number): { text: string; lead: string } {
  const lead = start > 0 ? '…' : '';
  const body = line.slice(start, start + EXCERPT_WIDTH);
  return { text: `${lead}${body}${start + EXCERPT_WIDTH < line.length ? '…' : ''}`, lead: lead ? ' ' : '' };
}

/**
 * The first YAML syntax error as `file:line:column: invalid YAML: <reason>` with the source line and a
 * caret. yaml notices an unclosed `[`, `{` or quote only where it should have ended (often the next line
 * or the end of the file), so those errors point at the opening character and say where it was still open.
 */
function syntaxError(
  doc: Document.Parsed,
  error: YAMLError,
  text: string,
  file: string,
  lineCounter: LineCounter,
): ConfigError {
  // With prettyErrors off the library leaves linePos unset; the offset is there (-1 when unknown).
  const offset = error.pos[0];
  let reason = error.message.split('\n')[0] ?? '';
  if (error.code === 'MULTIPLE_DOCS')
    reason = 'a config file must hold one YAML document; a second starts here';
  if (offset < 0)
    return new ConfigError({ origin: { file }, keyPath: '', problem: `invalid YAML: ${reason}` });
  let at = offset;
  const opener = unclosedOpener(doc, reason, text, offset);
  if (opener !== undefined) {
    const where = /^\s*$/.test(text.slice(offset))
      ? 'the end of the file'
      : (({ line, col }) => `line ${line}, column ${col}`)(lineCounter.linePos(offset));
    const char = text[opener] ?? '';
    reason += `; the ${char === "'" ? `"'"` : `'${char}'`} here is still open at ${where}`;
    at = opener;
  }
  const { line, col } = lineCounter.linePos(at);
  return new ConfigError({
    origin: { file, line, column: col },
    keyPath: '',
    problem: `invalid YAML: ${reason}`,
    excerpt: sourceExcerpt(text, lineCounter.lineStarts, line, col),
  });
}

/** Where the bracket or quote that an "end with a ]" / "Missing closing quote" error is about was opened. */
function unclosedOpener(
  doc: Document.Parsed,
  reason: string,
  text: string,
  offset: number,
): number | undefined {
  const flow = /^Flow (sequence|map)\b.* end with a [\]}]$/.exec(reason);
  const quote = /^Missing closing (["'])quote$/.exec(reason);
  if (!flow && !quote) return undefined;
  const unclosed = flow ? unclosedFlowStarts(text) : new Set<number>();
  let opener: number | undefined;
  visit(doc, (_key, node) => {
    const range = isCollection(node) || isScalar(node) ? node.range : undefined;
    // The unfinished node ends exactly where the error is reported; the innermost one is the culprit.
    if (!range || range[1] !== offset || (opener !== undefined && range[0] <= opener)) return;
    const matches = flow
      ? isCollection(node) && isMap(node) === (flow[1] === 'map') && unclosed.has(range[0])
      : isScalar(node) && text[range[0]] === quote?.[1];
    if (matches) opener = range[0];
  });
  return opener;
}

/** Offsets of the `[` and `{` that the source never closes, read from yaml's concrete syntax tree. */
function unclosedFlowStarts(text: string): Set<number> {
  const starts = new Set<number>();
  for (const token of new Parser().parse(text)) {
    if (token.type !== 'document') continue;
    CST.visit(token, (item) => {
      for (const part of [item.key, item.value]) {
        if (part?.type !== 'flow-collection') continue;
        const close = part.start.source === '{' ? '}' : ']';
        if (part.end[0]?.source !== close) starts.add(part.offset);
      }
    });
  }
  return starts;
}

/**
 * Parses YAML 1.1 text as PyYAML's FullLoader would: anchors and aliases, merge keys (`<<`), repeated
 * keys (last wins, keeping the first position), PyYAML's scalar rules. Every node remembers its line.
 */
export function parseYaml11(text: string, file: string): MapNode {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    version: '1.1',
    schema: 'failsafe',
    uniqueKeys: false,
    merge: false,
    lineCounter,
    prettyErrors: false,
  });
  const firstError = doc.errors[0];
  if (firstError) throw syntaxError(doc, firstError, text, file, lineCounter);
  const originOf = (node: YamlNode | null | undefined): Origin => {
    const offset = node?.range?.[0];
    return offset === undefined ? { file } : { file, line: lineCounter.linePos(offset).line };
  };

  const convert = (node: YamlNode | null | undefined, seen: Set<YamlNode>): ConfigNode => {
    const origin = originOf(node);
    if (node === null || node === undefined) return { kind: 'scalar', value: null, origin };
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (!target) throw new ConfigError({ origin, keyPath: '', problem: `unknown alias '*${node.source}'` });
      if (seen.has(target))
        throw new ConfigError({ origin, keyPath: '', problem: `recursive alias '*${node.source}'` });
      return convert(target, new Set(seen).add(target));
    }
    if (isScalar(node)) {
      const text = String(node.value ?? '');
      let value: Scalar;
      if (node.tag) value = resolveTagged(node.tag, text, origin);
      else if (node.type === 'PLAIN') value = resolvePlainScalar(text);
      else value = text;
      return { kind: 'scalar', value, origin };
    }
    if (isSeq(node)) {
      return { kind: 'list', items: node.items.map((item) => convert(item as YamlNode, seen)), origin };
    }
    if (isMap(node)) {
      const entries = new Map<string, ConfigNode>();
      const merged: MapNode[] = [];
      for (const pair of node.items) {
        const keyNode = pair.key as YamlNode | null;
        const key = convert(keyNode, seen);
        const isMergeKey = isScalar(keyNode) && keyNode.type === 'PLAIN' && keyNode.value === '<<';
        const value = convert(pair.value as YamlNode | null, seen);
        if (isMergeKey) {
          const sources = value.kind === 'list' ? value.items : [value];
          for (const source of sources) {
            if (source.kind !== 'map') {
              throw new ConfigError({
                origin: key.origin,
                keyPath: '<<',
                expected: 'a mapping (or a list of mappings) to merge',
                found: `a ${source.kind}`,
              });
            }
            merged.push(source);
          }
          continue;
        }
        if (key.kind !== 'scalar') {
          throw new ConfigError({
            origin: key.origin,
            keyPath: '',
            problem: 'a mapping key must be a plain value, not a list or mapping',
          });
        }
        const name = String(key.value);
        if (name === '__proto__')
          throw new ConfigError({
            origin: key.origin,
            keyPath: name,
            problem: 'this key name is not allowed',
          });
        entries.set(name, value);
      }
      // Merge keys fill in only what the mapping itself does not set; earlier sources win.
      for (const source of merged) {
        for (const [k, v] of source.entries) if (!entries.has(k)) entries.set(k, v);
      }
      return { kind: 'map', entries, origin };
    }
    throw new ConfigError({ origin, keyPath: '', problem: 'unsupported YAML node' });
  };

  const root = convert(doc.contents as YamlNode | null, new Set());
  if (root.kind === 'scalar' && root.value === null)
    return { kind: 'map', entries: new Map(), origin: { file, line: 1 } };
  if (root.kind !== 'map') {
    throw new ConfigError({
      origin: root.origin,
      keyPath: '',
      expected: 'a mapping of config keys at the top level',
      found: `a ${root.kind}`,
    });
  }
  return root;
}
