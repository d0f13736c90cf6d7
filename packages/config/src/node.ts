import type { Origin } from './errors.js';

/** A config value with the place it was written, kept through merging so errors can name the file and line. */
export type ConfigNode = MapNode | ListNode | ScalarNode;
export type Scalar = string | number | boolean | null;

export interface MapNode {
  readonly kind: 'map';
  readonly entries: Map<string, ConfigNode>;
  readonly origin: Origin;
}
export interface ListNode {
  readonly kind: 'list';
  readonly items: ConfigNode[];
  readonly origin: Origin;
}
export interface ScalarNode {
  readonly kind: 'scalar';
  readonly value: Scalar;
  readonly origin: Origin;
}

/** Plain data as Python's yaml.load would give it: dicts, lists and scalars. */
export type PlainValue = Scalar | PlainValue[] | PlainMap;
export interface PlainMap {
  [key: string]: PlainValue;
}

export function mapNode(origin: Origin, entries: Map<string, ConfigNode> = new Map()): MapNode {
  return { kind: 'map', entries, origin };
}

export function toPlain(node: ConfigNode): PlainValue {
  switch (node.kind) {
    case 'scalar':
      return node.value;
    case 'list':
      return node.items.map(toPlain);
    case 'map': {
      const out: PlainMap = {};
      for (const [key, value] of node.entries) {
        Object.defineProperty(out, key, {
          value: toPlain(value),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
  }
}

/** Builds a node tree from plain data, every node attributed to one origin (used for command-line values). */
export function fromPlain(value: PlainValue, origin: Origin): ConfigNode {
  if (Array.isArray(value)) return { kind: 'list', items: value.map((v) => fromPlain(v, origin)), origin };
  if (value !== null && typeof value === 'object') {
    const entries = new Map<string, ConfigNode>();
    for (const [k, v] of Object.entries(value)) entries.set(k, fromPlain(v, origin));
    return { kind: 'map', entries, origin };
  }
  return { kind: 'scalar', value, origin };
}

export type PathSegment = string | number;

/** `a.b[2].c` — the form every error message uses. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out ? `.${segment}` : segment;
  }
  return out;
}

/**
 * The origin of the deepest node that exists along `path`: the value's own line when it exists,
 * else the mapping that should have held it.
 */
export function originAt(root: ConfigNode, path: readonly PathSegment[]): Origin {
  let node: ConfigNode = root;
  for (const segment of path) {
    let next: ConfigNode | undefined;
    if (node.kind === 'map' && typeof segment === 'string') next = node.entries.get(segment);
    else if (node.kind === 'list' && typeof segment === 'number') next = node.items[segment];
    if (!next) break;
    node = next;
  }
  return node.origin;
}

/** Python truthiness, used where PaddleSeg tests a value with `if x` / `dic.get(k, True)`. */
export function isTruthy(value: PlainValue | undefined): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}
