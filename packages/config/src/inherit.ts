import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, type Origin } from './errors.js';
import { type ConfigNode, isTruthy, type MapNode, toPlain } from './node.js';
import { decodeConfigBytes } from './utf8.js';
import { parseYaml11 } from './yaml11.js';

/**
 * PaddleSeg's `merge_config_dicts(child, base)`: a child mapping with a falsy `_inherited_` replaces the
 * base outright; otherwise child keys win, nested mappings merge recursively and everything else
 * (lists included) replaces wholesale. Key order: the base's keys, then the child's new ones.
 */
export function mergeNodes(child: MapNode, base: MapNode, keyPath: string): MapNode {
  const inherited = child.entries.get('_inherited_');
  if (inherited && !isTruthy(toPlain(inherited))) {
    const entries = new Map(child.entries);
    entries.delete('_inherited_');
    return { kind: 'map', entries, origin: child.origin };
  }
  const entries = new Map(base.entries);
  for (const [key, value] of child.entries) {
    const baseValue = base.entries.get(key);
    const path = keyPath ? `${keyPath}.${key}` : key;
    if (value.kind === 'map' && baseValue !== undefined && baseValue.kind === 'map') {
      entries.set(key, mergeNodes(value, baseValue, path));
    } else if (
      value.kind === 'map' &&
      baseValue !== undefined &&
      !(baseValue.kind === 'scalar' && baseValue.value === null)
    ) {
      // PaddleSeg crashes here (it calls .copy() on a non-dict); we say which files disagree.
      throw new ConfigError({
        origin: value.origin,
        keyPath: path,
        problem: `is a mapping here but a ${baseValue.kind} in the base config ${baseValue.origin.file}`,
        hint: 'Make both the same kind, or add `_inherited_: False` under the key to replace the base value',
      });
    } else {
      entries.set(key, value);
    }
  }
  return { kind: 'map', entries, origin: child.origin };
}

/** Removes `_inherited_` markers left where there was nothing to inherit from. */
function stripInheritedMarkers(node: ConfigNode): ConfigNode {
  if (node.kind === 'list') return { ...node, items: node.items.map(stripInheritedMarkers) };
  if (node.kind === 'scalar') return node;
  const entries = new Map<string, ConfigNode>();
  for (const [key, value] of node.entries)
    if (key !== '_inherited_') entries.set(key, stripInheritedMarkers(value));
  return { kind: 'map', entries, origin: node.origin };
}

function readConfigFile(file: string, namedBy: Origin | undefined): string {
  if (!existsSync(file) || !statSync(file).isFile()) {
    const problem = existsSync(file) ? 'is a directory, not a config file' : 'does not exist';
    if (namedBy) {
      throw new ConfigError({
        origin: namedBy,
        keyPath: '_base_',
        problem: `base config file ${file} ${problem}`,
        hint: 'A `_base_` path is relative to the directory of the file that names it',
      });
    }
    throw new ConfigError({
      origin: { file },
      keyPath: '',
      problem: `config file ${problem}`,
      hint: 'Check the path passed to --config',
    });
  }
  return decodeConfigBytes(readFileSync(file), file);
}

function baseList(node: ConfigNode, file: string): Array<{ path: string; origin: Origin }> {
  const items = node.kind === 'list' ? node.items : [node];
  return items.map((item) => {
    if (item.kind !== 'scalar' || typeof item.value !== 'string' || item.value === '') {
      throw new ConfigError({
        origin: item.origin,
        keyPath: '_base_',
        expected: 'a path string or a list of path strings',
        found: item.kind === 'scalar' ? String(item.value) : `a ${item.kind}`,
      });
    }
    return { path: resolve(dirname(file), item.value), origin: item.origin };
  });
}

function loadChain(
  file: string,
  stack: readonly string[],
  namedBy: Origin | undefined,
  files: string[],
): MapNode {
  const text = readConfigFile(file, namedBy);
  files.push(file);
  let current = parseYaml11(text, file);
  const baseNode = current.entries.get('_base_');
  if (!baseNode) return current;
  const entries = new Map(current.entries);
  entries.delete('_base_');
  current = { kind: 'map', entries, origin: current.origin };
  for (const base of baseList(baseNode, file)) {
    if (base.path === file || stack.includes(base.path)) {
      throw new ConfigError({
        origin: base.origin,
        keyPath: '_base_',
        problem: `inheritance cycle: ${file} names ${base.path}, which is already being loaded (chain: ${[...stack, file, base.path].join(' -> ')})`,
        hint: 'Remove one of the `_base_` entries that close the loop',
      });
    }
    const baseConfig = loadChain(base.path, [...stack, file], base.origin, files);
    // The running result merges onto each base in turn: the child beats every base, an earlier base a later one.
    current = mergeNodes(current, baseConfig, '');
  }
  return current;
}

export interface LoadedTree {
  /** The merged config with every value's origin. */
  readonly root: MapNode;
  /** Every file read, the named file first. */
  readonly files: readonly string[];
}

/** Reads a config file and its `_base_` chain and merges them as PaddleSeg does. */
export function loadMergedTree(path: string): LoadedTree {
  const file = resolve(path);
  if (!/\.ya?ml$/.test(file)) {
    throw new ConfigError({
      origin: { file },
      keyPath: '',
      problem: 'a config file must end in .yml or .yaml',
    });
  }
  const files: string[] = [];
  const root = stripInheritedMarkers(loadChain(file, [], undefined, files)) as MapNode;
  return { root, files };
}
