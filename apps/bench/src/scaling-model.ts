/**
 * The latency-bandwidth model of a data-parallel step (COLLECTIVES.md §8): buckets become ready
 * during backward in proportion to their bytes, each all-reduce starts when its bucket is ready and
 * the previous one is done, and takes 2(N−1)·α + 2(N−1)/N·s/B. Fitted to measured all-reduce times,
 * it predicts the measured step times and projects larger node counts.
 */

export interface StepProfile {
  /** Per-rank compute of one step (ms), forward and backward. */
  readonly forwardMs: number;
  readonly backwardMs: number;
  /** Bucket sizes in bytes, in launch order. */
  readonly bucketBytes: readonly number[];
}

export interface LinkModel {
  /** Per ring step latency (ms): 2(N−1) steps per all-reduce. */
  readonly alphaMs: number;
  /** Goodput in bytes per ms. */
  readonly bytesPerMs: number;
}

/** One all-reduce of `bytes` over `nodes` ranks (ms); 0 on one rank. */
export function allReduceMs(link: LinkModel, bytes: number, nodes: number): number {
  if (nodes < 2) return 0;
  return 2 * (nodes - 1) * link.alphaMs + ((2 * (nodes - 1)) / nodes) * (bytes / link.bytesPerMs);
}

/** The step time the model predicts: compute, and the buckets' communication where backward does not hide it. */
export function modelStepMs(profile: StepProfile, link: LinkModel, nodes: number): number {
  const total = profile.bucketBytes.reduce((a, b) => a + b, 0);
  const computeMs = profile.forwardMs + profile.backwardMs;
  let done = 0;
  let cumulative = 0;
  for (const bytes of profile.bucketBytes) {
    cumulative += bytes;
    const ready = profile.forwardMs + (profile.backwardMs * cumulative) / (total || 1);
    done = Math.max(ready, done) + allReduceMs(link, bytes, nodes);
  }
  return Math.max(computeMs, done);
}

export interface CommSample {
  readonly nodes: number;
  readonly bytes: number;
  readonly ms: number;
}

/**
 * Least squares for α and 1/B over measured all-reduce times: ms = 2(N−1)·α + 2(N−1)/N·bytes·(1/B).
 * A negative α (noise at small sizes) is clamped to 0 and 1/B refitted.
 */
export function fitLink(samples: readonly CommSample[]): LinkModel {
  const rows = samples
    .filter((s) => s.nodes > 1)
    .map((s) => ({ a: 2 * (s.nodes - 1), b: ((2 * (s.nodes - 1)) / s.nodes) * s.bytes, y: s.ms }));
  if (rows.length === 0) throw new Error('fitLink: no all-reduce measured with 2 or more nodes');
  let saa = 0;
  let sab = 0;
  let sbb = 0;
  let say = 0;
  let sby = 0;
  for (const { a, b, y } of rows) {
    saa += a * a;
    sab += a * b;
    sbb += b * b;
    say += a * y;
    sby += b * y;
  }
  const det = saa * sbb - sab * sab;
  let alpha = det !== 0 ? (say * sbb - sby * sab) / det : 0;
  let inverse = det !== 0 ? (saa * sby - sab * say) / det : sby / sbb;
  if (alpha < 0 || !Number.isFinite(alpha)) {
    alpha = 0;
    inverse = sby / sbb;
  }
  return { alphaMs: alpha, bytesPerMs: 1 / inverse };
}

export interface ScalingPoint {
  readonly nodes: number;
  readonly stepMs: number;
  /** stepMs(1) / stepMs(N): the per-node batch is fixed, so this is the scaling efficiency. */
  readonly efficiency: number;
  /** N · efficiency: how much faster N nodes go through the data than one. */
  readonly ratio: number;
}

export function scalingPoint(nodes: number, stepMs: number, oneNodeStepMs: number): ScalingPoint {
  const efficiency = oneNodeStepMs / stepMs;
  return { nodes, stepMs, efficiency, ratio: nodes * efficiency };
}

/** PaddleSeg's published ratios (docs/train/distributed_train.md, 8 V100 per machine, time to train). */
export const PADDLESEG_RATIOS: ReadonlyArray<{ model: string; machines: number; ratio: number }> = [
  { model: 'PP-LiteSeg-T (STDC1)', machines: 4, ratio: 3.03 },
  { model: 'SegFormer-B0', machines: 3, ratio: 2.15 },
  { model: 'OCRNet-HRNetW18', machines: 3, ratio: 1.88 },
];

/** Per-step compute presets, with where they were measured. */
export const STEP_PRESETS: Readonly<Record<string, { ms: number; source: string }>> = {
  h200: {
    ms: 137,
    source:
      'segtrain on an NVIDIA H200 (Dawn/Vulkan), PP-LiteSeg-T 4×3×512×1024 forward + backward (FIELD-NOTES.md, 2026-12-04)',
  },
  'h200-pytorch': {
    ms: 48,
    source: 'PyTorch 2.11 fp32 on the same H200, same step (FIELD-NOTES.md, 2026-12-04)',
  },
};

/** Backward takes about twice the forward in these models; a --step-ms total is split so. */
export function splitStep(ms: number): { forwardMs: number; backwardMs: number } {
  return { forwardMs: ms / 3, backwardMs: (2 * ms) / 3 };
}
