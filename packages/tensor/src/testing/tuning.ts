import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Autotuner } from '../device/autotune.js';
import type { Device } from '../device/device.js';

/** One autotune choice: the candidate `name` for a kernel family's shape class. */
export interface TunedChoice {
  readonly family: string;
  readonly shapeClass: string;
  readonly name: string;
}

/**
 * Runs `fn` with the device's autotuner choosing `choices`, read from a cache file as a tuned
 * process would (the way to test a candidate a default never runs). Returns `fn`'s result and the
 * shape classes `fn` met that no choice covered.
 */
export async function withTunedChoices<R>(
  device: Device,
  choices: readonly TunedChoice[],
  fn: () => Promise<R>,
): Promise<{ result: R; untuned: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'segtrain-tuned-'));
  const cacheFile = join(dir, 'autotune.json');
  const entries = Object.fromEntries(
    choices.map((c) => [`${c.family}|${c.shapeClass}`, { ...c, chosen: c.name, fallback: c.name, ms: {} }]),
  );
  writeFileSync(cacheFile, JSON.stringify({ format: 1, adapters: { pinned: entries } }));
  const saved = device.tuner;
  device.tuner = new Autotuner('pinned', { enabled: true, cacheFile }, () => device.sync());
  try {
    const result = await fn();
    return { result, untuned: device.tuner.pending };
  } finally {
    device.tuner = saved;
    rmSync(dir, { recursive: true, force: true });
  }
}
