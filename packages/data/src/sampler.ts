import { SeededRandom } from './random.js';
import { shuffle } from './transforms/pymath.js';

/** What the loader needs from a sampler: the batches (dataset indices) of one epoch. */
export interface BatchSampler {
  /** Batches per epoch. */
  readonly length: number;
  setEpoch(epoch: number): void;
  batches(): number[][];
}

export interface DistributedBatchSamplerOptions {
  /** Dataset size N. */
  size: number;
  /** Per-rank batch size. */
  batchSize: number;
  rank?: number;
  worldSize?: number;
  shuffle: boolean;
  dropLast: boolean;
  seed?: number;
}

// Distinct stream tag so the shuffle never coincides with a per-sample stream sampleRandom(seed, e, i).
const SHUFFLE_STREAM = 0x5348_5546;

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min)
    throw new RangeError(`DistributedBatchSampler: ${name} must be an integer ≥ ${min}, got ${v}`);
}

/**
 * Paddle's `DistributedBatchSampler`: indices 0…N−1 padded by repeating the head to
 * ceil(N/world)·world, permuted per epoch (the same permutation on every rank), then rank r takes
 * per round the contiguous slice [r·bs + k·bs·world, … + bs) and an equal share of the tail; with
 * dropLast the per-rank incomplete batch is dropped. Every rank gets the same number of batches.
 *
 * The permutation comes from this package's PRNG seeded by (seed, epoch), not numpy's
 * `RandomState(epoch)`: orders differ from PaddleSeg's (they only matter together with the
 * augmentation streams, which differ anyway), and they follow `seed`.
 */
export class DistributedBatchSampler implements BatchSampler {
  readonly size: number;
  readonly batchSize: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly seed: number;
  /** Samples per rank and epoch, ceil(N / world). */
  readonly numSamples: number;
  /** The padded index count, numSamples · world. */
  readonly totalSize: number;
  private currentEpoch = 0;

  constructor(options: DistributedBatchSamplerOptions) {
    const { size, batchSize, rank = 0, worldSize = 1, shuffle, dropLast, seed = 0 } = options;
    checkInt('size', size, 1);
    checkInt('batchSize', batchSize, 1);
    checkInt('worldSize', worldSize, 1);
    checkInt('rank', rank, 0);
    if (rank >= worldSize)
      throw new RangeError(`DistributedBatchSampler: rank ${rank} is not below worldSize ${worldSize}`);
    this.size = size;
    this.batchSize = batchSize;
    this.rank = rank;
    this.worldSize = worldSize;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.seed = seed;
    this.numSamples = Math.ceil(size / worldSize);
    this.totalSize = this.numSamples * worldSize;
    if (dropLast && this.numSamples < batchSize) {
      // PaddleSeg #3499: zero batches per epoch, and the iteration loop spins forever without a word.
      throw new RangeError(
        `the dataset has ${size} samples; split over ${worldSize} rank(s) each rank gets ${this.numSamples}, ` +
          `fewer than batch_size ${batchSize}, so with drop_last every epoch would be empty and training ` +
          `would hang — use batch_size ≤ ${this.numSamples}, fewer GPUs/ranks, or more training data`,
      );
    }
  }

  /** Batches per epoch and rank. */
  get length(): number {
    return this.dropLast
      ? Math.floor(this.numSamples / this.batchSize)
      : Math.ceil(this.numSamples / this.batchSize);
  }

  get epoch(): number {
    return this.currentEpoch;
  }

  /** Selects the permutation: `epoch` is the 0-based pass counter (Paddle's sampler counts passes from 0). */
  setEpoch(epoch: number): void {
    checkInt('epoch', epoch, 0);
    this.currentEpoch = epoch;
  }

  /** The padded and (optionally) shuffled global index list of the current epoch, before sharding. */
  globalIndices(): number[] {
    const indices = new Array<number>(this.totalSize);
    // Cyclic head repetition; equals Paddle's `indices += indices[:total - N]` whenever N ≥ world.
    for (let i = 0; i < this.totalSize; i++) indices[i] = i % this.size;
    if (this.shuffle) shuffle(indices, new SeededRandom(SHUFFLE_STREAM, this.seed, this.currentEpoch));
    return indices;
  }

  /** This rank's indices of the current epoch, in order (numSamples of them). */
  rankIndices(): number[] {
    const indices = this.globalIndices();
    const bs = this.batchSize;
    const world = this.worldSize;
    const lastBatch = this.totalSize % (bs * world);
    const lastLocal = lastBatch / world;
    const out: number[] = [];
    for (let i = this.rank * bs; i < this.totalSize - lastBatch; i += bs * world) {
      for (let k = i; k < i + bs; k++) out.push(indices[k] as number);
    }
    const tail = this.totalSize - lastBatch;
    for (let k = tail + this.rank * lastLocal; k < tail + (this.rank + 1) * lastLocal; k++)
      out.push(indices[k] as number);
    return out;
  }

  /** This rank's batches of the current epoch. */
  batches(): number[][] {
    const mine = this.rankIndices();
    const out: number[][] = [];
    for (let i = 0; i < mine.length; i += this.batchSize) {
      const b = mine.slice(i, i + this.batchSize);
      if (b.length === this.batchSize || !this.dropLast) out.push(b);
    }
    return out;
  }
}
