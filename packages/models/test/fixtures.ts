import { createOptimizer, type OptimizerConfig } from '@segtrain/nn';
import {
  add,
  argmax,
  backward,
  type Device,
  noGrad,
  softmaxCrossEntropy,
  type Tensor,
  tensor,
  tidy,
} from '@segtrain/tensor';
import { rand as rand64 } from '@segtrain/tensor/testing';
import type { SegModel } from '../src/index.js';

/** The shared seeded uniform values in [lo, hi), as float32 weights and inputs. */
export const rand = (size: number, seed: number, lo = -1, hi = 1): Float32Array =>
  Float32Array.from(rand64(size, seed, lo, hi));

/** A fixed batch: big class blocks (so a 1/8 head can resolve them), coloured per class, plus noise. */
export function blockBatch(n: number, h: number, w: number, classes: number) {
  const labels = new Int32Array(n * h * w);
  const image = new Float32Array(n * 3 * h * w);
  let s = 12345;
  const noise = () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return (s / 4294967296 - 0.5) * 0.8;
  };
  for (let b = 0; b < n; b++)
    for (let yy = 0; yy < h; yy++)
      for (let xx = 0; xx < w; xx++) {
        const cls = (Math.floor(yy / 16) * 3 + Math.floor(xx / 32) + b) % classes;
        labels[(b * h + yy) * w + xx] = cls;
        for (let c = 0; c < 3; c++)
          image[((b * 3 + c) * h + yy) * w + xx] = Math.cos(cls * 1.7 + c * 2.1) + noise();
      }
  return { labels, image };
}

/** Σ cross-entropy over every output of the model. */
export function totalLoss(model: SegModel, x: Tensor, y: Tensor): Tensor {
  const logits = model.forward(x);
  return logits
    .slice(1)
    .reduce(
      (acc, l) => add(acc, softmaxCrossEntropy(l, y, {})),
      softmaxCrossEntropy(logits[0] as Tensor, y, {}),
    );
}

/**
 * Trains on one fixed 64×128 batch (AdamW unless another optimizer block is given) and returns the
 * pixel accuracy of the main output in eval mode (BN on running statistics).
 */
export async function overfitAccuracy(
  device: Device,
  model: SegModel,
  classes: number,
  steps: number,
  lr: number,
  optimizerBlock: OptimizerConfig = { type: 'AdamW', weight_decay: 0.01 },
): Promise<number> {
  const { labels, image } = blockBatch(1, 64, 128, classes);
  const x = tensor(device, image, [1, 3, 64, 128]);
  const y = tensor(device, labels, [1, 64, 128], 'i32');
  const optimizer = createOptimizer(model.namedParameters(), optimizerBlock);
  model.train();
  for (let step = 1; step <= steps; step++) {
    tidy(() => backward(totalLoss(model, x, y)));
    optimizer.step(lr);
    optimizer.zeroGrad();
    // Waiting bounds the work in flight, as the trainer does (two steps). On lavapipe the process's
    // 4 KiB memfd mappings grew with the dispatches in flight and did not shrink afterwards, and a
    // process may have 65,530: ten unwaited OCRNet steps (44,000 dispatches) reached 45,000-50,000
    // and the process died (SIGSEGV in memset).
    if (step % 2 === 0) await device.sync();
  }
  model.eval();
  const predicted = (await noGrad(() =>
    tidy(() => argmax(model.forward(x)[0] as Tensor, 1)),
  ).data()) as Int32Array;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
  optimizer.dispose();
  x.dispose();
  y.dispose();
  return correct / labels.length;
}
