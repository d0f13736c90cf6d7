/** GPU op checks: forward against a float64 reference, every gradient against finite differences. */
import assert from 'node:assert/strict';
import {
  backward,
  type Device,
  getDevice,
  mul,
  parameter,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '../index.js';
import { assertClose, rand } from './numeric.js';

export type Ref = (inputs: Float64Array[]) => Float64Array;

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
  /** The op under test (a loss may resolve asynchronously). */
  readonly gpu: (inputs: Tensor[]) => Tensor | Promise<Tensor>;
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
    const out = await c.gpu(inputs);
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

/**
 * The gradient that `op`'s backward gives its input x (seeded values of `shape`) under the upstream
 * gradient `upstream`: d Σ op(x)·upstream / dx.
 */
export async function inputGradient(
  device: Device,
  shape: readonly number[],
  seed: number,
  op: (x: Tensor) => Tensor,
  upstream: Tensor,
): Promise<ArrayLike<number>> {
  const x = parameter(
    device,
    rand(
      shape.reduce((a, b) => a * b, 1),
      seed,
      -1,
      1,
    ),
    [...shape],
  );
  backward(sum(mul(op(x), upstream)));
  const values = await (x.grad as Tensor).data();
  x.dispose();
  return values;
}
