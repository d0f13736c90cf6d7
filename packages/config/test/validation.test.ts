import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { COMPONENT_TYPES, loadConfig } from '../src/index.js';
import { assertConfigError, writeConfigs } from './helpers.js';

const GENERIC = `batch_size: 2
iters: 100
train_dataset:
  type: Dataset
  dataset_root: data/toy
  train_path: data/toy/train.txt
  num_classes: 4
  mode: train
  transforms:
    - type: RandomPaddingCrop
      crop_size: [64, 32]
    - type: Normalize
val_dataset:
  type: Dataset
  dataset_root: data/toy
  val_path: data/toy/val.txt
  num_classes: 4
  mode: val
optimizer:
  type: sgd
  momentum: 0.9
  weight_decay: 4.0e-5
lr_scheduler:
  type: PolynomialDecay
  learning_rate: 0.01
  end_lr: 0
  power: 0.9
loss:
  types:
    - type: CrossEntropyLoss
  coef: [1, 0.4]
model:
  type: OCRNet
  backbone:
    type: HRNet_W18
  backbone_indices: [0]
`;

/** Writes GENERIC with `replace` applied (pairs of [old, new]) plus extra lines, and returns its path. */
function variant(replacements: Array<[string, string]> = [], extra = ''): string {
  let text = GENERIC;
  for (const [from, to] of replacements) {
    assert.ok(text.includes(from), `fixture does not contain ${from}`);
    text = text.replace(from, to);
  }
  return join(writeConfigs({ 'cfg.yml': text + extra }), 'cfg.yml');
}

describe('validation rules (section a.5) and builder normalisation', () => {
  it('a valid generic Dataset config resolves with its notes', () => {
    const c = loadConfig(variant());
    assert.ok(c.model.type === 'OCRNet');
    assert.equal(c.model.num_classes, 4, 'DefaultSyncNumClassesRule copies num_classes into the model');
    assert.equal(
      c.model.backbone.in_channels,
      3,
      'DefaultSyncImgChannelsRule copies img_channels into the backbone',
    );
    assert.equal(c.loss.types.length, 2, 'DefaultLossRule repeats a single loss to match coef');
    for (const loss of c.loss.types) assert.ok(loss.type === 'CrossEntropyLoss' && loss.ignore_index === 255);
    assert.equal(
      c.optimizer.type,
      'Momentum',
      "'sgd' aliases to SGD, and SGD with momentum becomes Momentum",
    );
    assert.ok(c.lr_scheduler.type === 'PolynomialDecay');
    assert.equal(c.lr_scheduler.decay_steps, 100, 'decay_steps defaults to iters');
    assert.deepEqual(
      c.source.notes.map((n) => n.split(';')[0]),
      [
        'num_classes is not set in model',
        'loss.types has one loss and coef has 2 values: the loss is repeated 2 times.',
        'If the type is SGD and momentum in optimizer config, the type is changed to Momentum.',
      ],
    );
  });

  it('warmup wraps the scheduler in LinearWarmup and shortens the polynomial horizon', () => {
    const c = loadConfig(
      variant([['  power: 0.9\n', '  power: 0.9\n  warmup_iters: 10\n  warmup_start_lr: 1.0e-5\n']]),
    );
    assert.ok(c.lr_scheduler.type === 'LinearWarmup');
    assert.equal(c.lr_scheduler.warmup_steps, 10);
    assert.equal(c.lr_scheduler.end_lr, 0.01);
    const inner = c.lr_scheduler.learning_rate;
    assert.ok(typeof inner === 'object' && inner.type === 'PolynomialDecay' && inner.decay_steps === 90);
  });

  it('ignore_index: the dataset value fills the losses (and MixedLoss sub-losses)', () => {
    const c = loadConfig(
      variant(
        [
          ['  num_classes: 4\n  mode: train\n', '  num_classes: 4\n  mode: train\n  ignore_index: 0\n'],
          ['  num_classes: 4\n  mode: val\n', '  num_classes: 4\n  mode: val\n  ignore_index: 0\n'],
          [
            '    - type: CrossEntropyLoss\n  coef: [1, 0.4]',
            '    - type: MixedLoss\n      losses: [{type: CrossEntropyLoss}, {type: DiceLoss}]\n      coef: [0.8, 0.2]\n  coef: [1]',
          ],
        ],
        '',
      ),
    );
    const [mixed] = c.loss.types;
    assert.ok(mixed?.type === 'MixedLoss');
    assert.deepEqual(
      mixed.losses.map((l) => l.ignore_index),
      [0, 0],
    );
  });

  it('knows every component slot', () => {
    assert.deepEqual(Object.keys(COMPONENT_TYPES), [
      'model',
      'backbone',
      'dataset',
      'transform',
      'loss',
      'optimizer',
      'lr_scheduler',
    ]);
    assert.ok(COMPONENT_TYPES.loss?.includes('OhemCrossEntropyLoss'));
  });
});

describe('malformed configs name the file, the key, what was expected and what was found', () => {
  const cases: Array<{ name: string; file: () => string; key: string; includes: string[]; line?: number }> = [
    {
      name: 'missing required key',
      file: () => variant([['iters: 100\n', '']]),
      key: 'iters',
      includes: ["required top-level key 'iters' is missing"],
    },
    {
      name: 'batch_size of the wrong type',
      file: () => variant([['batch_size: 2', 'batch_size: two']]),
      key: 'batch_size',
      line: 1,
      includes: ['expected a number', "found the string 'two'"],
    },
    {
      name: 'batch_size zero',
      file: () => variant([['batch_size: 2', 'batch_size: 0']]),
      key: 'batch_size',
      includes: ['expected a value >= 1', 'found number 0'],
    },
    {
      name: 'iters a float',
      file: () => variant([['iters: 100', 'iters: 10.5']]),
      key: 'iters',
      includes: ['expected an integer', 'found number 10.5'],
    },
    {
      name: 'a YAML 1.1 string where a number belongs',
      file: () => variant([['learning_rate: 0.01', 'learning_rate: 1e-2']]),
      key: 'lr_scheduler.learning_rate',
      includes: ["found the string '1e-2'", 'write a float with a dot'],
    },
    {
      name: 'unknown model type',
      file: () => variant([['type: OCRNet', 'type: OCRNett']]),
      key: 'model.type',
      includes: ['unknown model type "OCRNett"', 'PPLiteSeg', 'SegFormer'],
    },
    {
      name: 'a backbone named as the model',
      file: () => variant([['type: OCRNet', 'type: HRNet_W18']]),
      key: 'model.type',
      includes: ['HRNet_W18 is a backbone type, not a model type'],
    },
    {
      name: 'unknown transform type',
      file: () => variant([['- type: Normalize\nval_dataset', '- type: Normalise\nval_dataset']]),
      key: 'train_dataset.transforms[1].type',
      line: 12,
      includes: ['unknown transform type "Normalise"', 'Normalize'],
    },
    {
      name: 'unknown key on a known transform',
      file: () => variant([['crop_size: [64, 32]', 'crop_size: [64, 32]\n      crop_sise: 3']]),
      key: 'train_dataset.transforms[0].crop_sise',
      line: 12,
      includes: ["unknown key 'crop_sise' for RandomPaddingCrop"],
    },
    {
      name: 'crop_size of the wrong length',
      file: () => variant([['crop_size: [64, 32]', 'crop_size: [64]']]),
      key: 'train_dataset.transforms[0].crop_size',
      includes: ['found a list [64]'],
    },
    {
      name: 'component without type',
      file: () => variant([['    - type: CrossEntropyLoss\n', '    - weight: null\n']]),
      key: 'loss.types[0]',
      includes: ["this loss has no 'type'", 'CrossEntropyLoss'],
    },
    {
      name: 'unknown optimizer',
      file: () => variant([['type: sgd', 'type: Lion']]),
      key: 'optimizer.type',
      includes: ['unknown optimizer type "Lion"', 'AdamW'],
    },
    {
      name: 'unknown lr scheduler',
      file: () => variant([['type: PolynomialDecay', 'type: OneCycle']]),
      key: 'lr_scheduler.type',
      includes: ['unknown lr_scheduler type "OneCycle"', 'CosineAnnealingDecay'],
    },
    {
      name: 'warmup_iters without warmup_start_lr',
      file: () => variant([['  power: 0.9\n', '  power: 0.9\n  warmup_iters: 10\n']]),
      key: 'lr_scheduler.warmup_iters',
      includes: ['must be set together'],
    },
    {
      name: 'loss types and coef lengths disagree',
      file: () =>
        variant([
          [
            '    - type: CrossEntropyLoss\n',
            '    - type: CrossEntropyLoss\n    - type: DiceLoss\n    - type: DiceLoss\n',
          ],
        ]),
      key: 'loss.coef',
      includes: ['types has 3 losses but coef has 2 values'],
    },
    {
      name: 'loss without coef',
      file: () => variant([['  coef: [1, 0.4]\n', '']]),
      key: 'loss',
      includes: ["needs 'coef'"],
    },
    {
      name: 'num_classes inconsistent',
      file: () => variant([['  num_classes: 4\n  mode: val', '  num_classes: 5\n  mode: val']]),
      key: 'train_dataset.num_classes',
      includes: ['num_classes is not consistent', 'val_dataset.num_classes=5'],
    },
    {
      name: 'val dataset of another type',
      file: () =>
        variant([
          [
            '  type: Dataset\n  dataset_root: data/toy\n  val_path',
            '  type: Cityscapes\n  dataset_root: data/toy\n  val_path',
          ],
        ]),
      key: 'val_dataset.type',
      includes: ["expected 'Dataset'"],
    },
    {
      name: 'img_channels vs in_channels',
      file: () => variant([['    type: HRNet_W18\n', '    type: HRNet_W18\n    in_channels: 1\n']]),
      key: 'model.backbone.in_channels',
      includes: ['image channels are not consistent'],
    },
    {
      name: 'loss ignore_index disagrees with the dataset',
      file: () =>
        variant([
          ['    - type: CrossEntropyLoss\n', '    - type: CrossEntropyLoss\n      ignore_index: 0\n'],
        ]),
      key: 'loss.types[0].ignore_index',
      includes: ["differs from the dataset's (255"],
    },
    {
      name: 'Dataset without its list file',
      file: () => variant([['  train_path: data/toy/train.txt\n', '']]),
      key: 'train_dataset.train_path',
      includes: ["a Dataset in mode 'train' needs train_path"],
    },
    {
      name: 'enum value',
      file: () => variant([['  mode: val\n', '  mode: validation\n']]),
      key: 'val_dataset.mode',
      includes: ['one of "train", "val", "test"', "found the string 'validation'"],
    },
    {
      name: 'unknown test_config key',
      file: () => variant([], 'test_config:\n  is_slid: True\n'),
      key: 'test_config.is_slid',
      includes: ["unknown key 'is_slid'"],
    },
    {
      name: 'slide without crop_size',
      file: () => variant([], 'test_config:\n  is_slide: True\n  stride: [32, 32]\n'),
      key: 'test_config.crop_size',
      includes: ['is_slide needs crop_size and stride'],
    },
    {
      name: 'a block that is not a mapping',
      file: () =>
        variant([
          ['optimizer:\n  type: sgd\n  momentum: 0.9\n  weight_decay: 4.0e-5\n', 'optimizer: [sgd]\n'],
        ]),
      key: 'optimizer',
      includes: ['expected a mapping', 'found a list'],
    },
    {
      name: 'scale factors reversed',
      file: () =>
        variant([
          [
            '    - type: RandomPaddingCrop\n      crop_size: [64, 32]\n',
            '    - type: ResizeStepScaling\n      min_scale_factor: 2.0\n      max_scale_factor: 0.5\n',
          ],
        ]),
      key: 'train_dataset.transforms[0].min_scale_factor',
      includes: ['must not be greater than max_scale_factor'],
    },
  ];
  it(`covers at least 15 malformed inputs (${cases.length})`, () => assert.ok(cases.length >= 15));
  for (const c of cases) {
    it(c.name, () => {
      const file = c.file();
      assertConfigError(() => loadConfig(file), {
        file,
        key: c.key,
        includes: c.includes,
        ...(c.line === undefined ? {} : { line: c.line }),
      });
    });
  }

  it('a model num_classes that contradicts Cityscapes', () => {
    const dir = writeConfigs({
      'base.yml':
        'batch_size: 2\niters: 10\ntrain_dataset: {type: Cityscapes, dataset_root: d}\noptimizer: {type: SGD}\nlr_scheduler: {type: PolynomialDecay, learning_rate: 0.1}\nloss: {types: [{type: CrossEntropyLoss}], coef: [1]}\n',
      'child.yml':
        '_base_: base.yml\nmodel:\n  type: SegFormer\n  num_classes: 20\n  embedding_dim: 256\n  backbone: {type: MixVisionTransformer_B0}\n',
    });
    assertConfigError(() => loadConfig(join(dir, 'child.yml')), {
      file: 'child.yml',
      key: 'model.num_classes',
      line: 4,
      includes: ['expected 19', 'found number 20'],
    });
  });

  it('an error in a base file names the base file, not the child', () => {
    const dir = writeConfigs({
      '_base_/data.yml':
        'train_dataset:\n  type: Cityscapes\n  dataset_root: d\n  transforms:\n    - type: RandomHorizontalFlip\n      prob: 2\n',
      'child.yml':
        "_base_: '_base_/data.yml'\nbatch_size: 2\niters: 10\noptimizer: {type: SGD}\nlr_scheduler: {type: PolynomialDecay, learning_rate: 0.1}\nloss: {types: [{type: CrossEntropyLoss}], coef: [1]}\nmodel: {type: SegFormer, embedding_dim: 8, backbone: {type: MixVisionTransformer_B0}}\n",
    });
    assertConfigError(() => loadConfig(join(dir, 'child.yml')), {
      file: join(dir, '_base_/data.yml'),
      key: 'train_dataset.transforms[0].prob',
      line: 6,
      includes: ['expected a value <= 1', 'found number 2'],
    });
  });
});
