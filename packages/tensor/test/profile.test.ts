import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { testDevice } from '../src/testing/index.js';

describe('Device profiling (timestamp queries)', () => {
  it('times each dispatch by kernel, and stops cleanly', async (t) => {
    const device = await testDevice();
    if (!device.features.has('timestamp-query')) {
      t.skip('adapter has no timestamp-query');
      return;
    }
    const a = T.tensor(device, new Float32Array(4096).fill(1), [64, 64]);
    device.startProfile();
    const b = T.matmul(a, a);
    const c = T.relu(b);
    const d = T.relu(c);
    const profile = await device.stopProfile();
    assert.deepEqual((await d.data()).slice(0, 2), new Float32Array([64, 64]));
    const relu = profile.find((p) => p.kernel.includes('max(a, 0.0)'));
    assert.ok(relu, `relu kernel in ${profile.map((p) => p.kernel).join(', ')}`);
    assert.equal(relu.dispatches, 2);
    assert.ok(profile.every((p) => p.ms >= 0 && Number.isFinite(p.ms)));
    assert.ok(profile.some((p) => p.kernel.startsWith('matmul') || p.kernel.startsWith('gemm')));
    await assert.rejects(device.stopProfile(), /without startProfile/);
    for (const x of [a, b, c, d]) x.dispose();
  });
});
