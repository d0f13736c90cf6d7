/**
 * One rank of `segtrain-bench scaling` (RANK, WORLD_SIZE, MASTER_* from the driver): the
 * data-parallel step with the device compute replaced by waits of the calibrated durations (a wait
 * costs no CPU, so communication runs as it would beside a GPU) and the real gradient all-reduces
 * of the model's bucket layout, each launched when backward would finish it. Rank 0 prints one
 * JSON line: the step times, and each bucket's all-reduce alone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcessGroup } from '@segtrain/collective';
import { median } from './timing.js';

export interface ScalingWorkerReport {
  readonly nodes: number;
  /** Median wall time of one step on rank 0 (ms). */
  readonly stepMs: number;
  readonly stepsMs: readonly number[];
  /** Median time of each bucket's all-reduce alone, back to back after a barrier (ms). */
  readonly bucketMs: readonly number[];
}

const numbers = (name: string) => (process.env[name] ?? '').split(',').filter(Boolean).map(Number);

async function main(): Promise<void> {
  const forwardMs = Number(process.env.FORWARD_MS);
  const backwardMs = Number(process.env.BACKWARD_MS);
  const steps = Number(process.env.STEPS ?? 5);
  const bucketBytes = numbers('BUCKET_BYTES');
  const group = await ProcessGroup.fromEnv({ timeoutMs: 120_000 });
  const buffers = bucketBytes.map((b) => new Float32Array(b / 4).fill(group.rank + 1));
  const total = bucketBytes.reduce((a, b) => a + b, 0);

  const step = async () => {
    await group.barrier();
    const t0 = performance.now();
    await sleep(forwardMs);
    const backwardStart = performance.now();
    const inFlight: Array<Promise<void>> = [];
    let cumulative = 0;
    for (const [i, bytes] of bucketBytes.entries()) {
      cumulative += bytes;
      const readyAt = backwardStart + (backwardMs * cumulative) / total;
      const wait = readyAt - performance.now();
      if (wait > 0) await sleep(wait);
      inFlight.push(group.allReduce(buffers[i] as Float32Array, 'mean'));
    }
    const left = backwardStart + backwardMs - performance.now();
    if (left > 0) await sleep(left);
    await Promise.all(inFlight);
    return performance.now() - t0;
  };

  await step();
  const stepsMs: number[] = [];
  for (let i = 0; i < steps; i++) stepsMs.push(await step());
  const perBucket: number[][] = bucketBytes.map(() => []);
  for (let rep = 0; rep < 3; rep++)
    for (const [i, buffer] of buffers.entries()) {
      await group.barrier();
      const t0 = performance.now();
      await group.allReduce(buffer, 'mean');
      perBucket[i]?.push(performance.now() - t0);
    }
  if (group.rank === 0) {
    const report: ScalingWorkerReport = {
      nodes: group.worldSize,
      stepMs: median(stepsMs),
      stepsMs,
      bucketMs: perBucket.map(median),
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }
  await group.close();
}

await main();
