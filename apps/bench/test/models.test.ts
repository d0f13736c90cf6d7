import assert from 'node:assert/strict';
import { testDevice } from '@segtrain/tensor/testing';
import { describe, it } from 'vitest';
import {
  gemmGflop,
  inputShape,
  NUM_CLASSES,
  randomLabels,
  runModelBench,
  SEED_MODELS,
  selectModels,
} from '../src/models.js';
import { toMarkdown } from '../src/report.js';
import type { Row } from '../src/timing.js';

describe('model benchmark', () => {
  it('benchmarks the three seed model blocks at 2x3x256x512 (quick: 1x3x64x128)', () => {
    assert.deepEqual(
      SEED_MODELS.map((m) => [
        m.config.type,
        (m.config.backbone as { type: string }).type,
        m.config.num_classes,
      ]),
      [
        ['PPLiteSeg', 'STDC1', 19],
        ['OCRNet', 'HRNet_W18', 19],
        ['SegFormer', 'MixVisionTransformer_B0', 19],
      ],
    );
    assert.deepEqual(inputShape(false), [2, 3, 256, 512]);
    assert.deepEqual(inputShape(true), [1, 3, 64, 128]);
    assert.ok(Math.abs(gemmGflop(1024) - 2.147483648) < 1e-12);
  });

  it('random labels are deterministic and cover [0, classes)', () => {
    const a = randomLabels(10_000, NUM_CLASSES, 8);
    assert.deepEqual(a, randomLabels(10_000, NUM_CLASSES, 8));
    assert.ok(a.every((v) => v >= 0 && v < NUM_CLASSES));
    assert.equal(new Set(a).size, NUM_CLASSES);
  });

  it('the models table shows params, ms/step, img/s and the same-run GEMM rate', () => {
    const rows: Row[] = [
      {
        name: 'PP-LiteSeg-T (STDC1)',
        gflop: 0,
        images: 2,
        oursMs: 500,
        theirsMs: null,
        params: 8_141_600,
        gemmGflops: 7.5,
      },
    ];
    const md = toMarkdown({ title: 't', date: 'd', machine: {}, rows, notes: ['n'], table: 'models' });
    assert.match(md, /\| model \| trainable params \| ms \/ step \| img\/s \| GEMM 1024³ \(same run\) \|/);
    assert.match(md, /\| PP-LiteSeg-T \(STDC1\) \| 8,141,600 \| 500\.0 \| 4\.00 \| 7\.50 GFLOP\/s \|/);
    assert.doesNotMatch(md, /tfjs/);
  });

  it('--models picks seed models by name; --profile lists the kernels with the most GPU time', async () => {
    assert.deepEqual(
      selectModels(['liteseg', 'SEGFORMER']).map((m) => m.name),
      ['PP-LiteSeg-T (STDC1)', 'SegFormer-B0'],
    );
    assert.throws(
      () => selectModels(['unet']),
      /--models unet matches none of: PP-LiteSeg-T \(STDC1\), OCRNet/,
    );
    const device = await testDevice();
    if (!device.features.has('timestamp-query')) return;
    const [row] = await runModelBench(
      device,
      { reps: 1, quick: false, input: [1, 3, 32, 64], models: selectModels(['liteseg']), profile: true },
      () => undefined,
    );
    const top = row?.topKernels ?? [];
    assert.equal(top.length, 10);
    for (let i = 1; i < top.length; i++)
      assert.ok((top[i - 1]?.ms ?? 0) >= (top[i]?.ms ?? 0), 'slowest first');
    assert.ok(top.every((k) => k.dispatches > 0 && k.kernel.length > 0));
    const md = toMarkdown({
      title: 't',
      date: 'd',
      machine: {},
      rows: row ? [row] : [],
      notes: [],
      table: 'models',
    });
    assert.match(md, /kernels with the most GPU time in one step/);
  }, 120_000);
});
