import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { assertClose, checkOp, testDevice } from '../src/testing/index.js';

type Shape4 = readonly [number, number, number, number];

/** float64 [N, 2k, H, W]: per input, the mean then the maximum over its channels. */
function meanMaxRef(xs: Float64Array[], shapes: readonly Shape4[]): Float64Array {
  const [n, , h, w] = shapes[0] as Shape4;
  const hw = h * w;
  const k = shapes.length;
  const out = new Float64Array(n * 2 * k * hw);
  shapes.forEach(([, c], i) => {
    const x = xs[i] as Float64Array;
    for (let img = 0; img < n; img++)
      for (let p = 0; p < hw; p++) {
        let total = 0;
        let top = -Infinity;
        for (let ch = 0; ch < c; ch++) {
          const v = x[(img * c + ch) * hw + p] ?? 0;
          total += v;
          top = Math.max(top, v);
        }
        out[(img * 2 * k + 2 * i) * hw + p] = total / c;
        out[(img * 2 * k + 2 * i + 1) * hw + p] = top;
      }
  });
  return out;
}

/** float64 x·α + y·(s − α), α broadcast over channels. */
function blendRef([x, y, a, s]: Float64Array[], [n, c, h, w]: Shape4): Float64Array {
  const hw = h * w;
  const out = new Float64Array(n * c * hw);
  for (let img = 0; img < n; img++)
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < hw; p++) {
        const at = (img * c + ch) * hw + p;
        const alpha = a?.[img * hw + p] ?? 0;
        out[at] = (x?.[at] ?? 0) * alpha + (y?.[at] ?? 0) * ((s?.[0] ?? 0) - alpha);
      }
  return out;
}

describe('meanMaxOverChannels: forward vs float64, backward vs finite differences', () => {
  const cases: Array<[string, Shape4[]]> = [
    [
      'two inputs, 5 and 3 channels, 3x4 (vec4 pixels)',
      [
        [2, 5, 3, 4],
        [2, 3, 3, 4],
      ],
    ],
    ['one input, 3x5 (one pixel a lane)', [[1, 4, 3, 5]]],
    [
      'three inputs of 2, 6 and 1 channels, 2x2',
      [
        [2, 2, 2, 2],
        [2, 6, 2, 2],
        [2, 1, 2, 2],
      ],
    ],
  ];
  for (const [name, shapes] of cases)
    it(name, () =>
      checkOp({
        name: `meanMaxOverChannels ${name}`,
        inputs: shapes.map((shape) => ({ shape })),
        gpu: (xs) => T.meanMaxOverChannels(xs),
        ref: (xs) => meanMaxRef(xs, shapes),
      }),
    );

  it('equals the concat of mean and max over channels, ties included (every tied channel gets the gradient)', async () => {
    const device = await testDevice();
    const shapes: Shape4[] = [
      [2, 3, 2, 4],
      [2, 2, 2, 4],
    ];
    // Whole numbers in [−2, 2]: many pixels have two or three channels tied for the maximum.
    const data = shapes.map((shape, i) =>
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, k) => ((k * 7 + i * 3) % 5) - 2),
    );
    const seed = Float32Array.from({ length: 2 * 4 * 8 }, (_, k) => Math.sin(k + 1));
    const run = async (fused: boolean) => {
      const xs = shapes.map((shape, i) => T.parameter(device, data[i] as Float32Array, shape));
      const y = fused
        ? T.meanMaxOverChannels(xs)
        : T.concat(
            xs.flatMap((x) => [T.mean(x, 1, true), T.max(x, 1, true)]),
            1,
          );
      T.backward(y, { grad: T.tensor(device, seed, [2, 4, 2, 4]) });
      const values = [await y.data(), ...(await Promise.all(xs.map((x) => (x.grad as T.Tensor).data())))];
      T.tidy(() => undefined);
      for (const t of [y, ...xs]) t.dispose();
      return values;
    };
    const [fused, composed] = [await run(true), await run(false)];
    assert.ok(composed.some((g, i) => i > 0 && g.some((v) => v !== 0)));
    fused.forEach((values, i) => {
      assertClose(values, composed[i] ?? [], 1e-6, i === 0 ? 'output' : `gradient of input ${i - 1}`);
    });
  });

  it('names the input whose N, H or W does not match', () => {
    return testDevice().then((device) => {
      const a = T.zeros(device, [2, 3, 4, 4]);
      const b = T.zeros(device, [2, 3, 4, 5]);
      assert.throws(
        () => T.meanMaxOverChannels([a, b]),
        /meanMaxOverChannels: xs\[1\] \[2, 3, 4, 5\] does not match xs\[0\] \[2, 3, 4, 4\] in N, H, W/,
      );
      assert.throws(() => T.meanMaxOverChannels([]), /needs at least one tensor/);
      a.dispose();
      b.dispose();
    });
  });
});

describe('blendByMap: forward vs float64, backward vs finite differences', () => {
  const cases: Array<[string, Shape4]> = [
    ['3 channels on 4x4 (vec4 pixels)', [2, 3, 4, 4]],
    ['2 channels on 3x5 (one pixel a lane)', [1, 2, 3, 5]],
  ];
  for (const [name, shape] of cases) {
    const [n, , h, w] = shape;
    it(`${name}, the scale's gradient too`, () =>
      checkOp({
        name: `blendByMap ${name}`,
        inputs: [{ shape }, { shape }, { shape: [n, 1, h, w] }, { shape: [1] }],
        gpu: ([x, y, a, s]) => T.blendByMap(x as T.Tensor, y as T.Tensor, a as T.Tensor, s as T.Tensor),
        ref: (inputs) => blendRef(inputs, shape),
      }));
  }

  it('a frozen scale (UAFM) gets no gradient', () =>
    checkOp({
      name: 'blendByMap frozen scale',
      inputs: [
        { shape: [2, 3, 2, 4] },
        { shape: [2, 3, 2, 4] },
        { shape: [2, 1, 2, 4] },
        { shape: [1], data: [1], grad: false },
      ],
      gpu: ([x, y, a, s]) => T.blendByMap(x as T.Tensor, y as T.Tensor, a as T.Tensor, s as T.Tensor),
      ref: (inputs) => blendRef(inputs, [2, 3, 2, 4]),
    }));

  it('names the operand of the wrong shape', async () => {
    const device = await testDevice();
    const x = T.zeros(device, [2, 3, 4, 4]);
    const a = T.zeros(device, [2, 3, 4, 4]);
    const s = T.zeros(device, [1]);
    assert.throws(
      () => T.blendByMap(x, x, a, s),
      /blendByMap: alpha \[2, 3, 4, 4\] must be \[2, 1, 4, 4\] \(one channel of x's map\)/,
    );
    const flat = T.zeros(device, [2, 3, 16]);
    assert.throws(
      () => T.blendByMap(x, flat, a, s),
      /blendByMap: y \[2, 3, 16\] must have x's shape \[2, 3, 4, 4\]/,
    );
    for (const t of [x, a, s, flat]) t.dispose();
  });
});
