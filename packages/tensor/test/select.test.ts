import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { kthSmallest } from '../src/kernels/select.js';
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
