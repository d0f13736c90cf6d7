import assert from 'node:assert/strict';
import { join } from 'node:path';
import { paddlesegConfig } from '@segtrain/tensor/testing';
import { describe, it } from 'vitest';
import { loadConfig, loadRawMerged, parseOptValue } from '../src/index.js';
import { assertConfigError, writeConfigs } from './helpers.js';

describe('--opts values are Python literals, else strings', () => {
  const cases: Array<[string, unknown]> = [
    ['0.75', 0.75],
    ['1e-5', 1e-5], // a Python float, unlike YAML 1.1
    ['160000', 160000],
    ['-3', -3],
    ['0x10', 16],
    ['[1,2]', [1, 2]],
    ['[1024, 512]', [1024, 512]],
    ['(1, 2)', [1, 2]],
    ['(7)', 7],
    ['True', true],
    ['False', false],
    ['None', null],
    ["'a b'", 'a b'],
    ['"x"', 'x'],
    ["{'a': 1, 'b': [True]}", { a: 1, b: [true] }],
    ['abc', 'abc'],
    ['true', 'true'], // Python spells it True
    ['data/cityscapes', 'data/cityscapes'],
    ['1+2', '1+2'],
    ['010', '010'],
    ['', ''],
    ['[1,', '[1,'],
  ];
  for (const [text, expected] of cases)
    it(`${JSON.stringify(text)} -> ${JSON.stringify(expected)}`, () =>
      assert.deepEqual(parseOptValue(text), expected));
});

describe('override flags', () => {
  const seed = () => paddlesegConfig('pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml');

  it('--batch_size, --iters, --learning_rate set their keys', () => {
    const raw = loadRawMerged(seed(), { batchSize: 8, iters: 1000, learningRate: 0.01 });
    assert.equal(raw.batch_size, 8);
    assert.equal(raw.iters, 1000);
    assert.equal((raw.lr_scheduler as { learning_rate: number }).learning_rate, 0.01);
  });

  it('falsy flag values are skipped, as in PaddleSeg', () => {
    const raw = loadRawMerged(seed(), { batchSize: 0, iters: 0, learningRate: 0 });
    assert.equal(raw.batch_size, 4);
    assert.equal(raw.iters, 160000);
  });

  it('--opts is applied last and wins over the flags', () => {
    const raw = loadRawMerged(seed(), { batchSize: 8, opts: ['batch_size=2', 'test_config.scales=0.75'] });
    assert.equal(raw.batch_size, 2);
    assert.deepEqual(raw.test_config, { aug_eval: true, scales: 0.75 });
  });

  it('--opts may add a new last key under an existing path', () => {
    const raw = loadRawMerged(seed(), {
      opts: ['model.backbone.pretrained=None', 'test_config.flip_horizontal=True', 'new_top=1'],
    });
    const model = raw.model as { backbone: { pretrained: unknown } };
    assert.equal(model.backbone.pretrained, null);
    assert.equal((raw.test_config as Record<string, unknown>).flip_horizontal, true);
    assert.equal(raw.new_top, 1);
  });

  it('--opts values reach the typed config, and the lr override feeds the warmup end', () => {
    const c = loadConfig(seed(), {
      learningRate: 0.02,
      opts: ['train_dataset.transforms=[{"type": "Normalize"}]'],
    });
    assert.deepEqual(c.train_dataset.transforms, [{ type: 'Normalize', mean: [0.5], std: [0.5] }]);
    assert.ok(c.lr_scheduler.type === 'LinearWarmup');
    assert.equal(c.lr_scheduler.end_lr, 0.02);
  });

  it('an intermediate key that does not exist is an error naming it', () => {
    assertConfigError(() => loadRawMerged(seed(), { opts: ['model.head.channels=3'] }), {
      file: '--opts model.head.channels=3',
      key: 'model.head',
      includes: ['is not in the config'],
    });
  });

  it('an item without exactly one = is an error quoting it', () => {
    assertConfigError(() => loadRawMerged(seed(), { opts: ['batch_size'] }), {
      file: '--opts batch_size',
      includes: ['key=value', "'batch_size'"],
    });
    assertConfigError(() => loadRawMerged(seed(), { opts: ['a=b=c'] }), {
      file: '--opts a=b=c',
      includes: ['key=value'],
    });
    assertConfigError(() => loadRawMerged(seed(), { opts: ['=3'] }), {
      file: '--opts =3',
      includes: ['key=value'],
    });
  });

  it('list items cannot be addressed', () => {
    assertConfigError(() => loadRawMerged(seed(), { opts: ['loss.types.0=1'] }), {
      file: '--opts loss.types.0=1',
      key: 'loss.types',
      includes: ['is a list'],
    });
  });

  it('--learning_rate without an lr_scheduler is an error', () => {
    const dir = writeConfigs({ 'c.yml': 'batch_size: 1\n' });
    assertConfigError(() => loadRawMerged(join(dir, 'c.yml'), { learningRate: 0.1 }), {
      file: '--learning_rate 0.1',
      key: 'lr_scheduler',
    });
  });

  it('an override that breaks validation names the command line as the source', () => {
    assertConfigError(() => loadConfig(seed(), { opts: ['batch_size=two'] }), {
      file: 'command line (--opts batch_size=two)',
      key: 'batch_size',
      includes: ['expected a number', "found the string 'two'"],
    });
  });
});
