import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { dropout, dropout2d, dropPath, randomUniform } from '../src/ops/random.js';
import { testDevice } from '../src/testing/index.js';

describe('dropout family (seeded GPU RNG)', () => {
  it('uniform noise is in range, seeded, and roughly uniform', async () => {
    const device = await testDevice();
    const a = await randomUniform(device, [20000], 0, 1, 42).data();
    const b = await randomUniform(device, [20000], 0, 1, 42).data();
    const c = await randomUniform(device, [20000], 0, 1, 43).data();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    let mean = 0;
    for (const v of a) {
      assert.ok(v >= 0 && v < 1);
      mean += v / a.length;
    }
    assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  });

  it('dropout keeps ~(1−p), scales kept values by 1/(1−p), and backward uses the same mask', async () => {
    const device = await testDevice();
    const n = 10000;
    const x = T.parameter(device, new Float32Array(n).fill(2), [n]);
    const y = dropout(x, 0.25, { training: true, seed: 7 });
    const values = await y.data();
    const kept = values.filter((v) => v !== 0);
    assert.ok(kept.every((v) => Math.abs(v - 2 / 0.75) < 1e-5));
    assert.ok(Math.abs(kept.length / n - 0.75) < 0.02, `kept ${kept.length / n}`);
    T.backward(y, { grad: T.ones(device, [n]) });
    const g = await (x.grad as T.Tensor).data();
    for (let i = 0; i < n; i++) assert.equal(g[i] !== 0, values[i] !== 0, `mask differs at ${i}`);
    x.dispose();
  });

  it('dropout2d drops whole channels; dropPath whole samples; eval is the identity', async () => {
    const device = await testDevice();
    const x = T.tensor(device, new Float32Array(4 * 8 * 3 * 3).fill(1), [4, 8, 3, 3]);
    const ch = await dropout2d(x, 0.5, { training: true, seed: 3 }).data();
    for (let c = 0; c < 32; c++)
      assert.equal(new Set(ch.slice(c * 9, c * 9 + 9)).size, 1, `channel ${c} is mixed`);
    const dp = await dropPath(x, 0.5, { training: true, seed: 5 }).data();
    for (let s = 0; s < 4; s++)
      assert.equal(new Set(dp.slice(s * 72, s * 72 + 72)).size, 1, `sample ${s} is mixed`);
    assert.equal(dropout(x, 0.5, { training: false }), x);
    assert.throws(() => dropout(x, 1, { training: true }), /dropout: p must be in \[0, 1\), got 1/);
    T.tidy(() => undefined);
    x.dispose();
  });
});
