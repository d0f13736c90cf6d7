import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '@segtrain/config';
import { repoRoot, testDevice } from '@segtrain/tensor/testing';
import { describe, it } from 'vitest';
import { compareMarkdown, compareReports, type Json, reportRows } from '../src/compare.js';
import { benchTrainStep, trainBenchMarkdown, trainBenchSvg } from '../src/train-bench.js';

describe('segtrain-bench compare', () => {
  it('matches rows by name, node count or link/ranks/size, and divides B by A', () => {
    const a = {
      rows: [
        { name: 'gemm', oursMs: 10, gflop: 2 },
        { name: 'only-a', oursMs: 1, gflop: 0 },
      ],
    };
    const b: Json = { rows: [{ name: 'gemm', oursMs: 5, gflop: 2 }] };
    const values = compareReports(a, b);
    assert.deepEqual(values, [{ row: 'gemm', field: 'oursMs', a: 10, b: 5, ratio: 0.5 }]);
    const scaling = { result: { measured: [{ nodes: 4, stepMs: 300, ratio: 3.5 }] } };
    assert.deepEqual([...reportRows(scaling).keys()], ['4 node(s)']);
    const allreduce = { rows: [{ link: '1gbit', ranks: 2, bytes: 4096, oursMs: 0.2 }] };
    assert.deepEqual([...reportRows(allreduce).keys()], ['link 1gbit, ranks 2, bytes 4096']);
    const md = compareMarkdown('a.json', 'b.json', values);
    assert.match(md, /\| gemm \| oursMs \| 10\.00 \| 5\.000 \| 0\.500× \|/);
    assert.match(compareMarkdown('a', 'b', []), /same suite/);
    // Several runs per side: each side's values are averaged before dividing.
    const a2: Json = { rows: [{ name: 'gemm', oursMs: 20, gflop: 2 }] };
    const b2: Json = { rows: [{ name: 'gemm', oursMs: 7, gflop: 2 }] };
    assert.deepEqual(compareReports([a, a2], [b, b2]), [
      { row: 'gemm', field: 'oursMs', a: 15, b: 6, ratio: 0.4 },
    ]);
    assert.match(
      compareMarkdown('a1.json,a2.json', 'b.json', []),
      /- A: `a1\.json`, `a2\.json` \(mean of 2 runs\)/,
    );
  });
});

describe('segtrain-bench train', () => {
  it('times the real step of a config and splits it into phases', async () => {
    const device = await testDevice();
    const config = loadConfig(
      join(repoRoot, 'configs/pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml'),
    );
    const row = await benchTrainStep(device, 'pp_liteseg', config, [1, 3, 32, 64], 1);
    assert.equal(row.params, 8141600);
    for (const v of [
      row.dataMs,
      row.forwardMs,
      row.backwardMs,
      row.optimizerMs,
      row.gpuPoolBytes,
      row.rssBytes,
    ])
      assert.ok(v > 0, `${v}`);
    assert.ok(Math.abs(row.stepMs - (row.dataMs + row.forwardMs + row.backwardMs + row.optimizerMs)) < 1e-9);
    assert.ok(Math.abs(row.imagesPerSecond - 1000 / row.stepMs) < 1e-9);
    const md = trainBenchMarkdown([row], { adapter: 'x' }, 'now', 1);
    assert.match(md, /\| pp_liteseg \| 1×3×32×64 \| 8,141,600 \|/);
    assert.match(trainBenchSvg([row]), /<rect x="230"/);
  }, 120_000);
});
