import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { resizeConfig } from '../src/kernels/resize.js';
import { assertSameBitsWithout, checkOp, inputGradient, rand, testDevice } from '../src/testing/index.js';

type Size = [number, number];

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Source taps along one axis in float64 (Paddle/PyTorch conventions). */
function taps(dst: number, input: number, output: number, alignCorners: boolean): [number, number, number] {
  const src = alignCorners
    ? output > 1
      ? (dst * (input - 1)) / (output - 1)
      : 0
    : Math.max(((dst + 0.5) * input) / output - 0.5, 0);
  const i0 = Math.min(Math.floor(src), input - 1);
  const i1 = Math.min(i0 + 1, input - 1);
  return [i0, i1, src - i0];
}

function bilinearRef(shape: number[], [outH, outW]: Size, alignCorners: boolean) {
  const inH = shape[shape.length - 2] ?? 1;
  const inW = shape[shape.length - 1] ?? 1;
  const planes = shape.reduce((a, b) => a * b, 1) / (inH * inW);
  return ([x]: Float64Array[]) => {
    const xs = x as Float64Array;
    const out = new Float64Array(planes * outH * outW);
    for (let p = 0; p < planes; p++)
      for (let oy = 0; oy < outH; oy++) {
        const [y0, y1, ly] = taps(oy, inH, outH, alignCorners);
        for (let ox = 0; ox < outW; ox++) {
          const [x0, x1, lx] = taps(ox, inW, outW, alignCorners);
          const v = (yy: number, xx: number) => xs[(p * inH + yy) * inW + xx] ?? 0;
          const top = v(y0, x0) * (1 - lx) + v(y0, x1) * lx;
          const bottom = v(y1, x0) * (1 - lx) + v(y1, x1) * lx;
          out[(p * outH + oy) * outW + ox] = top * (1 - ly) + bottom * ly;
        }
      }
    return out;
  };
}

function nearestRef(shape: number[], [outH, outW]: Size) {
  const inH = shape[shape.length - 2] ?? 1;
  const inW = shape[shape.length - 1] ?? 1;
  const planes = shape.reduce((a, b) => a * b, 1) / (inH * inW);
  return ([x]: Float64Array[]) => {
    const xs = x as Float64Array;
    const out = new Float64Array(planes * outH * outW);
    for (let p = 0; p < planes; p++)
      for (let oy = 0; oy < outH; oy++)
        for (let ox = 0; ox < outW; ox++) {
          const sy = Math.min(Math.floor((oy * inH) / outH), inH - 1);
          const sx = Math.min(Math.floor((ox * inW) / outW), inW - 1);
          out[(p * outH + oy) * outW + ox] = xs[(p * inH + sy) * inW + sx] ?? 0;
        }
    return out;
  };
}

const bilinearCases: Array<[number[], Size]> = [
  [
    [1, 2, 3, 5],
    [7, 4],
  ], // up in H, down in W
  [
    [2, 1, 6, 7],
    [3, 3],
  ], // down both
  [
    [1, 1, 4, 4],
    [8, 8],
  ], // ×2 up
  [
    [1, 3, 5, 3],
    [2, 9],
  ],
  [
    [1, 2, 3, 3],
    [5, 5],
  ], // 3 → 5: a source coordinate lands exactly on an integer
  [
    [1, 1, 1, 3],
    [4, 5],
  ], // one input row
  [
    [2, 2, 5, 4],
    [1, 1],
  ], // one output pixel
  [
    [1, 2, 3, 4],
    [3, 4],
  ], // same size
  [
    [1, 1, 13, 2],
    [3, 11],
  ], // strong downsample / upsample
  [
    [3, 7, 6],
    [4, 9],
  ], // rank 3
  // Output widths that are multiples of 4 with at most 3 input columns per 4 outputs: 4 outputs
  // per invocation (bilinear-forward4).
  [
    [1, 2, 5, 3],
    [6, 12],
  ], // ×4 in W, the last window clamped at the edge
  [
    [2, 1, 4, 5],
    [9, 8],
  ], // ratio 5/8 (half-pixel 0.625; aligned 4/7)
  [
    [1, 2, 3, 7],
    [2, 28],
  ], // ×4 in W, down in H
  [
    [1, 1, 5, 4],
    [3, 4],
  ], // the same width: one column per output
  [
    [1, 3, 2, 6],
    [5, 8],
  ], // ratio 6/8: exactly at the limit (not aligned; aligned 5/7 is within)
  // Input widths that are multiples of 4: the backward's pass x takes 4 input columns a lane.
  [
    [2, 2, 3, 8],
    [5, 64],
  ], // ×8 in W, as the segmentation heads' logits
  [
    [1, 2, 4, 12],
    [3, 5],
  ], // down in W: 4 columns whose reaches barely overlap
  // Upsampling along y with 4 outputs a lane: two passes (rows along x, then columns along y), each
  // lane walking a strip of 8 rows.
  [
    [1, 2, 4, 6],
    [4, 8],
  ], // equal heights: the row pass alone, into the output
  [
    [1, 2, 3, 8],
    [19, 8],
  ], // equal widths: the column pass alone, 3 strips, the last 3 rows
  [
    [1, 1, 10, 4],
    [21, 12],
  ], // both passes, input rows in 2 strips, output rows in 3
];

describe('resizeBilinear', () => {
  for (const alignCorners of [false, true]) {
    for (const [shape, size] of bilinearCases) {
      const name = `[${shape}] → [${size}] alignCorners ${alignCorners}`;
      it(name, () =>
        checkOp({
          name,
          inputs: [{ shape }],
          gpu: ([x]) => T.resizeBilinear(x as T.Tensor, size, { alignCorners }),
          ref: bilinearRef(shape, size, alignCorners),
        }),
      );
    }
  }
});

describe('resizeBilinear forward, 4 outputs a lane', () => {
  it('gives the bits of the one-output kernel (×8 up in two passes, down in one, equal widths)', async () => {
    const device = await testDevice();
    const cases: Array<[number[], Size]> = [
      [
        [4, 7, 8, 16],
        [64, 128],
      ],
      [
        [2, 5, 24, 16],
        [12, 64],
      ],
      [
        [2, 3, 9, 32],
        [30, 32],
      ],
    ];
    const inputs = cases.map(([shape], i) => T.tensor(device, rand(product(shape), 50 + i, -1, 1), shape));
    const resizeAll = (alignCorners: boolean) =>
      Promise.all(
        cases.map(async ([, size], i) => {
          const out = T.resizeBilinear(inputs[i] as T.Tensor, size, { alignCorners });
          const values = await out.data();
          out.dispose();
          return values;
        }),
      );
    for (const alignCorners of [false, true])
      await assertSameBitsWithout(
        (on) => {
          resizeConfig.vec4 = on;
        },
        () => resizeAll(alignCorners),
        cases.map(([shape, size]) => `[${shape}] → [${size}], alignCorners ${alignCorners}`),
        '4 outputs vs 1 a lane',
      );
    for (const t of inputs) t.dispose();
  });
});

describe('resizeBilinear backward, 4 input columns a lane', () => {
  it('gives the bits of the one-column pass (×8 up, 7 planes of 8×16 → 64×128, both corner modes)', async () => {
    const device = await testDevice();
    const shape = [4, 7, 8, 16];
    const upstream = T.tensor(device, rand(4 * 7 * 64 * 128, 41, -1, 1), [4, 7, 64, 128]);
    for (const alignCorners of [false, true]) {
      const resize = (x: T.Tensor) => T.resizeBilinear(x, [64, 128], { alignCorners });
      const [four = []] = await assertSameBitsWithout(
        (on) => {
          resizeConfig.vec4 = on;
        },
        async () => [await inputGradient(device, shape, 42, resize, upstream)],
        [`bilinear gradient, alignCorners ${alignCorners}`],
        '4 columns vs 1 a lane',
      );
      assert.ok(Array.from(four).some((v) => v !== 0));
    }
    upstream.dispose();
  });
});

describe('resizeNearest', () => {
  const cases: Array<[number[], Size]> = [
    [
      [1, 2, 5, 7],
      [3, 4],
    ],
    [
      [1, 1, 5, 7],
      [9, 11],
    ],
    [
      [2, 1, 3, 3],
      [7, 2],
    ],
    [
      [1, 1, 6, 9],
      [4, 6],
    ],
    [
      [1, 1, 6, 9],
      [9, 6],
    ], // in/out not representable: integer arithmetic keeps floor exact
  ];
  for (const [shape, size] of cases) {
    const name = `[${shape}] → [${size}]`;
    it(name, () =>
      checkOp({
        name,
        inputs: [{ shape }],
        gpu: ([x]) => T.resizeNearest(x as T.Tensor, size),
        ref: nearestRef(shape, size),
      }),
    );
  }

  it('copies i32 label maps exactly', async () => {
    const device = await testDevice();
    const shape = [1, 5, 7];
    const labels = Array.from({ length: 35 }, (_, i) => (i % 4 === 3 ? 255 : (i * 7) % 19));
    const x = T.tensor(device, labels, shape, 'i32');
    const y = T.resizeNearest(x, [8, 3]);
    assert.equal(y.dtype, 'i32');
    const got = await y.data();
    assert.deepEqual([...got], [...nearestRef(shape, [8, 3])([Float64Array.from(labels)])]);
    x.dispose();
    y.dispose();
  });
});

describe('resize memory', () => {
  it('releases its temporaries', async () => {
    const device = await testDevice();
    const before = T.liveTensorCount();
    const x = T.parameter(
      device,
      Array.from({ length: 60 }, (_, i) => i / 60),
      [1, 3, 4, 5],
    );
    T.tidy(() => {
      T.backward(T.sum(T.resizeNearest(T.resizeBilinear(x, [9, 7]), [2, 3])));
    });
    assert.ok(x.grad);
    await device.sync();
    x.dispose();
    assert.equal(T.liveTensorCount(), before);
  });
});
