import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { kthSmallest, ohemKeepMask } from '../src/kernels/select.js';
import { rand, testDevice } from '../src/testing/index.js';

describe('k-th smallest (OHEM threshold selection)', () => {
  it('is exact for random, negative, duplicate and special values', async () => {
    const device = await testDevice();
    const values = Float32Array.from(rand(5000, 11, -3, 3));
    values.set([2, 2, 2, 0, -0.5, 1e-30, -1e-30, 0.7, 0.7], 100);
    const sorted = Float32Array.from(values).sort();
    const x = T.tensor(device, values, [values.length]);
    for (const k of [0, 1, 99, 2500, 4998, 4999])
      assert.equal(await kthSmallest(device, x, k), sorted[k], `k=${k}`);
    await assert.rejects(kthSmallest(device, x, 5000), /kthSmallest: k=5000 is outside \[0, 5000\)/);
    x.dispose();
  });

  it('OHEM-style: probabilities with ignored pixels forced to 2.0 sort last', async () => {
    const device = await testDevice();
    const probs = Float32Array.from(rand(1000, 12, 0, 1));
    for (let i = 0; i < 1000; i += 7) probs[i] = 2;
    const sorted = Float32Array.from(probs).sort();
    const x = T.tensor(device, probs, [10, 100]);
    assert.equal(await kthSmallest(device, x, 129), sorted[129]);
    assert.equal(await kthSmallest(device, x, 999), 2);
    x.dispose();
  });
});

describe('OHEM keep mask on the GPU (no readback)', () => {
  /** PaddleSeg's rule on the host: threshold from the sorted p, or every valid pixel. */
  function keepRef(p: Float32Array, minKept: number, thresh: number): number[] {
    const sorted = Float32Array.from(p).sort();
    const beyond = sorted[minKept] ?? 2;
    const threshold = beyond <= 1 ? Math.max(sorted[minKept - 1] ?? 0, thresh) : 1.5;
    return Array.from(p, (v) => (v < threshold ? 1 : 0));
  }
  const cases: Array<[string, number, number, number]> = [
    // name, ignored share, min_kept, thresh
    ['the k-th probability sets the threshold', 0.1, 300, 0.01],
    ['thresh above the k-th probability', 0.1, 30, 0.7],
    ['fewer valid pixels than min_kept: every valid pixel', 0.8, 900, 0.7],
    ['min_kept = 1', 0, 1, 0],
  ];
  for (const [name, ignored, minKept, thresh] of cases)
    it(name, async () => {
      const device = await testDevice();
      const p = Float32Array.from(rand(4000, 31, 0, 1));
      const skip = rand(4000, 32, 0, 1);
      for (let i = 0; i < p.length; i++) if ((skip[i] ?? 1) < ignored) p[i] = 2;
      p.set([0.25, 0.25, 0.25, 0.5, 0.5], 10); // ties at a threshold
      const x = T.tensor(device, p, [4, 1000]);
      const kept = ohemKeepMask(device, x, minKept, thresh);
      assert.deepEqual(kept.shape, [4, 1000]);
      assert.deepEqual(Array.from(await kept.data()), keepRef(p, minKept, thresh));
      x.dispose();
      kept.dispose();
    });
  it('rejects min_kept outside [1, size)', async () => {
    const device = await testDevice();
    const x = T.zeros(device, [10]);
    assert.throws(() => ohemKeepMask(device, x, 10, 0.7), /min_kept 10 must be in \[1, 10\)/);
    x.dispose();
  });
});
