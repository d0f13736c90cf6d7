import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { pixelConfig } from '../src/kernels/softmax.js';
import { assertSameBitsWithout, checkOp, rand, testDevice } from '../src/testing/index.js';

function softmaxRef(shape: number[], axis: number) {
  const a = axis < 0 ? axis + shape.length : axis;
  const d = shape[a] ?? 1;
  const inner = shape.slice(a + 1).reduce((x, y) => x * y, 1);
  return ([x]: Float64Array[]) => {
    const xs = x as Float64Array;
    const out = new Float64Array(xs.length);
    for (let line = 0; line < xs.length / d; line++) {
      const base = Math.floor(line / inner) * d * inner + (line % inner);
      let m = -Infinity;
      for (let k = 0; k < d; k++) m = Math.max(m, xs[base + k * inner] ?? 0);
      let s = 0;
      for (let k = 0; k < d; k++) s += Math.exp((xs[base + k * inner] ?? 0) - m);
      for (let k = 0; k < d; k++) out[base + k * inner] = Math.exp((xs[base + k * inner] ?? 0) - m) / s;
    }
    return out;
  };
}

interface CeOptions {
  ignoreIndex?: number;
  classWeights?: number[];
  avgNonIgnore?: boolean;
}

/** PaddleSeg CrossEntropyLoss in float64: mean(w·CE·mask) / (mean(w·mask) + 1e-8). */
function ceRef(shape: number[], o: CeOptions) {
  const n = shape[0] ?? 1;
  const c = shape[1] ?? 1;
  const hw = shape.slice(2).reduce((x, y) => x * y, 1);
  const ignore = o.ignoreIndex ?? 255;
  const avgNonIgnore = o.avgNonIgnore ?? true;
  return ([x, labels]: Float64Array[]) => {
    const xs = x as Float64Array;
    let num = 0;
    let den = 0;
    for (let i = 0; i < n; i++)
      for (let p = 0; p < hw; p++) {
        const label = (labels as Float64Array)[i * hw + p] ?? 0;
        const at = (k: number) => xs[(i * c + k) * hw + p] ?? 0;
        if (label === ignore) {
          if (!avgNonIgnore && !o.classWeights) den += 1;
          continue;
        }
        let m = -Infinity;
        for (let k = 0; k < c; k++) m = Math.max(m, at(k));
        let s = 0;
        for (let k = 0; k < c; k++) s += Math.exp(at(k) - m);
        const w = o.classWeights?.[label] ?? 1;
        num += w * (m + Math.log(s) - at(label));
        den += w;
      }
    const pixels = n * hw;
    return Float64Array.of(num / pixels / (den / pixels + 1e-8));
  };
}

function trueProbRef(shape: number[], ignore: number) {
  const n = shape[0] ?? 1;
  const c = shape[1] ?? 1;
  const hw = shape.slice(2).reduce((x, y) => x * y, 1);
  return ([x, labels]: Float64Array[]) => {
    const out = new Float64Array(n * hw);
    for (let i = 0; i < n; i++)
      for (let p = 0; p < hw; p++) {
        const label = (labels as Float64Array)[i * hw + p] ?? 0;
        if (label === ignore) {
          out[i * hw + p] = 2;
          continue;
        }
        const at = (k: number) => (x as Float64Array)[(i * c + k) * hw + p] ?? 0;
        let s = 0;
        for (let k = 0; k < c; k++) s += Math.exp(at(k));
        out[i * hw + p] = Math.exp(at(label)) / s;
      }
    return out;
  };
}

/** Labels in [0, c), with roughly `ignoreShare` of them set to `ignore`. */
function makeLabels(count: number, c: number, seed: number, ignoreShare: number, ignore = 255): number[] {
  const r = rand(count, seed, 0, 1);
  const k = rand(count, seed + 1, 0, c);
  return Array.from(r, (v, i) => (v < ignoreShare ? ignore : Math.floor(k[i] ?? 0)));
}

describe('softmax', () => {
  const cases: Array<[number[], number]> = [
    [[3, 5], -1],
    [[2, 4, 3, 5], 1],
    [[4, 3, 2], 0],
    [[7], 0],
    [[2, 3, 1, 6], 3],
    [[1, 19, 2, 3], 1],
    // A workgroup per row: a few rows of at least 256 along the last axis (tails past the lanes).
    [[3, 300], -1],
    [[2, 2, 256], 2],
    [[1, 1000], 1],
  ];
  for (const [shape, axis] of cases) {
    const size = shape.reduce((a, b) => a * b, 1);
    it(`[${shape}] axis ${axis}`, () =>
      checkOp({
        name: `softmax [${shape}] axis ${axis}`,
        inputs: [{ shape, data: rand(size, 9, -4, 4) }],
        gpu: ([x]) => T.softmax(x as T.Tensor, axis),
        ref: softmaxRef(shape, axis),
      }));
  }
});

describe('softmax over long rows', () => {
  it('sums a 4096-long row in a tree: forward and backward within 6e-7 of float64 (one lane walking the row: 1.3e-6)', async () => {
    const device = await testDevice();
    const [rows, d] = [4, 4096];
    const xs = rand(rows * d, 21, -4, 4);
    const gs = rand(rows * d, 22, -1, 1);
    const x = T.tensor(device, xs, [rows, d]);
    x.requiresGrad = true;
    const y = T.softmax(x, 1);
    const got = await y.data();
    T.backward(y, { grad: T.tensor(device, gs, [rows, d]) });
    const dx = await (x.grad as T.Tensor).data();
    const ref = softmaxRef([rows, d], 1)([xs]);
    let forward = 0;
    let backward = 0;
    let gradScale = 0;
    for (let r = 0; r < rows; r++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += (gs[r * d + k] ?? 0) * (ref[r * d + k] ?? 0);
      for (let k = 0; k < d; k++) {
        const at = r * d + k;
        const p = ref[at] ?? 0;
        const g = p * ((gs[at] ?? 0) - dot);
        forward = Math.max(forward, Math.abs((got[at] ?? 0) - p));
        backward = Math.max(backward, Math.abs((dx[at] ?? 0) - g));
        gradScale = Math.max(gradScale, Math.abs(g));
      }
    }
    const probScale = Math.max(...ref);
    assert.ok(forward / probScale < 6e-7, `forward error ${forward / probScale}`);
    assert.ok(backward / gradScale < 6e-7, `backward error ${backward / gradScale}`);
  });
});

describe('softmaxCrossEntropy (PaddleSeg CrossEntropyLoss)', () => {
  const cases: Array<[string, number[], number, CeOptions]> = [
    ['plain, no ignored pixels', [2, 4, 3, 5], 0, {}],
    ['ignored pixels', [2, 4, 3, 5], 0.3, {}],
    ['odd sizes, many classes', [1, 19, 3, 7], 0.2, {}],
    ['class weights', [2, 5, 3, 3], 0.25, { classWeights: [0.5, 1, 2, 0.1, 3] }],
    ['avgNonIgnore false', [2, 4, 3, 5], 0.3, { avgNonIgnore: false }],
    [
      'avgNonIgnore false with weights',
      [2, 3, 2, 5],
      0.2,
      { avgNonIgnore: false, classWeights: [1, 2, 0.5] },
    ],
    ['custom ignoreIndex inside the class range', [2, 4, 3, 3], 0.3, { ignoreIndex: 2 }],
    ['all pixels ignored', [1, 3, 2, 2], 1, {}],
    ['rank 3 logits', [3, 4, 5], 0.2, {}],
    // HW a multiple of 4: the 4-pixel kernels, forward and backward.
    ['4 pixels a step, ignored pixels', [2, 4, 3, 4], 0.3, {}],
    ['4 pixels a step, class weights', [2, 5, 2, 6], 0.25, { classWeights: [0.5, 1, 2, 0.1, 3] }],
    [
      '4 pixels a step, avgNonIgnore false, weights, ignoreIndex inside the class range',
      [2, 3, 4, 5],
      0.3,
      { avgNonIgnore: false, classWeights: [1, 2, 0.5], ignoreIndex: 1 },
    ],
  ];
  for (const [name, shape, share, o] of cases) {
    const n = shape[0] ?? 1;
    const c = shape[1] ?? 1;
    const pixels = n * shape.slice(2).reduce((a, b) => a * b, 1);
    const ignore = o.ignoreIndex ?? 255;
    // With an ignore index inside [0, C), that class's pixels are ignored too.
    const labels = makeLabels(pixels, c, 31, share, ignore);
    it(name, () =>
      checkOp({
        name: `ce ${name}`,
        inputs: [
          {
            shape,
            data: rand(
              shape.reduce((a, b) => a * b, 1),
              5,
              -3,
              3,
            ),
          },
          { shape: [n, ...shape.slice(2)], data: labels, dtype: 'i32', grad: false },
        ],
        gpu: ([x, l]) => T.softmaxCrossEntropy(x as T.Tensor, l as T.Tensor, o),
        ref: ceRef(shape, o),
      }),
    );
  }
  it('more pixels than one reduction chunk (forward; finite differences would be slow)', () =>
    checkOp({
      name: 'ce large',
      inputs: [
        { shape: [1, 3, 41, 51], data: rand(3 * 41 * 51, 12, -3, 3), grad: false },
        { shape: [1, 41, 51], data: makeLabels(41 * 51, 3, 13, 0.2), dtype: 'i32', grad: false },
      ],
      gpu: ([x, l]) => T.softmaxCrossEntropy(x as T.Tensor, l as T.Tensor),
      ref: ceRef([1, 3, 41, 51], {}),
    }));
});

describe('softmaxCrossEntropy backward, 4 pixels a step', () => {
  it('gives the bits of the one-logit kernel (19 classes, weights, ignored pixels, 15 vec4s a lane)', async () => {
    const device = await testDevice();
    const shape = [2, 19, 48, 64];
    const size = shape.reduce((a, b) => a * b, 1);
    const labels = T.tensor(device, makeLabels(2 * 48 * 64, 19, 5, 0.2), [2, 48, 64], 'i32');
    const classWeights = Array.from({ length: 19 }, (_, i) => 0.5 + i / 10);
    const gradient = async () => {
      const x = T.parameter(device, rand(size, 9, -3, 3), shape);
      T.backward(T.softmaxCrossEntropy(x, labels, { classWeights }));
      const values = await (x.grad as T.Tensor).data();
      x.dispose();
      return values;
    };
    const [four = []] = await assertSameBitsWithout(
      (on) => {
        pixelConfig.vec4 = on;
      },
      async () => [await gradient()],
      ['cross-entropy gradient'],
      '4 pixels vs 1 logit a lane',
    );
    assert.ok(Array.from(four).some((v) => v !== 0));
    labels.dispose();
  });
});

describe('pixel kernels, 4 pixels a step', () => {
  it('give the bits of the one-pixel kernels: per-pixel CE and its gradient, true-class probability, mean CE (19 classes, weights, ignored and out-of-range labels)', async () => {
    const device = await testDevice();
    const [n, c, h, w] = [2, 19, 12, 20];
    const size = n * c * h * w;
    const labelValues = makeLabels(n * h * w, c, 21, 0.2);
    labelValues[7] = c + 2;
    const labels = T.tensor(device, labelValues, [n, h, w], 'i32');
    const upstream = T.tensor(device, rand(n * h * w, 22, -1, 1), [n, h, w]);
    const classWeights = Array.from({ length: c }, (_, i) => 0.5 + i / 10);
    const run = async () => {
      const x = T.parameter(device, rand(size, 23, -3, 3), [n, c, h, w]);
      const perPixel = T.pixelCrossEntropy(x, labels, { classWeights });
      const pixelLoss = await perPixel.data();
      T.backward(T.sum(T.mul(perPixel, upstream)));
      const pixelGrad = await (x.grad as T.Tensor).data();
      x.grad?.dispose();
      x.grad = null;
      const mean = T.softmaxCrossEntropy(x, labels, { classWeights });
      const loss = await mean.data();
      const prob = await T.pixelTrueProb(x, labels, 255).data();
      const values = [pixelLoss, pixelGrad, loss, prob];
      x.dispose();
      return values;
    };
    const names = ['per-pixel CE', 'its gradient', 'mean CE', 'true-class probability'];
    const four = await assertSameBitsWithout(
      (on) => {
        pixelConfig.vec4 = on;
      },
      run,
      names,
      '4 pixels vs 1 a lane',
    );
    four.forEach((values, k) => {
      assert.ok(
        Array.from(values).some((v) => v !== 0 && v !== 2),
        `${names[k]} is not all zero`,
      );
    });
    // Ignored and out-of-range labels: CE 0, probability 2 (sorted last by OHEM).
    assert.equal(four[0]?.[7], 0);
    assert.equal(four[3]?.[7], 2);
    labels.dispose();
    upstream.dispose();
  });
});

describe('pixelTrueProb', () => {
  for (const [shape, ignore] of [
    [[2, 4, 3, 5], 255],
    [[1, 19, 3, 7], 255],
    [[2, 3, 4], 1],
    [[2, 6, 4, 4], 255],
  ] as Array<[number[], number]>) {
    const n = shape[0] ?? 1;
    const c = shape[1] ?? 1;
    const pixels = n * shape.slice(2).reduce((a, b) => a * b, 1);
    it(`[${shape}] ignore ${ignore}`, () =>
      checkOp({
        name: `pixelTrueProb [${shape}]`,
        inputs: [
          {
            shape,
            data: rand(
              shape.reduce((a, b) => a * b, 1),
              6,
              -3,
              3,
            ),
            grad: false,
          },
          {
            shape: [n, ...shape.slice(2)],
            data: makeLabels(pixels, c, 17, 0.25, ignore),
            dtype: 'i32',
            grad: false,
          },
        ],
        gpu: ([x, l]) => T.pixelTrueProb(x as T.Tensor, l as T.Tensor, ignore),
        ref: trueProbRef(shape, ignore),
      }));
  }
});

describe('softmax memory', () => {
  it('softmax and softmaxCrossEntropy release their temporaries', async () => {
    const device = await testDevice();
    const before = T.liveTensorCount();
    const x = T.parameter(device, rand(2 * 4 * 3 * 5, 3), [2, 4, 3, 5]);
    const labels = T.tensor(device, makeLabels(30, 4, 2, 0.2), [2, 3, 5], 'i32');
    T.tidy(() => {
      T.backward(T.softmaxCrossEntropy(T.softmax(x, 1), labels));
      T.backward(T.softmaxCrossEntropy(x, labels, { avgNonIgnore: false }));
    });
    T.tidy(() => {
      T.noGrad(() => [T.softmaxCrossEntropy(x, labels), T.pixelTrueProb(x, labels)]);
    });
    assert.ok(x.grad);
    await device.sync();
    x.dispose();
    labels.dispose();
    assert.equal(T.liveTensorCount(), before);
  });
});
