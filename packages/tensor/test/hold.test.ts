import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { testDevice } from '../src/testing/index.js';

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('Device.hold', () => {
  it('holds back work recorded after it until release, which uploads first', async () => {
    const device = await testDevice();
    const before = T.tensor(device, [1, 2, 3], [3]);
    const doubledBefore = T.scale(before, 2);
    const target = T.tensor(device, [0, 0, 0], [3]);
    const hold = device.hold();
    assert.equal(device.holding, true);
    // Recorded now, run later: it must see what release() uploads, not the zeros.
    const doubled = T.scale(target, 2);
    const written = T.tensor(device, [7, 8, 9], [3]);
    let done = false;
    const reading = doubled.data().then((v) => {
      done = true;
      return Array.from(v);
    });
    await settle();
    assert.equal(done, false, 'a read of held work waits for the release');
    hold.release([[target.buffer, Float32Array.of(10, 20, 30)]]);
    assert.deepEqual(await reading, [20, 40, 60]);
    assert.deepEqual(Array.from(await written.data()), [7, 8, 9]);
    assert.equal(device.holding, false);
    assert.deepEqual(Array.from(await doubledBefore.data()), [2, 4, 6], 'work recorded before the hold');
    hold.release([[target.buffer, Float32Array.of(0, 0, 0)]]);
    assert.deepEqual(Array.from(await target.data()), [10, 20, 30], 'a second release does nothing');
    for (const t of [before, doubledBefore, target, doubled, written]) t.dispose();
  });

  it('releases out of order: later holds wait for earlier ones', async () => {
    const device = await testDevice();
    const a = T.tensor(device, [0], [1]);
    const b = T.tensor(device, [0], [1]);
    const first = device.hold();
    const plusA = T.scale(a, 1);
    const second = device.hold();
    const sum = T.add(plusA, b);
    second.release([[b.buffer, Float32Array.of(5)]]);
    let done = false;
    const reading = sum.data().then((v) => {
      done = true;
      return Array.from(v);
    });
    await settle();
    assert.equal(done, false);
    first.release([[a.buffer, Float32Array.of(2)]]);
    assert.deepEqual(await reading, [7]);
    for (const t of [a, b, plusA, sum]) t.dispose();
  });
});
