import { ConfigError, type Origin } from './errors.js';
import { type ConfigNode, fromPlain, type MapNode, type PlainValue } from './node.js';
import { parsePythonLiteral } from './python-literal.js';

/** Command-line overrides, applied after `_base_` merging in PaddleSeg's order. */
export interface ConfigOverrides {
  /** `--learning_rate`: sets `lr_scheduler.learning_rate`; 0 or absent is skipped, as in PaddleSeg. */
  readonly learningRate?: number | undefined;
  /** `--batch_size` (per card); 0 or absent is skipped. */
  readonly batchSize?: number | undefined;
  /** `--iters`; 0 or absent is skipped. */
  readonly iters?: number | undefined;
  /** `--to_static_training`. */
  readonly toStaticTraining?: boolean | undefined;
  /** `--opts key.path=value ...`, applied last so it wins over the flags above. */
  readonly opts?: readonly string[] | undefined;
}

function withEntry(map: MapNode, key: string, value: ConfigNode): MapNode {
  const entries = new Map(map.entries);
  entries.set(key, value);
  return { kind: 'map', entries, origin: map.origin };
}

/** Sets a dotted path whose intermediate keys must already exist (PaddleSeg's rule); the last may be new. */
function setPath(
  root: MapNode,
  keys: readonly string[],
  value: ConfigNode,
  source: Origin,
  item: string,
  prefix: readonly string[] = [],
): MapNode {
  const [head, ...rest] = keys;
  if (head === undefined) return root;
  if (rest.length === 0) return withEntry(root, head, value);
  const child = root.entries.get(head);
  const walked = [...prefix, head].join('.');
  if (child === undefined) {
    throw new ConfigError({
      origin: source,
      keyPath: walked,
      problem: `cannot set '${item}': '${walked}' is not in the config`,
      hint: `Only the last key of an --opts path may be new; known keys here: ${[...root.entries.keys()].join(', ') || '(none)'}`,
    });
  }
  if (child.kind !== 'map') {
    throw new ConfigError({
      origin: source,
      keyPath: walked,
      problem: `cannot set '${item}': '${walked}' is a ${child.kind}, not a mapping (list items cannot be addressed)`,
      hint: `Set the whole value instead, e.g. --opts ${walked}=[...]`,
    });
  }
  return withEntry(root, head, setPath(child, rest, value, source, item, [...prefix, head]));
}

/** Parses one `--opts` value the way PaddleSeg does: a Python literal when it is one, else the text. */
export function parseOptValue(text: string): PlainValue {
  const literal = parsePythonLiteral(text);
  return literal === undefined ? text : literal;
}

export function applyOverrides(root: MapNode, overrides: ConfigOverrides): MapNode {
  const flag = (name: string, value: number | boolean): Origin => ({
    file: `command line (--${name} ${value})`,
  });
  if (overrides.learningRate) {
    const source = flag('learning_rate', overrides.learningRate);
    const scheduler = root.entries.get('lr_scheduler');
    if (scheduler?.kind !== 'map') {
      throw new ConfigError({
        origin: source,
        keyPath: 'lr_scheduler',
        problem: '--learning_rate needs an lr_scheduler mapping in the config',
        hint: 'Add an lr_scheduler block (e.g. type: PolynomialDecay) to the config',
      });
    }
    root = setPath(
      root,
      ['lr_scheduler', 'learning_rate'],
      fromPlain(overrides.learningRate, source),
      source,
      'learning_rate',
    );
  }
  if (overrides.batchSize) {
    const source = flag('batch_size', overrides.batchSize);
    root = withEntry(root, 'batch_size', fromPlain(overrides.batchSize, source));
  }
  if (overrides.iters) {
    const source = flag('iters', overrides.iters);
    root = withEntry(root, 'iters', fromPlain(overrides.iters, source));
  }
  if (overrides.toStaticTraining) {
    const source = flag('to_static_training', true);
    root = withEntry(root, 'to_static_training', fromPlain(true, source));
  }
  for (const item of overrides.opts ?? []) {
    const source: Origin = { file: `command line (--opts ${item})` };
    const parts = item.split('=');
    if (parts.length !== 2 || parts[0] === '') {
      throw new ConfigError({
        origin: source,
        keyPath: '',
        expected: 'one key=value pair such as `--opts batch_size=1 test_config.scales=0.75`',
        found: `'${item}'`,
        hint:
          parts.length > 2
            ? 'A value may not contain "=" (PaddleSeg splits on every "=")'
            : 'Write key=value',
      });
    }
    const [key = '', text = ''] = parts;
    const keys = key.split('.');
    if (keys.some((k) => k === '')) {
      throw new ConfigError({
        origin: source,
        keyPath: key,
        expected: 'a dotted key path like model.backbone.pretrained',
        found: `'${key}'`,
      });
    }
    root = setPath(root, keys, fromPlain(parseOptValue(text), source), source, item);
  }
  return root;
}
