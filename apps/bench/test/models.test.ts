import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { gemmGflop, inputShape, NUM_CLASSES, randomLabels, SEED_MODELS } from '../src/models.js';
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
});
