import { buildModel, type ComponentConfig } from '@segtrain/models';
import { seedInitializers } from '@segtrain/nn';
import * as T from '@segtrain/tensor';
import { medianMs, type Row } from './timing.js';

/** A seed model: its PaddleSeg `model` block (no pretrained weights), as the seed configs write it. */
export interface SeedModel {
  readonly name: string;
  readonly config: ComponentConfig;
}

export const NUM_CLASSES = 19;

/** The three seed configs' model blocks (configs/{pp_liteseg,ocrnet,segformer}), pretrained dropped. */
export const SEED_MODELS: readonly SeedModel[] = [
  {
    name: 'PP-LiteSeg-T (STDC1)',
    config: {
      type: 'PPLiteSeg',
      num_classes: NUM_CLASSES,
      backbone: { type: 'STDC1' },
      arm_out_chs: [32, 64, 128],
      seg_head_inter_chs: [32, 64, 64],
    },
  },
  {
    name: 'OCRNet (HRNet-W18)',
    config: {
      type: 'OCRNet',
      num_classes: NUM_CLASSES,
      backbone_indices: [0],
      backbone: { type: 'HRNet_W18' },
    },
  },
  {
    name: 'SegFormer-B0',
    config: {
      type: 'SegFormer',
      num_classes: NUM_CLASSES,
      embedding_dim: 256,
      backbone: { type: 'MixVisionTransformer_B0' },
    },
  },
];

/** Input shape [N, C, H, W]: the 2×3×256×512, or 1×3×64×128 for `--quick`. */
export function inputShape(quick: boolean): [number, number, number, number] {
  return quick ? [1, 3, 64, 128] : [2, 3, 256, 512];
}

/** GFLOP of one n×n×n GEMM (2n³). */
export function gemmGflop(n: number): number {
  return (2 * n ** 3) / 1e9;
}

/** Deterministic xorshift32 stream; `next()` is uniform in [0, 1). */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/** `size` floats uniform in [-scale, scale). */
export function randomImage(size: number, seed: number, scale = 1): Float32Array {
  const next = xorshift(seed);
  return Float32Array.from({ length: size }, () => (next() * 2 - 1) * scale);
}

/** `size` labels uniform in [0, classes) (no ignore pixels). */
export function randomLabels(size: number, classes: number, seed: number): Int32Array {
  const next = xorshift(seed);
  return Int32Array.from({ length: size }, () => Math.min(classes - 1, Math.floor(next() * classes)));
}

/** The training batch every model benchmark uses: a seeded random image and labels over NUM_CLASSES. */
export function syntheticBatch([n, c, h, w]: readonly number[]): { image: Float32Array; labels: Int32Array } {
  return {
    image: randomImage((n ?? 1) * (c ?? 1) * (h ?? 1) * (w ?? 1), 7),
    labels: randomLabels((n ?? 1) * (h ?? 1) * (w ?? 1), NUM_CLASSES, 8),
  };
}

export interface ModelBenchOptions {
  readonly reps: number;
  readonly quick: boolean;
  /** Another input shape [N, C, H, W] (e.g. the demo's 4×3×64×128); overrides `quick`. */
  readonly input?: readonly [number, number, number, number];
  /** Only these seed models (by name); all when absent. */
  readonly models?: readonly SeedModel[];
  /** Also profile one more step: the ten kernels with the most GPU time (needs timestamp-query). */
  readonly profile?: boolean;
}

/** Kernels listed per profiled step. */
export const PROFILE_TOP = 10;

/** The seed models whose name contains one of `filters` (case-insensitive); an error lists the names when none does. */
export function selectModels(filters: readonly string[]): SeedModel[] {
  const wanted = filters.map((f) => f.toLowerCase());
  const chosen = SEED_MODELS.filter((m) => wanted.some((f) => m.name.toLowerCase().includes(f)));
  if (chosen.length === 0)
    throw new Error(
      `--models ${filters.join(',')} matches none of: ${SEED_MODELS.map((m) => m.name).join(', ')}`,
    );
  return chosen;
}

/** Median ms of one n³ GEMM (inputs resident, waiting for the queue to drain). */
export async function timeGemm(device: T.Device, n: number, reps: number): Promise<number> {
  const a = T.tensor(device, randomImage(n * n, 1, 0.1), [n, n]).keep();
  const b = T.tensor(device, randomImage(n * n, 2, 0.1), [n, n]).keep();
  try {
    return await medianMs(
      async () => {
        T.matmul(a, b).dispose();
        await device.sync();
      },
      reps,
      device,
    );
  } finally {
    a.dispose();
    b.dispose();
  }
}

const GEMM_N = 1024;

/**
 * Per seed model: build it (seeded init), then time one training step — forward in train mode,
 * Σ softmax CE over every output (main and auxiliary heads), backward, no optimizer — as the median
 * of `reps` runs after one warm-up. A GEMM 1024³ is timed just before each model, in the same run,
 * so every row carries the machine's GEMM rate at that moment (the machine is shared and noisy).
 */
export async function runModelBench(
  device: T.Device,
  o: ModelBenchOptions,
  log: (line: string) => void,
): Promise<Row[]> {
  const [n, c, h, w] = o.input ?? inputShape(o.quick);
  const batch = syntheticBatch([n, c, h, w]);
  const x = T.tensor(device, batch.image, [n, c, h, w]);
  const y = T.tensor(device, batch.labels, [n, h, w], 'i32');
  const rows: Row[] = [];
  try {
    for (const seed of o.models ?? SEED_MODELS) {
      const gemmMs = await timeGemm(device, GEMM_N, o.reps);
      const gemmGflops = (gemmGflop(GEMM_N) * 1000) / gemmMs;
      seedInitializers(1);
      const model = buildModel(device, seed.config);
      model.train();
      const params = model.parameters();
      const paramCount = model.parameterCount();
      const step = async () => {
        T.tidy(() => {
          const outs = model.forward(x);
          const losses = outs.map((logits) => T.softmaxCrossEntropy(logits, y, {}));
          const loss = losses.slice(1).reduce((acc, l) => T.add(acc, l), losses[0] as T.Tensor);
          T.backward(loss);
        });
        // No optimizer: drop the gradients so every step computes them afresh (no accumulation).
        for (const p of params) {
          p.grad?.dispose();
          p.grad = null;
        }
        await device.sync();
      };
      let ms: number;
      let topKernels: Row['topKernels'];
      try {
        ms = await medianMs(step, o.reps, device);
        if (o.profile) {
          device.startProfile();
          await step();
          topKernels = (await device.stopProfile()).slice(0, PROFILE_TOP);
        }
      } finally {
        model.dispose();
      }
      const row: Row = {
        name: seed.name,
        gflop: 0,
        images: n,
        oursMs: ms,
        theirsMs: null,
        params: paramCount,
        gemmGflops,
        ...(topKernels ? { topKernels } : {}),
      };
      log(
        `${seed.name}: ${ms.toFixed(1)} ms/step, ${((n * 1000) / ms).toFixed(2)} img/s, ` +
          `${paramCount.toLocaleString('en-US')} params; GEMM ${GEMM_N}³ ${gemmGflops.toFixed(2)} GFLOP/s`,
      );
      rows.push(row);
    }
  } finally {
    x.dispose();
    y.dispose();
  }
  return rows;
}
