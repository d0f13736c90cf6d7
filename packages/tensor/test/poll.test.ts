import assert from 'node:assert/strict';
import { promisify } from 'node:util';
import { describe, it } from 'vitest';
import {
  GPU_POLL_ENV,
  gpuPollModeFromEnv,
  POLL_SLEEP_MAX_MS,
  POLL_SLEEP_MIN_MS,
  POLL_SPIN_MS,
  pollSleepMs,
  pollStats,
} from '../src/device/poll.js';
import * as T from '../src/index.js';
import { testDevice } from '../src/testing/index.js';

describe('polite GPU polling', () => {
  it('sleeps nothing early in a wait, then 1/50 of the wait within bounds', () => {
    assert.equal(pollSleepMs(0), 0);
    assert.equal(pollSleepMs(POLL_SPIN_MS * 0.99), 0);
    assert.equal(pollSleepMs(POLL_SPIN_MS), POLL_SLEEP_MIN_MS);
    assert.equal(pollSleepMs(10), 0.2);
    assert.equal(pollSleepMs(1000), POLL_SLEEP_MAX_MS);
  });

  it('reads the mode from the environment and names the variable on a bad value', () => {
    assert.equal(gpuPollModeFromEnv({}), 'sleep');
    assert.equal(gpuPollModeFromEnv({ [GPU_POLL_ENV]: 'spin' }), 'spin');
    assert.equal(gpuPollModeFromEnv({ [GPU_POLL_ENV]: 'sleep' }), 'sleep');
    assert.throws(
      () => gpuPollModeFromEnv({ [GPU_POLL_ENV]: 'busy' }),
      /SEGTRAIN_GPU_POLL=busy: expected sleep/,
    );
  });

  it("recognises Dawn's polls during a long wait and sleeps between them", async () => {
    const device = await testDevice();
    const n = 512;
    const a = T.tensor(device, new Float32Array(n * n).fill(1), [n, n]);
    await device.sync();
    const before = { ...pollStats };
    const product = T.matmul(a, a);
    const values = await product.data();
    assert.equal(values[n * n - 1], n);
    // A 512³ matmul waits milliseconds on any adapter CI has, past the spin window.
    assert.ok(pollStats.polls > before.polls, 'no Dawn poll was seen');
    assert.ok(pollStats.sleeps > before.sleeps, `no poll slept (${pollStats.polls - before.polls} polls)`);
    a.dispose();
    product.dispose();
  });

  it('leaves every other setImmediate as it was', async () => {
    await testDevice();
    const order: string[] = [];
    const handle = setImmediate((x: string) => order.push(x), 'ran');
    assert.equal(typeof handle.hasRef, 'function');
    const cancelled = setImmediate(() => order.push('cancelled'));
    clearImmediate(cancelled);
    const bound = function named(this: string[]) {
      this.push('bound');
    }.bind(order);
    setImmediate(bound);
    assert.equal(await promisify(setImmediate)('value'), 'value');
    assert.deepEqual(order, ['ran', 'bound']);
  });
});
