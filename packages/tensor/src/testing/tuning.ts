import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Autotuner } from '../device/autotune.js';
import { Device } from '../device/device.js';

/** One autotune choice: the candidate `name` for a kernel family's shape class. */
export interface TunedChoice {
  readonly family: string;
  readonly shapeClass: string;
  readonly name: string;
}

/**
 * Runs `fn` with the device's autotuner choosing `choices`, read from a cache file as a tuned
 * process would (the way to test a candidate a default never runs). Returns `fn`'s result, the
 * shape classes `fn` met that no choice covered, and the keys of the kernels it ran.
 */
export async function withTunedChoices<R>(
  device: Device,
  choices: readonly TunedChoice[],
  fn: () => Promise<R>,
): Promise<{ result: R; untuned: number; kernels: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'segtrain-tuned-'));
  const cacheFile = join(dir, 'autotune.json');
  const entries = Object.fromEntries(
    choices.map((c) => [`${c.family}|${c.shapeClass}`, { ...c, chosen: c.name, fallback: c.name, ms: {} }]),
  );
  writeFileSync(cacheFile, JSON.stringify({ format: 1, adapters: { pinned: entries } }));
  const saved = device.tuner;
  device.tuner = new Autotuner('pinned', { enabled: true, cacheFile }, () => device.sync());
  const kernels: string[] = [];
  // An own property over the prototype's method, deleted afterwards.
  device.kernel = (source) => {
    kernels.push(source.key);
    return Device.prototype.kernel.call(device, source);
  };
  try {
    const result = await fn();
    return { result, untuned: device.tuner.pending, kernels };
  } finally {
    delete (device as { kernel?: unknown }).kernel;
    device.tuner = saved;
    rmSync(dir, { recursive: true, force: true });
  }
}
