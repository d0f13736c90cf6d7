/**
 * Evaluation as PaddleSeg's `core/val.py` (spec c.3): batch 1, val transforms, inference in the
 * configured mode, logits mapped back to the label size, per-class areas summed, then mIoU, Acc,
 * Kappa, Dice — plus the mIoU over the classes present in the labels.
 */

import type { ProcessGroup } from '@segtrain/collective';
import type { TransformConfig } from '@segtrain/config';
import { DataLoader, DistributedBatchSampler, type SegDataset } from '@segtrain/data';
import type { SegModel } from '@segtrain/models';
import type { Device } from '@segtrain/tensor';
import { type InferenceOptions, predictBatch } from './inference.js';
import { NO_PROGRESS, ProgressBar, type ProgressStream } from './log-format.js';
import { ConfusionCounts, computeMetrics, formatEvalLines, type SegMetrics } from './metrics.js';

export interface EvaluateOptions {
  readonly dataset: SegDataset;
  readonly transforms: readonly TransformConfig[];
  readonly inference: InferenceOptions;
  /** PaddleSeg forces val workers to 1 when num_workers > 0. */
  readonly numWorkers: number;
  readonly log: (line: string) => void;
  readonly progress?: ProgressStream;
  /** Each rank evaluates its share; the counts are added over the group (padding excluded). */
  readonly group?: ProcessGroup;
}

export interface EvaluationResult {
  readonly metrics: SegMetrics;
  readonly images: number;
  /** PaddleSeg's [EVAL] lines, then the present-class mIoU line. */
  readonly lines: readonly string[];
}

/** Evaluates `model` (switched to eval mode, and left there) on every image of the dataset. */
export async function evaluate(
  device: Device,
  model: SegModel,
  o: EvaluateOptions,
): Promise<EvaluationResult> {
  const { dataset, group } = o;
  const rank = group?.rank ?? 0;
  const world = group?.worldSize ?? 1;
  const sampler = new DistributedBatchSampler({
    size: dataset.length,
    batchSize: 1,
    rank,
    worldSize: world,
    shuffle: false,
    dropLast: false,
  });
  const loader = new DataLoader({
    dataset,
    transforms: o.transforms,
    sampler,
    numWorkers: Math.min(o.numWorkers, 1),
    seed: 0,
  });
  o.log(`Start evaluating (total_samples: ${dataset.length}, total_iters: ${sampler.length})...`);
  const counts = new ConfusionCounts(dataset.numClasses, dataset.ignoreIndex);
  const bar = new ProgressBar({
    total: sampler.length,
    label: 'eval',
    stream: o.progress ?? NO_PROGRESS,
  });
  model.eval();
  let images = 0;
  let position = rank;
  try {
    for await (const batch of loader.epoch(0)) {
      // Unshuffled with batch 1, this rank's k-th sample is global position k·world + rank; the
      // sampler pads past the dataset's end by repeating its head, which must not count twice.
      const padding = position >= dataset.length;
      position += world;
      if (padding) continue;
      const { pred, height: ph, width: pw } = await predictBatch(device, model, batch, o.inference);
      const [, lh, lw] = batch.labelShape;
      if (!batch.label) throw new Error(`evaluation needs labels: ${batch.imagePaths[0]} has none`);
      if (ph !== lh || pw !== lw)
        throw new Error(
          `${batch.imagePaths[0]}: prediction is ${ph}×${pw} but the label is ${lh}×${lw}; val transforms that change the size must record it (Resize, Padding)`,
        );
      counts.add(pred, batch.label);
      images++;
      bar.update(images);
    }
  } finally {
    bar.finish();
    await loader.close();
  }
  if (group) {
    const n = counts.numClasses;
    const all = new Float64Array(3 * n + 1);
    all.set(counts.intersect, 0);
    all.set(counts.predArea, n);
    all.set(counts.labelArea, 2 * n);
    all[3 * n] = images;
    await group.allReduce(all, 'sum');
    counts.intersect.set(all.subarray(0, n));
    counts.predArea.set(all.subarray(n, 2 * n));
    counts.labelArea.set(all.subarray(2 * n, 3 * n));
    images = all[3 * n] ?? images;
  }
  const metrics = computeMetrics(counts);
  return { metrics, images, lines: formatEvalLines(metrics, images) };
}
