import assert from 'node:assert/strict';
import { describe, test } from 'vitest';
import { DistributedBatchSampler, type DistributedBatchSamplerOptions } from '../src/sampler.js';

function ranks(options: Omit<DistributedBatchSamplerOptions, 'rank'> & { worldSize: number }) {
  return Array.from(
    { length: options.worldSize },
    (_, rank) => new DistributedBatchSampler({ ...options, rank }),
  );
}

describe('DistributedBatchSampler', () => {
  test('Cityscapes train (2975) iterations per epoch match the spec examples', () => {
    const cases: [world: number, bs: number, iters: number][] = [
      [1, 4, 743],
      [4, 4, 186],
      [8, 4, 93],
      [32, 4, 23],
      [24, 2, 62],
    ];
    for (const [worldSize, batchSize, iters] of cases) {
      const samplers = ranks({ size: 2975, batchSize, worldSize, shuffle: true, dropLast: true, seed: 3 });
      const seen = new Set<number>();
      for (const s of samplers) {
        assert.equal(s.length, iters, `${worldSize}×bs${batchSize}`);
        const b = s.batches();
        assert.equal(b.length, iters);
        assert.ok(b.every((x) => x.length === batchSize));
        for (const x of b) for (const i of x) seen.add(i);
      }
      // What drop_last leaves out differs per epoch; most of the data is covered.
      assert.ok(seen.size >= 2975 - worldSize * batchSize);
    }
  });

  test('4×bs4 pads 2975 to 2976 with one repeated head index', () => {
    const samplers = ranks({ size: 2975, batchSize: 4, worldSize: 4, shuffle: false, dropLast: true });
    const all = samplers.flatMap((s) => s.rankIndices());
    assert.equal(all.length, 2976);
    assert.equal(all.filter((i) => i === 0).length, 2);
    assert.equal(new Set(all).size, 2975);
  });

  test('N=10, world 3, bs 2: padding by the head and contiguous per-rank slices', () => {
    const samplers = ranks({ size: 10, batchSize: 2, worldSize: 3, shuffle: false, dropLast: true });
    assert.deepEqual(samplers[0]?.globalIndices(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    assert.deepEqual(
      samplers.map((s) => s.batches()),
      [
        [
          [0, 1],
          [6, 7],
        ],
        [
          [2, 3],
          [8, 9],
        ],
        [
          [4, 5],
          [0, 1],
        ],
      ],
    );
    assert.ok(samplers.every((s) => s.length === 2));
  });

  test('N=10, world 3, bs 3: the tail is split evenly; drop_last drops the incomplete batch', () => {
    // total 12, 12 % 9 = 3 tail indices [9, 0, 1], one per rank.
    const keep = ranks({ size: 10, batchSize: 3, worldSize: 3, shuffle: false, dropLast: false });
    assert.deepEqual(
      keep.map((s) => s.batches()),
      [
        [[0, 1, 2], [9]],
        [[3, 4, 5], [0]],
        [[6, 7, 8], [1]],
      ],
    );
    assert.ok(keep.every((s) => s.length === 2));
    const drop = ranks({ size: 10, batchSize: 3, worldSize: 3, shuffle: false, dropLast: true });
    assert.deepEqual(
      drop.map((s) => s.batches()),
      [[[0, 1, 2]], [[3, 4, 5]], [[6, 7, 8]]],
    );
    assert.ok(drop.every((s) => s.length === 1));
  });

  test('single rank without shuffle is plain batching', () => {
    const keep = new DistributedBatchSampler({ size: 5, batchSize: 2, shuffle: false, dropLast: false });
    assert.deepEqual(keep.batches(), [[0, 1], [2, 3], [4]]);
    assert.equal(keep.length, 3);
    const drop = new DistributedBatchSampler({ size: 5, batchSize: 2, shuffle: false, dropLast: true });
    assert.deepEqual(drop.batches(), [
      [0, 1],
      [2, 3],
    ]);
    assert.equal(drop.length, 2);
  });

  test('shuffle: the same permutation on every rank, new per epoch, reproducible, seed-dependent', () => {
    const opts = { size: 37, batchSize: 2, worldSize: 4, shuffle: true, dropLast: true, seed: 11 };
    const samplers = ranks(opts);
    for (const s of samplers) s.setEpoch(5);
    const perms = samplers.map((s) => s.globalIndices().join());
    assert.ok(perms.every((p) => p === perms[0]));
    const g = samplers[0]?.globalIndices() ?? [];
    assert.deepEqual(
      [...g].sort((a, b) => a - b),
      [...Array.from({ length: 37 }, (_, i) => i), 0, 1, 2].sort((a, b) => a - b),
    );
    assert.notDeepEqual(
      g,
      Array.from({ length: 40 }, (_, i) => i % 37),
    );
    // Ranks hold disjoint positions of the shared permutation.
    const positions = samplers.flatMap((s) => s.rankIndices());
    assert.equal(positions.length, 40);
    assert.deepEqual(
      [...positions].sort((a, b) => a - b),
      [...g].sort((a, b) => a - b),
    );

    const s0 = samplers[0] as DistributedBatchSampler;
    s0.setEpoch(6);
    assert.notDeepEqual(s0.globalIndices(), g);
    s0.setEpoch(5);
    assert.deepEqual(s0.globalIndices(), g);
    assert.equal(s0.epoch, 5);
    const other = new DistributedBatchSampler({ ...opts, seed: 12 });
    other.setEpoch(5);
    assert.notDeepEqual(other.globalIndices(), g);
  });

  test('a rank share smaller than one batch with drop_last is an error (PaddleSeg #3499 hang)', () => {
    assert.throws(
      () =>
        new DistributedBatchSampler({
          size: 10,
          batchSize: 4,
          worldSize: 8,
          rank: 2,
          shuffle: true,
          dropLast: true,
        }),
      (e: unknown) => {
        assert.ok(e instanceof RangeError);
        for (const f of [
          '10 samples',
          'over 8 rank(s)',
          'each rank gets 2',
          'batch_size 4',
          'batch_size ≤ 2',
          'hang',
        ]) {
          assert.ok(e.message.includes(f), `message lacks '${f}': ${e.message}`);
        }
        return true;
      },
    );
    // Without drop_last the short batch is kept.
    const s = new DistributedBatchSampler({
      size: 10,
      batchSize: 4,
      worldSize: 8,
      shuffle: false,
      dropLast: false,
    });
    assert.equal(s.length, 1);
    assert.deepEqual(s.batches(), [[0, 1]]);
  });

  test('fewer samples than ranks pad cyclically', () => {
    const samplers = ranks({ size: 2, batchSize: 1, worldSize: 5, shuffle: false, dropLast: true });
    assert.deepEqual(
      samplers.map((s) => s.batches()),
      [[[0]], [[1]], [[0]], [[1]], [[0]]],
    );
  });

  test('invalid arguments are rejected', () => {
    const base = { size: 4, batchSize: 2, shuffle: false, dropLast: false };
    assert.throws(() => new DistributedBatchSampler({ ...base, size: 0 }), /size must be an integer ≥ 1/);
    assert.throws(() => new DistributedBatchSampler({ ...base, batchSize: 1.5 }), /batchSize/);
    assert.throws(
      () => new DistributedBatchSampler({ ...base, rank: 2, worldSize: 2 }),
      /rank 2 is not below worldSize 2/,
    );
    assert.throws(() => new DistributedBatchSampler(base).setEpoch(-1), /epoch/);
  });
});
