/**
 * How the main thread waits for the GPU.
 *
 * Dawn's Node binding resolves its promises (onSubmittedWorkDone, mapAsync) by polling: while any
 * is pending it re-arms a `setImmediate` callback that calls `Instance::ProcessEvents`
 * (crbug.com/dawn/1127), so the main thread spins at a full core for as long as the GPU works. On
 * a CPU adapter that core is taken from the GPU itself (lavapipe runs a thread per core): on this
 * 2-core machine a 1024³ matmul took 70 ms with the spin and 41 ms without it, a depthwise 3×3
 * forward 5.0 ms and 3.3 ms, and the main thread had 60–85 % of a core while it waited.
 *
 * Polite polling keeps Dawn's polls but lets a wait's later polls sleep first: none in its first
 * {@link POLL_SPIN_MS} (a short wait keeps its latency), then a sleep that grows with the wait,
 * 1/50 of it, between {@link POLL_SLEEP_MIN_MS} and {@link POLL_SLEEP_MAX_MS} (at most 2 % added to
 * a long wait). Every other `setImmediate` call passes through untouched. `SEGTRAIN_GPU_POLL=spin`
 * keeps Dawn's own polling.
 */
import { promisify } from 'node:util';

export const GPU_POLL_ENV = 'SEGTRAIN_GPU_POLL';
export type GpuPollMode = 'sleep' | 'spin';

export const POLL_SPIN_MS = 0.25;
export const POLL_SLEEP_MIN_MS = 0.05;
export const POLL_SLEEP_MAX_MS = 0.5;

/** Polls seen and sleeps taken since the process started (for tests and diagnostics). */
export const pollStats = { polls: 0, sleeps: 0 };

export function gpuPollModeFromEnv(env: NodeJS.ProcessEnv = process.env): GpuPollMode {
  const value = env[GPU_POLL_ENV];
  if (value === undefined || value === '' || value === 'sleep') return 'sleep';
  if (value === 'spin') return 'spin';
  throw new Error(
    `${GPU_POLL_ENV}=${value}: expected sleep (poll the GPU politely, the default) or spin (Dawn's busy polling)`,
  );
}

/** How long a poll sleeps once the wait it belongs to has lasted `waitedMs`. */
export function pollSleepMs(waitedMs: number): number {
  if (waitedMs < POLL_SPIN_MS) return 0;
  return Math.min(POLL_SLEEP_MAX_MS, Math.max(POLL_SLEEP_MIN_MS, waitedMs / 50));
}

/**
 * Dawn arms its poll with an anonymous native function and no arguments; JS callbacks have
 * source text, and bound functions are named `bound …`.
 */
function isDawnPoll(callback: unknown, args: readonly unknown[]): callback is () => void {
  return (
    typeof callback === 'function' &&
    args.length === 0 &&
    callback.name === '' &&
    Function.prototype.toString.call(callback).includes('[native code]')
  );
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
let installed = false;

/** Wraps `globalThis.setImmediate` once (Dawn looks it up at every poll) so that Dawn's polls sleep as described above. */
export function installPolitePolling(): void {
  if (installed) return;
  installed = true;
  const original = globalThis.setImmediate;
  // True while Dawn's poll runs: a poll armed from inside one continues a wait, any other starts one.
  let polling = false;
  let waitStart = 0;
  const wrapper = (callback: unknown, ...args: unknown[]) => {
    if (!isDawnPoll(callback, args)) return original(callback as (...a: unknown[]) => void, ...args);
    pollStats.polls++;
    const now = performance.now();
    if (!polling) waitStart = now;
    else {
      const ms = pollSleepMs(now - waitStart);
      if (ms > 0) {
        pollStats.sleeps++;
        Atomics.wait(sleepCell, 0, 0, ms);
      }
    }
    return original(() => {
      polling = true;
      try {
        callback();
      } finally {
        polling = false;
      }
    });
  };
  // `util.promisify(setImmediate)` (and timers/promises users) keep working.
  Object.defineProperty(wrapper, promisify.custom, {
    value: (original as unknown as Record<symbol, unknown>)[promisify.custom],
  });
  globalThis.setImmediate = wrapper as typeof setImmediate;
}
