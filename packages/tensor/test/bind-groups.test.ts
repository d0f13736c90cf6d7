import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { testDevice } from '../src/testing/index.js';

describe('bind group cache', () => {
  it('reuses the bind group of the same kernel and buffers, and forgets destroyed buffers', async () => {
    const device = await testDevice();
    const run = async (values: number[]) => {
      const a = T.tensor(device, values, [values.length]);
      const b = T.tensor(device, values, [values.length]);
      const sum = T.add(a, b);
      const out = Array.from(await sum.data());
      for (const t of [a, b, sum]) t.dispose();
      return out;
    };
    // The pool hands the same buffers back (in an order that repeats after a few rounds): once it
    // has, the add binds nothing new.
    for (let i = 0; i < 6; i++) await run([1, 2, 3]);
    const before = device.stats().bindGroupsCreated;
    for (let i = 0; i < 6; i++) assert.deepEqual(await run([4, 5, 6]), [8, 10, 12]);
    assert.equal(device.stats().bindGroupsCreated, before);
    // Trimming destroys the idle buffers; their cached groups go with them, and new ones work.
    device.trimPool();
    assert.deepEqual(await run([7, 8, 9]), [14, 16, 18]);
    assert.ok(device.stats().bindGroupsCreated > before);
    const p = T.parameter(device, [1, 1, 1], [3]);
    assert.deepEqual(Array.from(await T.add(p, p).data()), [2, 2, 2]);
    p.dispose();
    const q = T.parameter(device, [2, 2, 2], [3]);
    assert.deepEqual(Array.from(await T.add(q, q).data()), [4, 4, 4]);
    q.dispose();
    T.tidy(() => undefined);
    assert.deepEqual(device.errors, []);
  });
});
