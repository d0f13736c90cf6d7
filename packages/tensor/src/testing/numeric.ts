/** Seeded values, float64 comparisons with a magnitude-scaled floor, and float64 oracles. */
import assert from 'node:assert/strict';
import { Rng } from '../rng.js';

/** Seeded uniform values in [lo, hi) (the engine's mulberry32 `Rng`). */
export function rand(size: number, seed: number, lo = -1, hi = 1): Float64Array {
  return new Rng(seed).uniformArray(size, lo, hi);
}

/**
 * |got − expected| ≤ rtol·(|expected| + max|expected|): relative, with a floor scaled to the tensor's
 * magnitude so values near zero do not demand impossible float32 precision. Reports the first
 * mismatching index, got, expected and the max/mean error.
 */
export function assertClose(
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  label: string,
): void {
  assert.equal(got.length, expected.length, `${label}: length ${got.length} vs expected ${expected.length}`);
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(expected[i] ?? 0));
  let first = -1;
  let maxErr = 0;
  let sumErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] ?? 0;
    const g = got[i] ?? 0;
    const err = Math.abs(g - e) / (Math.abs(e) + maxAbs + 1e-12);
    if (!(err <= rtol) && first < 0) first = i;
    if (Number.isNaN(err)) maxErr = Number.NaN;
    else maxErr = Math.max(maxErr, err);
    sumErr += Number.isNaN(err) ? 0 : err;
  }
  if (first >= 0) {
    assert.fail(
      `${label}: mismatch at index ${first}: got ${got[first]}, expected ${expected[first]} ` +
        `(max rel err ${maxErr.toExponential(2)}, mean ${(sumErr / expected.length).toExponential(2)}, tolerance ${rtol})`,
    );
  }
}

/**
 * Exactly the same values (two runs that must agree bit for bit); names the first difference,
 * which `assert.deepEqual` would bury in a diff of the whole array.
 */
export function assertSameValues(got: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  assert.equal(got.length, expected.length, `${label}: length ${got.length} vs ${expected.length}`);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], expected[i]))
      assert.fail(`${label}: differs at index ${i}: ${got[i]} vs ${expected[i]}`);
  }
}

/**
 * Runs `run` with a kernel path on, then with `set(false)` (switched back on after, also when `run`
 * throws), and asserts that each result array (named by `names`) has the same bits both ways.
 * Returns the results with the path on.
 */
export async function assertSameBitsWithout(
  set: (on: boolean) => void,
  run: () => Promise<readonly ArrayLike<number>[]>,
  names: readonly string[],
  label: string,
): Promise<readonly ArrayLike<number>[]> {
  const on = await run();
  set(false);
  const off = await run().finally(() => set(true));
  names.forEach((name, k) => {
    assertSameValues(on[k] ?? [], off[k] ?? [], `${name}, ${label}`);
  });
  return on;
}

/** Index helpers for references: strides of a row-major shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = (s[i + 1] ?? 1) * (shape[i + 1] ?? 1);
  return s;
}

/** erf in float64 by its Maclaurin series (|x| ≤ 5; beyond, erf is ±1 to 1.5e-12): the GELU oracle. */
export function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax > 5) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
    term *= (-ax * ax) / n;
    sum += term / (2 * n + 1);
  }
  return (Math.sign(x) * 2 * sum) / Math.sqrt(Math.PI);
}
