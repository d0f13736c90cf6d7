import { record } from '../autograd/engine.js';
import type { Device } from '../device/device.js';
import { maskedScaleKernel, uniformKernel } from '../kernels/random.js';
import { formatShape, type Tensor } from '../tensor.js';

let seedState = 0x2545f491;

/** Seeds the stream of dropout masks (same seed, same masks). */
export function manualSeed(seed: number): void {
  seedState = seed >>> 0 || 1;
}

/** The stream's position, for checkpoints: `manualSeed(randomState())` resumes it exactly. */
export function randomState(): number {
  return seedState;
}

/** The next 32-bit seed of the global stream (xorshift32). */
export function nextSeed(): number {
  let x = seedState;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  seedState = x >>> 0;
  return seedState;
}

export interface DropoutOptions {
  /** Off in eval mode: the input passes through unchanged. */
  readonly training: boolean;
  /** Mask seed; defaults to the next seed of the global stream. */
  readonly seed?: number;
}

function masked(name: string, x: Tensor, p: number, group: number, options: DropoutOptions): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`${name}: p must be in [0, 1), got ${p}`);
  if (!options.training || p === 0) return x;
  const seed = options.seed ?? nextSeed();
  const out = maskedScaleKernel(x.device, x, p, seed, group);
  // The mask is a function of (seed, index): backward recomputes it instead of saving it.
  return record(out, name, [x], [], (g) => [maskedScaleKernel(g.device, g, p, seed, group)]);
}

/** Elementwise dropout, scaled by 1/(1 − p) in training (Paddle's "upscale_in_train"). */
export function dropout(x: Tensor, p: number, options: DropoutOptions): Tensor {
  return masked('dropout', x, p, 1, options);
}

/** Drops whole channels of an NCHW tensor. */
export function dropout2d(x: Tensor, p: number, options: DropoutOptions): Tensor {
  if (x.rank !== 4) throw new Error(`dropout2d: expects NCHW, got ${formatShape(x.shape)}`);
  return masked('dropout2d', x, p, (x.shape[2] ?? 1) * (x.shape[3] ?? 1), options);
}

/** Stochastic depth: drops whole samples (the residual branch of a sample), scaled by 1/keep. */
export function dropPath(x: Tensor, p: number, options: DropoutOptions): Tensor {
  return masked('drop_path', x, p, x.size / (x.shape[0] ?? 1), options);
}

/** Seeded uniform noise on the GPU. */
export function randomUniform(
  device: Device,
  shape: readonly number[],
  lo = 0,
  hi = 1,
  seed = nextSeed(),
): Tensor {
  return uniformKernel(device, shape, seed, lo, hi);
}
