import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { loadRawMerged, resolvePlainScalar } from '../src/index.js';
import { assertConfigError, writeConfigs } from './helpers.js';

describe('YAML 1.1 scalars as PyYAML resolves them', () => {
  const cases: Array<[string, unknown]> = [
    ['True', true],
    ['False', false],
    ['true', true],
    ['yes', true],
    ['Off', false],
    ['y', 'y'], // PyYAML has no single-letter booleans
    ['Null', null],
    ['null', null],
    ['~', null],
    ['', null],
    ['4.0e-5', 4e-5],
    ['4.0e-05', 4e-5],
    ['5.0e-4', 5e-4],
    ['6.0e-11', 6e-11],
    ['0.00006', 0.00006],
    ['1e-5', '1e-5'], // no dot: a string in YAML 1.1
    ['1.0e5', '1.0e5'], // unsigned exponent: a string in YAML 1.1
    ['1.5', 1.5],
    ['.5', 0.5],
    ['-2.', -2],
    ['.inf', Number.POSITIVE_INFINITY],
    ['-.inf', Number.NEGATIVE_INFINITY],
    ['160000', 160000],
    ['1_000', 1000],
    ['0x1F', 31],
    ['017', 15],
    ['0b101', 5],
    ['-12', -12],
    ['1:30', 90],
    ['data/cityscapes', 'data/cityscapes'],
  ];
  for (const [text, expected] of cases) {
    it(`'${text}' -> ${String(expected)}`, () => assert.deepEqual(resolvePlainScalar(text), expected));
  }
  it('.nan is NaN', () => assert.ok(Number.isNaN(resolvePlainScalar('.nan'))));
});

describe('YAML documents', () => {
  it('anchors, aliases, merge keys, repeated keys (last wins) and multi-line flow lists', () => {
    const dir = writeConfigs({
      'a.yml': [
        '',
        'anchors:',
        '  mean: &mean [0.485, 0.456,',
        '    0.406]',
        '  base: &base {type: CrossEntropyLoss, ignore_index: 255}',
        'norm:',
        '  mean: *mean',
        '  std: *mean',
        'loss:',
        '  types:',
        '    - <<: *base',
        '      ignore_index: 0',
        '  coef: [1]',
        '  coef: [0.5]',
        "quoted: 'True'",
        'dq: "1.0e-5"',
        'tagged: !!float 1',
        'flags: [True, False, Null]',
      ].join('\n'),
    });
    const raw = loadRawMerged(join(dir, 'a.yml'));
    assert.deepEqual(raw.norm, { mean: [0.485, 0.456, 0.406], std: [0.485, 0.456, 0.406] });
    assert.deepEqual(raw.loss, { types: [{ ignore_index: 0, type: 'CrossEntropyLoss' }], coef: [0.5] });
    assert.deepEqual(
      Object.keys(raw.loss as object),
      ['types', 'coef'],
      'a repeated key keeps its first position',
    );
    assert.equal(raw.quoted, 'True');
    assert.equal(raw.dq, '1.0e-5');
    assert.equal(raw.tagged, 1);
    assert.deepEqual(raw.flags, [true, false, null]);
  });

  it('an empty file is an empty mapping', () => {
    const dir = writeConfigs({ 'e.yml': '\n# nothing\n' });
    assert.deepEqual(loadRawMerged(join(dir, 'e.yml')), {});
  });

  it('bad YAML names the file and line', () => {
    const dir = writeConfigs({ 'bad.yml': 'batch_size: 2\nmodel:\n  type: [unclosed\n' });
    assertConfigError(() => loadRawMerged(join(dir, 'bad.yml')), {
      file: 'bad.yml',
      includes: ['invalid YAML'],
    });
  });

  it('a top-level list is rejected with the file named', () => {
    const dir = writeConfigs({ 'list.yml': '- a\n- b\n' });
    assertConfigError(() => loadRawMerged(join(dir, 'list.yml')), {
      file: 'list.yml',
      includes: ['expected a mapping of config keys'],
    });
  });

  it('an unknown alias names the file', () => {
    const dir = writeConfigs({ 'alias.yml': 'a: *nope\n' });
    assertConfigError(() => loadRawMerged(join(dir, 'alias.yml')), { file: 'alias.yml' });
  });
});
