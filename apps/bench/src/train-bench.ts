/**
 * `segtrain-bench train`: the real training step of a config (its model, loss with coefs,
 * optimizer and LR schedule) on a synthetic batch, split into data (batch upload), forward,
 * backward and optimizer, with the buffer pool's size and the process's RSS after the steps.
 */
import { memoryUsage } from 'node:process';
import type { ResolvedConfig } from '@segtrain/config';
import { buildModel, type ComponentConfig, withoutPretrained } from '@segtrain/models';
import {
  buildLrSchedule,
  createOptimizer,
  type LossBlock,
  type LrSchedulerConfig,
  learningRateAt,
  lossFromConfig,
  type OptimizerConfig,
  seedInitializers,
} from '@segtrain/nn';
import * as T from '@segtrain/tensor';
import { NUM_CLASSES, syntheticBatch } from './models.js';
import { barChartSvg } from './report.js';
import { median, tuneAfterWarmup } from './timing.js';

export interface TrainBenchRow {
  readonly name: string;
  readonly input: readonly number[];
  readonly params: number;
  readonly stepMs: number;
  readonly imagesPerSecond: number;
  /** Medians of each phase (ms); communication is 0 in one process. */
  readonly dataMs: number;
  readonly forwardMs: number;
  readonly backwardMs: number;
  readonly optimizerMs: number;
  readonly communicationMs: number;
  /** Bytes the GPU buffer pool holds after the steps (it keeps what it created: its peak) plus the parameters'. */
  readonly gpuPoolBytes: number;
  readonly rssBytes: number;
}

/** Times `reps` training steps after one warm-up, each phase waiting for the GPU so it is measured alone. */
export async function benchTrainStep(
  device: T.Device,
  name: string,
  config: ResolvedConfig,
  input: readonly [number, number, number, number],
  reps: number,
): Promise<TrainBenchRow> {
  const [n, c, h, w] = input;
  const { image, labels } = syntheticBatch(input);
  const modelBlock = withoutPretrained(config.model as unknown as ComponentConfig);
  // Each config's peak pool size starts from an empty pool.
  await device.sync();
  device.trimPool();
  seedInitializers(1);
  const model = buildModel(device, modelBlock);
  model.train();
  const lossFn = lossFromConfig(config.loss as unknown as LossBlock);
  const optimizer = createOptimizer(model.namedParameters(), config.optimizer as unknown as OptimizerConfig);
  const schedule = buildLrSchedule(config.lr_scheduler as unknown as LrSchedulerConfig, config.iters);
  const phases = {
    data: [] as number[],
    forward: [] as number[],
    backward: [] as number[],
    optimizer: [] as number[],
  };
  try {
    for (let i = 0; i <= reps; i++) {
      await device.sync();
      const t0 = performance.now();
      const x = T.tensor(device, image, [n, c, h, w]);
      const y = T.tensor(device, labels, [n, h, w], 'i32');
      await device.sync();
      const t1 = performance.now();
      const [t2, t3] = await T.tidyAsync(async () => {
        const { total } = await lossFn(model.forward(x), y);
        await device.sync();
        const forwardDone = performance.now();
        T.backward(total);
        await device.sync();
        return [forwardDone, performance.now()];
      });
      optimizer.step(learningRateAt(schedule, i));
      optimizer.zeroGrad();
      await device.sync();
      const t4 = performance.now();
      x.dispose();
      y.dispose();
      if (i === 0) {
        await tuneAfterWarmup(device);
        continue;
      }
      phases.data.push(t1 - t0);
      phases.forward.push((t2 as number) - t1);
      phases.backward.push((t3 as number) - (t2 as number));
      phases.optimizer.push(t4 - (t3 as number));
    }
    const stats = device.stats();
    const dataMs = median(phases.data);
    const forwardMs = median(phases.forward);
    const backwardMs = median(phases.backward);
    const optimizerMs = median(phases.optimizer);
    const stepMs = dataMs + forwardMs + backwardMs + optimizerMs;
    return {
      name,
      input,
      params: model.parameterCount(),
      stepMs,
      imagesPerSecond: (n * 1000) / stepMs,
      dataMs,
      forwardMs,
      backwardMs,
      optimizerMs,
      communicationMs: 0,
      gpuPoolBytes: stats.storageBytesOwned + stats.paramBytes,
      rssBytes: memoryUsage().rss,
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export function trainBenchMarkdown(
  rows: readonly TrainBenchRow[],
  machine: Record<string, string>,
  date: string,
  reps: number,
): string {
  return [
    '# segtrain training-step benchmark',
    '',
    `Run ${date}.`,
    '',
    ...Object.entries(machine).map(([k, v]) => `- ${k}: ${v}`),
    '',
    '| config | input | params | ms / step | img/s | data | forward | backward | optimizer | communication | GPU pool MiB | RSS MiB |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.input.join('×')} | ${r.params.toLocaleString('en-US')} | ${r.stepMs.toFixed(1)} | ${r.imagesPerSecond.toFixed(2)} | ${r.dataMs.toFixed(1)} | ${r.forwardMs.toFixed(1)} | ${r.backwardMs.toFixed(1)} | ${r.optimizerMs.toFixed(1)} | ${r.communicationMs.toFixed(1)} | ${mb(r.gpuPoolBytes)} | ${mb(r.rssBytes)} |`,
    ),
    '',
    `- One step: the config's model, loss (with its coefs) and optimizer at the schedule's LR, on a synthetic batch (random image and labels over ${NUM_CLASSES} classes); phases in ms, each the median of ${reps} steps after one warm-up, each waiting for the GPU so that it is timed alone (the phases overlap in training, so a real step is shorter than their sum).`,
    '- data = uploading the batch (the data loader is measured by the demo and the trainer, not here); communication is 0 in one process (`segtrain-bench scaling` measures it).',
    "- GPU pool = bytes the buffer pool owns after the steps (it keeps every buffer it created, so this is its peak) plus the parameters' and optimizer state's; RSS is the whole process's.",
    '',
  ].join('\n');
}

/** Images per second, one bar per config. */
export function trainBenchSvg(rows: readonly TrainBenchRow[]): string {
  return barChartSvg(
    'training images/s',
    rows.map((r) => ({ label: r.name, value: r.imagesPerSecond })),
  );
}
