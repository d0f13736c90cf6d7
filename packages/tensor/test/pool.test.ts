import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { poolConfig } from '../src/kernels/pool.js';
import { adaptiveAvgPool2d, argmax, avgPool2d, maxPool2d } from '../src/ops/pool.js';
import { assertSameBitsWithout, checkOp, inputGradient, rand, testDevice } from '../src/testing/index.js';

interface P {
  k: number;
  s: number;
  p: number;
}

/** float64 pooling over [n, c, h, w]; `pick` folds a window's values. */
function poolRef(shape: number[], o: P, pick: (vals: number[]) => number) {
  const [n = 0, c = 0, h = 0, w = 0] = shape;
  const oh = Math.floor((h + 2 * o.p - o.k) / o.s) + 1;
  const ow = Math.floor((w + 2 * o.p - o.k) / o.s) + 1;
  return ([x]: Float64Array[]) => {
    const out: number[] = [];
    for (let pl = 0; pl < n * c; pl++)
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++) {
          const vals: number[] = [];
          for (let dy = 0; dy < o.k; dy++)
            for (let dx = 0; dx < o.k; dx++) {
              const iy = y * o.s - o.p + dy;
              const ix = xx * o.s - o.p + dx;
              if (iy >= 0 && iy < h && ix >= 0 && ix < w) vals.push(x?.[pl * h * w + iy * w + ix] ?? 0);
            }
          out.push(pick(vals));
        }
    return Float64Array.from(out);
  };
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

describe('avg pool backward, 4 input columns a lane', () => {
  it("gives the bits of the one-column kernel (STDC's 3x3 stride 2 pad 1, exclusive and inclusive)", async () => {
    const device = await testDevice();
    const shape = [4, 24, 16, 32];
    const upstream = T.tensor(device, rand(4 * 24 * 8 * 16, 51, -1, 1), [4, 24, 8, 16]);
    for (const exclusive of [true, false]) {
      const pool = (x: T.Tensor) => avgPool2d(x, { kernel: 3, stride: 2, padding: 1, exclusive });
      const [four = []] = await assertSameBitsWithout(
        (on) => {
          poolConfig.vec4 = on;
        },
        async () => [await inputGradient(device, shape, 52, pool, upstream)],
        [`avg pool gradient, exclusive ${exclusive}`],
        '4 columns vs 1 a lane',
      );
      assert.ok(Array.from(four).some((v) => v !== 0));
    }
    upstream.dispose();
  });
});

describe('pooling', () => {
  const cases: Array<[number[], P]> = [
    [[2, 3, 7, 9], { k: 3, s: 2, p: 1 }],
    [[1, 2, 6, 6], { k: 2, s: 2, p: 0 }],
    [[1, 1, 5, 8], { k: 3, s: 1, p: 1 }],
    // Widths that are multiples of 4: the avg backward takes 4 input columns a lane.
    [[2, 2, 7, 12], { k: 3, s: 2, p: 1 }],
    [[1, 2, 4, 8], { k: 5, s: 3, p: 2 }],
  ];
  for (const [shape, o] of cases) {
    it(`avg exclusive [${shape}] k${o.k} s${o.s} p${o.p}`, () =>
      checkOp({
        name: 'avg_pool',
        inputs: [{ shape }],
        gpu: ([x]) => avgPool2d(x as T.Tensor, { kernel: o.k, stride: o.s, padding: o.p }),
        ref: poolRef(shape, o, mean),
      }));
    it(`avg inclusive [${shape}] k${o.k} s${o.s} p${o.p}`, () =>
      checkOp({
        name: 'avg_pool inclusive',
        inputs: [{ shape }],
        gpu: ([x]) => avgPool2d(x as T.Tensor, { kernel: o.k, stride: o.s, padding: o.p, exclusive: false }),
        ref: poolRef(shape, o, (v) => v.reduce((a, b) => a + b, 0) / (o.k * o.k)),
      }));
    it(`max [${shape}] k${o.k} s${o.s} p${o.p}`, () =>
      checkOp({
        name: 'max_pool',
        inputs: [{ shape }],
        gpu: ([x]) => maxPool2d(x as T.Tensor, { kernel: o.k, stride: o.s, padding: o.p }),
        ref: poolRef(shape, o, (v) => Math.max(...v)),
      }));
  }

  // [binsH, binsW]; the last two are not square, so a swapped bin count fails.
  for (const [shape, [bh, bw]] of [
    [
      [2, 2, 7, 9],
      [4, 4],
    ],
    [
      [1, 3, 5, 5],
      [2, 2],
    ],
    [
      [1, 2, 4, 6],
      [1, 1],
    ],
    [
      [1, 1, 3, 5],
      [4, 4],
    ],
    [
      [2, 2, 7, 9],
      [3, 5],
    ],
    [
      [1, 2, 6, 4],
      [4, 3],
    ],
  ] as Array<[number[], [number, number]]>) {
    it(`adaptive avg [${shape}] -> ${bh}x${bw}`, () =>
      checkOp({
        name: 'adaptive_avg_pool',
        inputs: [{ shape }],
        gpu: ([x]) => adaptiveAvgPool2d(x as T.Tensor, [bh, bw]),
        ref: ([x]) => {
          const [n = 0, c = 0, h = 0, w = 0] = shape;
          const out: number[] = [];
          for (let pl = 0; pl < n * c; pl++)
            for (let i = 0; i < bh; i++)
              for (let j = 0; j < bw; j++) {
                const vals: number[] = [];
                for (let y = Math.floor((i * h) / bh); y < Math.ceil(((i + 1) * h) / bh); y++)
                  for (let xx = Math.floor((j * w) / bw); xx < Math.ceil(((j + 1) * w) / bw); xx++)
                    vals.push(x?.[pl * h * w + y * w + xx] ?? 0);
                out.push(mean(vals));
              }
          return Float64Array.from(out);
        },
      }));
  }

  it('argmax over channels (first maximum wins) and errors', async () => {
    const device = await testDevice();
    const data = rand(2 * 5 * 3 * 4, 9);
    data[0] = 5;
    data[12] = 5; // tie at channel 0 and 1 for pixel 0 of sample 0
    const x = T.tensor(device, data, [2, 5, 3, 4]);
    const got = await argmax(x, 1).data();
    for (let n = 0; n < 2; n++)
      for (let p = 0; p < 12; p++) {
        let best = 0;
        for (let c = 1; c < 5; c++)
          if ((data[n * 60 + c * 12 + p] ?? 0) > (data[n * 60 + best * 12 + p] ?? 0)) best = c;
        assert.equal(got[n * 12 + p], best, `pixel ${n}/${p}`);
      }
    assert.throws(
      () => maxPool2d(x, { kernel: 9 }),
      /max_pool2d: kernel 9x9 with padding 0,0 does not fit input \[2, 5, 3, 4\]/,
    );
    T.tidy(() => undefined);
    x.dispose();
  });
});
