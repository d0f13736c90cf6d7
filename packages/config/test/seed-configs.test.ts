import assert from 'node:assert/strict';
import { paddlesegConfig } from '@segtrain/tensor/testing';
import { describe, it } from 'vitest';
import { loadConfig } from '../src/index.js';

// Section a.8 of the reference: the three seed configs, read unmodified from shared/.
describe('PaddleSeg seed configs resolve to the documented values', () => {
  it('PP-LiteSeg STDC1', () => {
    const c = loadConfig(
      paddlesegConfig('pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml'),
    );
    assert.equal(c.batch_size, 4);
    assert.equal(c.iters, 160000);
    assert.deepEqual(
      c.train_dataset.transforms.map((t) => t.type),
      ['ResizeStepScaling', 'RandomPaddingCrop', 'RandomHorizontalFlip', 'RandomDistort', 'Normalize'],
    );
    const [scaling, crop, , distort] = c.train_dataset.transforms;
    assert.deepEqual(scaling, {
      type: 'ResizeStepScaling',
      min_scale_factor: 0.125,
      max_scale_factor: 1.5,
      scale_step_size: 0.125,
    });
    assert.ok(crop?.type === 'RandomPaddingCrop');
    assert.deepEqual(crop.crop_size, [1024, 512]);
    assert.ok(distort?.type === 'RandomDistort');
    assert.equal(distort.brightness_range, 0.5);
    assert.equal(distort.contrast_range, 0.5);
    assert.equal(distort.saturation_range, 0.5);
    assert.equal(distort.hue_prob, 0.5, 'hue jitter is on by default');
    assert.equal(c.train_dataset.type, 'Cityscapes');
    assert.equal(c.train_dataset.dataset_root, 'data/cityscapes');
    assert.equal(c.train_dataset.mode, 'train');
    assert.deepEqual(
      c.val_dataset?.transforms.map((t) => t.type),
      ['Normalize'],
    );
    assert.equal(c.val_dataset?.mode, 'val');
    assert.ok(c.optimizer.type === 'Momentum');
    assert.equal(c.optimizer.momentum, 0.9);
    assert.equal(c.optimizer.weight_decay, 5.0e-4);
    assert.ok(c.lr_scheduler.type === 'LinearWarmup');
    assert.equal(c.lr_scheduler.warmup_steps, 1000);
    assert.equal(c.lr_scheduler.start_lr, 1.0e-5);
    assert.equal(c.lr_scheduler.end_lr, 0.005);
    const inner = c.lr_scheduler.learning_rate;
    assert.ok(typeof inner === 'object' && inner.type === 'PolynomialDecay');
    assert.deepEqual(
      { lr: inner.learning_rate, power: inner.power, end: inner.end_lr, steps: inner.decay_steps },
      { lr: 0.005, power: 0.9, end: 0, steps: 159000 },
    );
    assert.equal(c.loss.types.length, 3);
    for (const loss of c.loss.types)
      assert.deepEqual(loss, {
        type: 'OhemCrossEntropyLoss',
        min_kept: 130000,
        thresh: 0.7,
        ignore_index: 255,
      });
    assert.deepEqual(c.loss.coef, [1, 1, 1]);
    assert.equal(c.test_config.aug_eval, true);
    assert.equal(c.test_config.scales, 0.5);
    assert.ok(c.model.type === 'PPLiteSeg');
    assert.equal(c.model.num_classes, 19);
    assert.equal(c.model.backbone.type, 'STDC1');
    assert.equal(c.model.backbone.pretrained, 'https://bj.bcebos.com/paddleseg/dygraph/PP_STDCNet1.tar.gz');
    assert.deepEqual(c.model.arm_out_chs, [32, 64, 128]);
    assert.deepEqual(c.model.seg_head_inter_chs, [32, 64, 64]);
    assert.equal(c.source.files.length, 2);
    assert.ok(c.source.notes.some((n) => n.includes('changed to Momentum')));
    assert.ok(c.source.notes.some((n) => n.includes('NUM_CLASSES (19) of Cityscapes')));
  });

  it('OCRNet HRNet_W18', () => {
    const c = loadConfig(paddlesegConfig('ocrnet/ocrnet_hrnetw18_cityscapes_1024x512_160k.yml'));
    assert.equal(c.batch_size, 2);
    assert.equal(c.iters, 160000);
    const [scaling, crop, , distort] = c.train_dataset.transforms;
    assert.deepEqual(scaling, {
      type: 'ResizeStepScaling',
      min_scale_factor: 0.5,
      max_scale_factor: 2.0,
      scale_step_size: 0.25,
    });
    assert.ok(crop?.type === 'RandomPaddingCrop');
    assert.deepEqual(crop.crop_size, [1024, 512]);
    assert.ok(distort?.type === 'RandomDistort');
    assert.equal(distort.brightness_range, 0.4);
    assert.ok(c.optimizer.type === 'Momentum');
    assert.equal(c.optimizer.momentum, 0.9);
    assert.equal(c.optimizer.weight_decay, 4.0e-5);
    assert.ok(c.lr_scheduler.type === 'PolynomialDecay', 'no warmup');
    assert.deepEqual(
      {
        lr: c.lr_scheduler.learning_rate,
        power: c.lr_scheduler.power,
        end: c.lr_scheduler.end_lr,
        steps: c.lr_scheduler.decay_steps,
      },
      { lr: 0.01, power: 0.9, end: 0, steps: 160000 },
    );
    assert.deepEqual(
      c.loss.types.map((t) => t.type),
      ['CrossEntropyLoss', 'CrossEntropyLoss'],
    );
    assert.deepEqual(c.loss.coef, [1, 0.4]);
    for (const t of c.loss.types)
      assert.ok(t.type === 'CrossEntropyLoss' && t.ignore_index === 255 && t.avg_non_ignore);
    assert.ok(c.model.type === 'OCRNet');
    assert.equal(c.model.num_classes, 19);
    assert.equal(c.model.backbone.type, 'HRNet_W18');
    assert.equal(
      c.model.backbone.pretrained,
      'https://bj.bcebos.com/paddleseg/dygraph/hrnet_w18_ssld.tar.gz',
    );
    assert.deepEqual(c.model.backbone_indices, [0]);
    assert.equal(c.test_config.aug_eval, false);
    assert.equal(c.test_config.is_slide, false);
  });

  it('SegFormer-B0', () => {
    const c = loadConfig(paddlesegConfig('segformer/segformer_b0_cityscapes_1024x1024_160k.yml'));
    assert.equal(c.batch_size, 2);
    assert.equal(c.iters, 160000);
    assert.equal(c.source.files.length, 3, 'chain through two _base_ files');
    const [scaling, crop, , distort] = c.train_dataset.transforms;
    assert.deepEqual(scaling, {
      type: 'ResizeStepScaling',
      min_scale_factor: 0.5,
      max_scale_factor: 2.0,
      scale_step_size: 0.25,
    });
    assert.ok(crop?.type === 'RandomPaddingCrop');
    assert.deepEqual(crop.crop_size, [1024, 1024]);
    assert.ok(distort?.type === 'RandomDistort');
    assert.equal(distort.saturation_range, 0.4);
    assert.ok(c.optimizer.type === 'AdamW', '_inherited_: False discards the base SGD');
    assert.deepEqual(
      { b1: c.optimizer.beta1, b2: c.optimizer.beta2, wd: c.optimizer.weight_decay },
      { b1: 0.9, b2: 0.999, wd: 0.01 },
    );
    assert.equal('momentum' in c.optimizer, false);
    assert.ok(c.lr_scheduler.type === 'PolynomialDecay');
    assert.deepEqual(
      {
        lr: c.lr_scheduler.learning_rate,
        power: c.lr_scheduler.power,
        end: c.lr_scheduler.end_lr,
        steps: c.lr_scheduler.decay_steps,
      },
      { lr: 0.00006, power: 1, end: 0, steps: 160000 },
    );
    assert.deepEqual(
      c.loss.types.map((t) => t.type),
      ['CrossEntropyLoss'],
    );
    assert.deepEqual(c.loss.coef, [1]);
    assert.ok(c.model.type === 'SegFormer');
    assert.equal(c.model.backbone.type, 'MixVisionTransformer_B0');
    assert.equal(c.model.embedding_dim, 256);
    assert.equal(c.model.num_classes, 19);
    assert.deepEqual(
      { slide: c.test_config.is_slide, crop: c.test_config.crop_size, stride: c.test_config.stride },
      { slide: true, crop: [1024, 1024], stride: [768, 768] },
    );
    assert.equal(
      c.source.notes.some((n) => n.includes('Momentum')),
      false,
    );
  });
});
