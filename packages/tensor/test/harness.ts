import assert from 'node:assert/strict';
import { backward, type Device, getDevice, parameter, type Tensor, tensor, tidy } from '../src/index.js';

export type Ref = (inputs: Float64Array[]) => Float64Array;

/** Deterministic uniform values in [lo, hi) (mulberry32). */
export function rand(size: number, seed: number, lo = -1, hi = 1): Float64Array {
  let a = seed >>> 0;
  const out = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
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

export interface InputSpec {
  readonly shape: readonly number[];
  /** Values; default: seeded uniform [-1, 1). */
  readonly data?: ArrayLike<number>;
  /** Whether to check this input's gradient (default true). */
  readonly grad?: boolean;
  readonly dtype?: 'f32' | 'i32';
}

export interface OpCase {
  readonly name: string;
  readonly inputs: readonly InputSpec[];
  readonly gpu: (inputs: Tensor[]) => Tensor;
  readonly ref: Ref;
  readonly forwardTol?: number;
  readonly gradTol?: number;
  /** Finite-difference step (float64 reference, so small is fine). */
  readonly eps?: number;
  readonly seed?: number;
}

let devicePromise: Promise<Device> | undefined;
export function testDevice(): Promise<Device> {
  devicePromise ??= getDevice();
  return devicePromise;
}

/**
 * Forward vs the float64 reference, then every gradient (of L = Σ w·op(x) for seeded weights w)
 * vs central finite differences of L through the reference.
 */
export async function checkOp(c: OpCase): Promise<void> {
  const device = await testDevice();
  const seed = c.seed ?? 1;
  const values = c.inputs.map((spec, i) =>
    spec.data
      ? Float64Array.from(spec.data)
      : rand(
          spec.shape.reduce((a, b) => a * b, 1),
          seed * 97 + i,
        ),
  );
  const expected = c.ref(values);
  const weights = rand(expected.length, seed * 31 + 7);
  const inputs = c.inputs.map((spec, i) => {
    const data = values[i] as Float64Array;
    if (spec.dtype === 'i32' || spec.grad === false)
      return tensor(device, data, spec.shape, spec.dtype ?? 'f32');
    return parameter(device, data, spec.shape, `${c.name}-input-${i}`);
  });
  const grads = await (async () => {
    const out = c.gpu(inputs);
    const got = await out.data();
    assertClose(got, expected, c.forwardTol ?? 1e-4, `${c.name} forward`);
    if (!c.inputs.some((spec) => spec.grad !== false && spec.dtype !== 'i32')) {
      out.dispose();
      return [];
    }
    const w = tensor(device, weights, out.shape);
    backward(out, { grad: w });
    w.dispose();
    out.dispose();
    return Promise.all(inputs.map((t) => (t.grad ? t.grad.data() : Promise.resolve(null))));
  })();
  for (let i = 0; i < c.inputs.length; i++) {
    const spec = c.inputs[i] as InputSpec;
    if (spec.grad === false || spec.dtype === 'i32') continue;
    const got = grads[i];
    assert.ok(got, `${c.name}: input ${i} got no gradient`);
    const x = values[i] as Float64Array;
    const numeric = new Float64Array(x.length);
    const eps = c.eps ?? 1e-6;
    const loss = (vals: Float64Array[]) => {
      const y = c.ref(vals);
      let s = 0;
      for (let k = 0; k < y.length; k++) s += (weights[k] ?? 0) * (y[k] ?? 0);
      return s;
    };
    for (let k = 0; k < x.length; k++) {
      const saved = x[k] ?? 0;
      x[k] = saved + eps;
      const plus = loss(values);
      x[k] = saved - eps;
      const minus = loss(values);
      x[k] = saved;
      numeric[k] = (plus - minus) / (2 * eps);
    }
    assertClose(got, numeric, c.gradTol ?? 1e-3, `${c.name} gradient of input ${i}`);
  }
  for (const t of inputs) t.dispose();
  tidy(() => undefined);
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
