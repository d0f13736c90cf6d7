import type { RandomSource } from './types.js';

/** 32-bit avalanche mix (lowbias32): decorrelates nearby seeds such as consecutive sample indices. */
function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A small, fast PRNG (sfc32) — the data pipeline's only source of randomness. */
export class SeededRandom implements RandomSource {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(...seeds: readonly number[]) {
    let h = 0x9e3779b9;
    for (const s of seeds) h = mix32(h ^ mix32(Math.floor(s) >>> 0) ^ Math.floor(s / 2 ** 32));
    this.a = mix32(h ^ 0x243f6a88);
    this.b = mix32(h ^ 0x85a308d3);
    this.c = mix32(h ^ 0x13198a2e);
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  next(): number {
    return this.nextUint32() / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

/**
 * The random stream of one sample: a pure function of (seed, epoch, index), so augmentation is the
 * same whichever worker decodes the sample, and a resumed run replays it exactly.
 */
export function sampleRandom(seed: number, epoch: number, index: number): SeededRandom {
  return new SeededRandom(seed, epoch, index);
}
