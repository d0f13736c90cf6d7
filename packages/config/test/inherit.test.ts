import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { loadRawMerged } from '../src/index.js';
import { mergeNodes } from '../src/inherit.js';
import { fromPlain, type MapNode, type PlainMap, type PlainValue, toPlain } from '../src/node.js';
import { assertConfigError, writeConfigs } from './helpers.js';

/** PaddleSeg's merge_config_dicts, written independently as the oracle for the property tests. */
function referenceMerge(child: PlainMap, base: PlainMap): PlainMap {
  if ('_inherited_' in child && !child._inherited_) {
    const { _inherited_: _, ...rest } = child;
    return rest;
  }
  const out: PlainMap = { ...base };
  for (const [key, value] of Object.entries(child)) {
    const b = base[key];
    const isDict = (v: PlainValue | undefined): v is PlainMap =>
      typeof v === 'object' && v !== null && !Array.isArray(v);
    out[key] = isDict(value) && isDict(b) ? referenceMerge(value, b) : value;
  }
  return out;
}

const key = fc.constantFrom('a', 'b', 'c', 'd', 'type', 'lr');
const scalar = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constantFrom('x', 'y'), fc.boolean());
const { tree } = fc.letrec<{ tree: PlainValue; dict: PlainMap }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(scalar, { maxLength: 3 }),
    tie('dict'),
  ),
  dict: fc.dictionary(key, tie('tree'), { maxKeys: 4, noNullPrototype: true }) as fc.Arbitrary<PlainMap>,
}));
const dict = fc.dictionary(key, tree, { maxKeys: 5, noNullPrototype: true });
const shapeCompatible = (child: PlainMap, base: PlainMap): boolean =>
  Object.entries(child).every(([k, v]) => {
    const b = base[k];
    const childIsDict = typeof v === 'object' && v !== null && !Array.isArray(v);
    const baseIsDict = typeof b === 'object' && b !== null && !Array.isArray(b);
    if (!childIsDict || b === undefined || b === null) return true;
    return baseIsDict && shapeCompatible(v as PlainMap, b as PlainMap);
  });

const node = (value: PlainMap, file: string): MapNode => fromPlain(value, { file }) as MapNode;

describe('merge semantics (property-based against an independent oracle)', () => {
  it('equals merge_config_dicts, values and key order', () => {
    fc.assert(
      fc.property(dict, dict, (child, base) => {
        fc.pre(shapeCompatible(child, base));
        const merged = toPlain(mergeNodes(node(child, 'child.yml'), node(base, 'base.yml'), ''));
        const expected = referenceMerge(child, base);
        assert.deepEqual(merged, expected);
        assert.deepEqual(Object.keys(merged as object), Object.keys(expected));
      }),
      { numRuns: 300 },
    );
  });

  it('the child wins every scalar and list it sets; base-only keys survive', () => {
    fc.assert(
      fc.property(dict, dict, (child, base) => {
        fc.pre(shapeCompatible(child, base));
        const merged = toPlain(mergeNodes(node(child, 'c'), node(base, 'b'), '')) as PlainMap;
        for (const [k, v] of Object.entries(child))
          if (typeof v !== 'object' || v === null || Array.isArray(v)) assert.deepEqual(merged[k], v);
        for (const k of Object.keys(base)) assert.ok(k in merged);
      }),
      { numRuns: 200 },
    );
  });

  it('origins follow the values: a merged value remembers its file', () => {
    const merged = mergeNodes(
      node({ a: 1, n: { x: 1 } }, 'child.yml'),
      node({ b: 2, n: { y: 2 } }, 'base.yml'),
      '',
    );
    assert.equal(merged.entries.get('a')?.origin.file, 'child.yml');
    assert.equal(merged.entries.get('b')?.origin.file, 'base.yml');
    const n = merged.entries.get('n');
    assert.ok(n?.kind === 'map');
    assert.equal(n.entries.get('y')?.origin.file, 'base.yml');
  });
});

describe('_base_ files', () => {
  it('lists replace whole, dicts merge, _inherited_: False at a nested level replaces the base dict', () => {
    const dir = writeConfigs({
      'base.yml':
        'optimizer: {type: SGD, momentum: 0.9, weight_decay: 4.0e-5}\nlist: [1, 2, 3]\nnested: {a: {b: 1, c: 2}}\n',
      'child.yml':
        "_base_: './base.yml'\noptimizer:\n  _inherited_: False\n  type: AdamW\nlist: [9]\nnested: {a: {c: 3}}\n",
    });
    const raw = loadRawMerged(join(dir, 'child.yml'));
    assert.deepEqual(raw.optimizer, { type: 'AdamW' });
    assert.deepEqual(raw.list, [9]);
    assert.deepEqual(raw.nested, { a: { b: 1, c: 3 } });
  });

  it('_inherited_: False at the top level discards the whole base', () => {
    const dir = writeConfigs({
      'base.yml': 'a: 1\nb: 2\n',
      'child.yml': '_base_: base.yml\n_inherited_: False\nc: 3\n',
    });
    assert.deepEqual(loadRawMerged(join(dir, 'child.yml')), { c: 3 });
  });

  it('a list of bases: list order, the earlier base beats the later; relative to the naming file; chains of 3', () => {
    const dir = writeConfigs({
      'common/root.yml': 'x: root\ny: root\nz: root\nw: root\n',
      'common/first.yml': "_base_: './root.yml'\nx: first\ny: first\nv: first\n",
      'common/second.yml': 'x: second\ny: second\nz: second\nv: second\n',
      'models/child.yml': "_base_: ['../common/first.yml', '../common/second.yml']\nx: child\n",
    });
    const raw = loadRawMerged(join(dir, 'models/child.yml'));
    // first.yml arrives already merged onto root.yml, so its z (from root) beats second.yml's z.
    assert.deepEqual(raw, { x: 'child', y: 'first', z: 'root', v: 'first', w: 'root' });
    assert.deepEqual(
      Object.keys(raw),
      ['x', 'y', 'z', 'v', 'w'],
      "the last base's keys first, then the new ones",
    );
  });

  it('a missing base file names both files', () => {
    const dir = writeConfigs({ 'child.yml': 'batch_size: 2\n_base_: ./nope.yml\n' });
    const error = assertConfigError(() => loadRawMerged(join(dir, 'child.yml')), {
      file: 'child.yml',
      key: '_base_',
      line: 2,
      includes: ['nope.yml', 'does not exist'],
    });
    assert.ok(error.message.includes(join(dir, 'nope.yml')));
  });

  it('a base cycle names both files', () => {
    const dir = writeConfigs({ 'a.yml': '_base_: b.yml\n', 'b.yml': '_base_: a.yml\n' });
    assertConfigError(() => loadRawMerged(join(dir, 'a.yml')), {
      file: 'b.yml',
      key: '_base_',
      includes: ['cycle', join(dir, 'a.yml'), join(dir, 'b.yml')],
    });
  });

  it('a self-reference is a cycle', () => {
    const dir = writeConfigs({ 'self.yml': '_base_: self.yml\n' });
    assertConfigError(() => loadRawMerged(join(dir, 'self.yml')), {
      file: 'self.yml',
      key: '_base_',
      includes: ['cycle'],
    });
  });

  it('a mapping over a base list names both files', () => {
    const dir = writeConfigs({
      'base.yml': 'loss: [1, 2]\n',
      'child.yml': '_base_: base.yml\nloss:\n  types: []\n',
    });
    assertConfigError(() => loadRawMerged(join(dir, 'child.yml')), {
      file: 'child.yml',
      key: 'loss',
      includes: ['base.yml', 'list'],
    });
  });

  it('_base_ must be strings', () => {
    const dir = writeConfigs({ 'child.yml': '_base_: [1]\n' });
    assertConfigError(() => loadRawMerged(join(dir, 'child.yml')), {
      file: 'child.yml',
      key: '_base_',
      includes: ['path string'],
    });
  });

  it('the config must exist and be .yml/.yaml', () => {
    const dir = writeConfigs({ 'c.json': '{}' });
    assertConfigError(() => loadRawMerged(join(dir, 'missing.yml')), {
      file: 'missing.yml',
      includes: ['does not exist'],
    });
    assertConfigError(() => loadRawMerged(join(dir, 'c.json')), {
      file: 'c.json',
      includes: ['.yml or .yaml'],
    });
  });
});
