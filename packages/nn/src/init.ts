/** Seeded random initialisers matching Paddle's defaults (values generated on the CPU, once). */
import { Rng } from '@segtrain/tensor';

export { Rng };

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
