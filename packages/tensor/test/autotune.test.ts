import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it, vi } from 'vitest';
import { Autotuner, autotuneOptionsFromEnv, type TuneResult } from '../src/device/autotune.js';
import * as T from '../src/index.js';
import { gemmCandidates, gemmShapeClass } from '../src/kernels/gemm-template.js';
import { testDevice } from '../src/testing/index.js';

const rand = (size: number, seed: number) =>
  Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.61 + seed) * 0.5);

/** Kernel keys compiled or looked up while `fn` runs. */
async function kernelsUsed(device: T.Device, fn: () => Promise<void>): Promise<string[]> {
  const spy = vi.spyOn(device, 'kernel');
  try {
    await fn();
    return spy.mock.calls.map(([source]) => source.key);
  } finally {
    spy.mockRestore();
  }
}

const freshCache = () => join(mkdtempSync(join(tmpdir(), 'segtrain-autotune-')), 'autotune.json');

describe('autotune options', () => {
  it('on for hardware adapters, off for software ones, SEGTRAIN_AUTOTUNE overrides', () => {
    assert.equal(autotuneOptionsFromEnv(false, {}).enabled, true);
    assert.equal(autotuneOptionsFromEnv(true, {}).enabled, false);
    assert.equal(autotuneOptionsFromEnv(true, { SEGTRAIN_AUTOTUNE: '1' }).enabled, true);
    assert.equal(autotuneOptionsFromEnv(false, { SEGTRAIN_AUTOTUNE: '0' }).enabled, false);
    assert.throws(
      () => autotuneOptionsFromEnv(false, { SEGTRAIN_AUTOTUNE: 'yes' }),
      /SEGTRAIN_AUTOTUNE=yes: expected 1 \(tune kernels\) or 0/,
    );
  });

  it('the cache lives under XDG_CACHE_HOME unless SEGTRAIN_AUTOTUNE_CACHE names it', () => {
    assert.equal(
      autotuneOptionsFromEnv(false, { XDG_CACHE_HOME: '/c' }).cacheFile,
      '/c/segtrain/autotune.json',
    );
    assert.equal(
      autotuneOptionsFromEnv(false, { XDG_CACHE_HOME: '/c', SEGTRAIN_AUTOTUNE_CACHE: '/x/t.json' }).cacheFile,
      '/x/t.json',
    );
  });
});

describe('GEMM autotuning', () => {
  let saved: Autotuner | null = null;
  const useTuner = async (tuner: Autotuner) => {
    const device = await testDevice();
    saved ??= device.tuner;
    device.tuner = tuner;
    return device;
  };
  afterEach(async () => {
    if (saved) (await testDevice()).tuner = saved;
    saved = null;
  });

  it('is off on this software adapter by default: no shape class is noted', async () => {
    const device = await testDevice();
    if (!device.software) return;
    const a = T.tensor(device, rand(6 * 7, 1), [6, 7]);
    T.matmul(a, T.reshape(a, [7, 6])).dispose();
    assert.equal(device.tuner.pending, 0);
    a.dispose();
  });

  it('notes a new shape class, times every candidate, keeps the fastest and caches it per adapter', async () => {
    const base = await testDevice();
    const cacheFile = freshCache();
    const tuner = new Autotuner('adapter A', { enabled: true, cacheFile }, () => base.sync());
    const device = await useTuner(tuner);
    const [m, k, n] = [20, 24, 36];
    const a = T.tensor(device, rand(m * k, 1), [m, k]);
    const b = T.tensor(device, rand(k * n, 2), [k, n]);
    const before = await T.matmul(a, b).data();
    assert.equal(tuner.pending, 1);
    const [result, ...others] = await tuner.run();
    assert.equal(others.length, 0);
    assert.ok(result);
    const names = gemmCandidates(device, m, n).map((c) => c.name);
    assert.deepEqual(Object.keys(result.ms).sort(), [...names].sort());
    const fastest = Math.min(...Object.values(result.ms));
    assert.equal(result.ms[result.chosen], fastest);
    assert.equal(result.fallback, names[0]);
    assert.equal(result.shapeClass, gemmShapeClass('matmul/nn', m, n, k, 1));
    assert.equal(tuner.pending, 0);

    // The tuned kernel runs from now on, with the same result.
    let after: number[] = [];
    const keys = await kernelsUsed(device, async () => {
      after = [...(await T.matmul(a, b).data())];
    });
    assert.ok(keys.includes(`gemm/matmul/nn/${result.chosen}`), `${keys.join(', ')} lacks ${result.chosen}`);
    assert.deepEqual(after, [...before]);

    // Another process on the same adapter starts tuned; another adapter does not.
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as {
      adapters: Record<string, Record<string, TuneResult>>;
    };
    assert.equal(Object.values(cache.adapters['adapter A'] ?? {})[0]?.chosen, result.chosen);
    const again = await useTuner(new Autotuner('adapter A', { enabled: true, cacheFile }, () => base.sync()));
    T.matmul(a, b).dispose();
    assert.equal(again.tuner.pending, 0);
    const other = await useTuner(new Autotuner('adapter B', { enabled: true, cacheFile }, () => base.sync()));
    T.matmul(a, b).dispose();
    assert.equal(other.tuner.pending, 1);
    for (const t of [a, b]) t.dispose();
  });

  it('a candidate that fails on this adapter is left out with a warning; the others are timed', async () => {
    const base = await testDevice();
    const tuner = new Autotuner('adapter A', { enabled: true, cacheFile: null }, () => base.sync());
    const candidates = ['default', 'broken', 'other'].map((name) => ({ name, config: name }));
    const runs: string[] = [];
    const config = tuner.choose(
      'test/family',
      () => 'class 1',
      'default',
      () => candidates,
      () => ({
        run: (name: string) => {
          if (name === 'broken') throw new Error('exceeds maxComputeWorkgroupStorageSize');
          runs.push(name);
        },
        dispose: () => {},
      }),
    );
    assert.equal(config, 'default');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const [result] = await tuner.run();
      assert.deepEqual(Object.keys(result?.ms ?? {}).sort(), ['default', 'other']);
      assert.ok(result?.chosen === 'default' || result?.chosen === 'other');
      assert.match(
        String(warn.mock.calls[0]?.[0]),
        /^autotune test\/family class 1: candidate broken failed on this adapter and is left out \(exceeds maxComputeWorkgroupStorageSize\)$/,
      );
      assert.ok(runs.includes('other') && runs.includes('default'));
    } finally {
      warn.mockRestore();
    }
  });

  it('a cache file that is not JSON is ignored with a warning naming it', async () => {
    const base = await testDevice();
    const cacheFile = freshCache();
    writeFileSync(cacheFile, '{ not json');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const device = await useTuner(
        new Autotuner('adapter A', { enabled: true, cacheFile }, () => base.sync()),
      );
      const a = T.tensor(device, rand(9 * 9, 3), [9, 9]);
      T.matmul(a, a).dispose();
      assert.equal(device.tuner.pending, 1);
      assert.match(
        String(warn.mock.calls[0]?.[0]),
        new RegExp(`autotune cache ${cacheFile} is not valid JSON`),
      );
      a.dispose();
    } finally {
      warn.mockRestore();
    }
  });
});
