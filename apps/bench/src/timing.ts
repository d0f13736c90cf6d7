/** What `medianMs` tunes after the warm-up: a device's autotuner (see @segtrain/tensor). */
export interface Tunable {
  readonly tuner: { readonly pending: number; run(): Promise<unknown> };
}

/** Tunes the kernel shape classes the warm-up met, when the device's autotuner is on. */
export async function tuneAfterWarmup(device: Tunable): Promise<void> {
  if (device.tuner.pending > 0) await device.tuner.run();
}

/**
 * Median wall time of `run` (ms) after `warmup` runs and, given a device, tuning what they used;
 * `run` must resolve when the GPU work is done.
 */
export async function medianMs(
  run: () => Promise<void>,
  reps: number,
  device: Tunable | null = null,
  warmup = 1,
): Promise<number> {
  for (let i = 0; i < warmup; i++) await run();
  if (device) await tuneAfterWarmup(device);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** The middle value (the upper one of an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
}

export interface Row {
  readonly name: string;
  /** Work per run in GFLOP (0 when the row reports images/s). */
  readonly gflop: number;
  /** Images per run (training-step rows). */
  readonly images?: number;
  readonly oursMs: number;
  readonly theirsMs: number | null;
  /** Kernel rows: ours per call when calls run back to back before one wait (see kernels.ts). */
  readonly backToBackMs?: number;
  /** Trainable parameter count (model rows). */
  readonly params?: number;
  /** GEMM 1024³ GFLOP/s measured in the same run, just before this row (model rows). */
  readonly gemmGflops?: number;
  /** With --profile: the kernels with the most GPU time in one step (model rows). */
  readonly topKernels?: ReadonlyArray<{
    readonly kernel: string;
    readonly dispatches: number;
    readonly ms: number;
  }>;
}

export function rate(row: Row, ms: number): number {
  return row.images ? (row.images * 1000) / ms : (row.gflop * 1000) / ms;
}
