/** Seeded random initialisers matching Paddle's defaults (values generated on the CPU, once). */
export class Rng {
  private state: number;
  private spare: number | null = null;

  constructor(seed = 42) {
    this.state = seed >>> 0 || 1;
  }

  /** Uniform in [0, 1) (mulberry32). */
  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** `size` uniform values in [lo, hi). */
  uniformArray(size: number, lo = -1, hi = 1): Float64Array {
    return Float64Array.from({ length: size }, () => lo + (hi - lo) * this.uniform());
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

let defaultRng = new Rng(42);

/** Seeds every initialiser that is not given its own generator. */
export function seedInitializers(seed: number): void {
  defaultRng = new Rng(seed);
}

export function currentRng(): Rng {
  return defaultRng;
}

export type Initializer = (shape: readonly number[], rng: Rng) => Float32Array;

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export function constant(value: number): Initializer {
  return (shape) => new Float32Array(sizeOf(shape)).fill(value);
}

export function normal(std: number, mean = 0): Initializer {
  return (shape, rng) => Float32Array.from({ length: sizeOf(shape) }, () => mean + std * rng.normal());
}

/** Normal truncated to ±2 std by resampling (the MiT encoder's trunc-normal 0.02). */
export function truncNormal(std: number): Initializer {
  return (shape, rng) =>
    Float32Array.from({ length: sizeOf(shape) }, () => {
      for (;;) {
        const v = rng.normal();
        if (Math.abs(v) <= 2) return v * std;
      }
    });
}

/** Paddle's default conv init: normal(0, √(2/fan_in)), fan_in = in_channels_per_weight · kh · kw (groups ignored as Paddle does). */
export const kaimingNormalFanIn: Initializer = (shape, rng) => {
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return normal(Math.sqrt(2 / fanIn))(shape, rng);
};

/** normal(0, √(2/fan_out)), fan_out = out·kh·kw / groups (SegFormer encoder convs). */
export function kaimingNormalFanOut(groups = 1): Initializer {
  return (shape, rng) => {
    const fanOut = ((shape[0] ?? 1) * (shape[2] ?? 1) * (shape[3] ?? 1)) / groups;
    return normal(Math.sqrt(2 / fanOut))(shape, rng);
  };
}

/** Xavier-uniform for a Paddle Linear weight [in, out]: U(±√(6/(in+out))). */
export const xavierUniform: Initializer = (shape, rng) => {
  const limit = Math.sqrt(6 / ((shape[0] ?? 1) + (shape[1] ?? 1)));
  return Float32Array.from({ length: sizeOf(shape) }, () => (rng.uniform() * 2 - 1) * limit);
};
