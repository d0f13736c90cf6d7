import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { assertClose, assertSameValues, checkOp, rand, testDevice } from '../src/testing/index.js';

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Labels in [0, c) with a share set to `ignore`, plus one out-of-range value (treated as ignored). */
function labelsFor(count: number, c: number, seed: number, ignoreShare: number, ignore = 255): number[] {
  const r = rand(count, seed, 0, 1);
  const k = rand(count, seed + 1, 0, c);
  const out = Array.from(r, (v, i) => (v < ignoreShare ? ignore : Math.floor(k[i] ?? 0)));
  out[count - 1] = c + 3;
  return out;
}

function valid(label: number, c: number, ignore: number): boolean {
  return label !== ignore && label >= 0 && label < c;
}

/** Float64 per-pixel w·(logsumexp − logit[label]) over logits [N, C, HW]. */
function pixelCeRef(shape: number[], labels: number[], ignore: number, weights?: number[]) {
  const n = shape[0] ?? 1;
  const c = shape[1] ?? 1;
  const hw = shape.slice(2).reduce((a, b) => a * b, 1);
  return ([x]: Float64Array[]) => {
    const out = new Float64Array(n * hw);
    for (let p = 0; p < n * hw; p++) {
      const label = labels[p] ?? 0;
      if (!valid(label, c, ignore)) continue;
      const base = Math.floor(p / hw) * c * hw + (p % hw);
      let m = -Infinity;
      for (let k = 0; k < c; k++) m = Math.max(m, x?.[base + k * hw] ?? 0);
      let s = 0;
      for (let k = 0; k < c; k++) s += Math.exp((x?.[base + k * hw] ?? 0) - m);
      out[p] = (weights?.[label] ?? 1) * (m + Math.log(s) - (x?.[base + label * hw] ?? 0));
    }
    return out;
  };
}

describe('pixelCrossEntropy (reduction none)', () => {
  const cases: Array<[string, number[], number, number, number[] | undefined]> = [
    ['plain', [2, 4, 3, 5], 0, 255, undefined],
    ['ignored pixels and class weights', [2, 5, 3, 3], 0.3, 255, [0.5, 1, 2, 0.1, 3]],
    ['ignore index inside the class range, 19 classes', [1, 19, 2, 3], 0.2, 2, undefined],
    [
      '4 pixels a lane step (HW 24): ignored pixels and class weights',
      [2, 5, 4, 6],
      0.3,
      255,
      [0.5, 1, 2, 0.1, 3],
    ],
  ];
  for (const [name, shape, share, ignore, weights] of cases) {
    const pixels = (shape[0] ?? 1) * shape.slice(2).reduce((a, b) => a * b, 1);
    const labels = labelsFor(pixels, shape[1] ?? 1, 5, share, ignore);
    it(name, () =>
      checkOp({
        name: `pixel ce ${name}`,
        inputs: [
          {
            shape,
            data: rand(
              shape.reduce((a, b) => a * b, 1),
              9,
              -3,
              3,
            ),
          },
          { shape: [shape[0] ?? 1, ...shape.slice(2)], data: labels, dtype: 'i32', grad: false },
        ],
        gpu: ([x, l]) =>
          T.pixelCrossEntropy(x as T.Tensor, l as T.Tensor, { ignoreIndex: ignore, classWeights: weights }),
        ref: pixelCeRef(shape, labels, ignore, weights),
      }),
    );
  }
  for (const [name, shape] of [
    ['with the true-class probability (one walk over the logits)', [2, 4, 3, 5]],
    ['with the true-class probability, 4 pixels a lane step (HW 24)', [2, 5, 4, 6]],
  ] as Array<[string, number[]]>) {
    const labels = labelsFor(product(shape) / (shape[1] ?? 1), shape[1] ?? 1, 6, 0.3, 255);
    it(name, async () => {
      const logits = rand(product(shape), 10, -3, 3);
      const inputs = [
        { shape, data: logits },
        { shape: [shape[0] ?? 1, ...shape.slice(2)], data: labels, dtype: 'i32' as const, grad: false },
      ];
      await checkOp({
        name: `pixel ce ${name}`,
        inputs,
        gpu: ([x, l]) => {
          const { loss, trueProb } = T.pixelCrossEntropyAndTrueProb(x as T.Tensor, l as T.Tensor);
          trueProb.dispose();
          return loss;
        },
        ref: pixelCeRef(shape, labels, 255, undefined),
      });
      // The same values as the two ops apart, the loss's gradient included.
      const device = await testDevice();
      const l = T.tensor(device, labels, [shape[0] ?? 1, ...shape.slice(2)], 'i32');
      const run = async (together: boolean) => {
        const x = T.parameter(device, Float32Array.from(logits), shape);
        const { loss, trueProb } = together
          ? T.pixelCrossEntropyAndTrueProb(x, l)
          : { loss: T.pixelCrossEntropy(x, l), trueProb: T.pixelTrueProb(x, l) };
        const values = [await loss.data(), await trueProb.data()];
        T.backward(T.sum(loss));
        values.push(await (x.grad as T.Tensor).data());
        trueProb.dispose();
        x.dispose();
        return values;
      };
      const [apart, together] = [await run(false), await run(true)];
      ['loss', 'true-class probability', 'gradient'].forEach((what, k) => {
        assertSameValues(together[k] ?? [], apart[k] ?? [], `${what}, together vs apart`);
      });
      assert.ok(
        Array.from(together[1] ?? []).some((v) => v === 2) &&
          Array.from(together[1] ?? []).some((v) => v < 1),
      );
      l.dispose();
    });
  }
  it('rejects labels of the wrong shape, naming both shapes', async () => {
    const device = await testDevice();
    const x = T.zeros(device, [1, 3, 2, 2]);
    const l = T.tensor(device, [0, 1, 2], [1, 3], 'i32');
    assert.throws(() => T.pixelCrossEntropy(x, l), /labels \[1, 3\] must be \[1, 2, 2\]/);
    x.dispose();
    l.dispose();
  });
});

describe('labelMap', () => {
  it('valid, onehot, weight and float maps match their definitions', async () => {
    const device = await testDevice();
    const c = 3;
    const ignore = 255;
    const labels = [0, 2, 255, 1, -1, 7, 2, 0];
    const l = T.tensor(device, labels, [2, 2, 2], 'i32');
    const weights = [0.5, 2, 4];
    const ok = labels.map((v) => valid(v, c, ignore));
    assertClose(
      await T.labelMap(l, 'valid', c, ignore).data(),
      ok.map((v) => (v ? 1 : 0)),
      0,
      'valid',
    );
    assertClose(
      await T.labelMap(l, 'weight', c, ignore, weights).data(),
      labels.map((v, i) => (ok[i] ? (weights[v] ?? 0) : 0)),
      0,
      'weight',
    );
    assertClose(await T.labelMap(l, 'float', c, ignore).data(), labels, 0, 'float');
    const onehot = T.labelMap(l, 'onehot', c, ignore);
    assert.deepEqual(onehot.shape, [2, c, 2, 2]);
    const expected: number[] = [];
    for (let n = 0; n < 2; n++)
      for (let k = 0; k < c; k++)
        for (let p = 0; p < 4; p++) {
          const v = labels[n * 4 + p] ?? 0;
          expected.push(valid(v, c, ignore) && v === k ? 1 : 0);
        }
    assertClose(await onehot.data(), expected, 0, 'onehot');
    assert.throws(() => T.labelMap(l, 'weight', c, ignore, [1, 2]), /2 class weights for 3 classes/);
    T.tidy(() => undefined);
    l.dispose();
  });
});

describe('bceWithLogits (Paddle binary_cross_entropy_with_logits, reduction none)', () => {
  for (const pw of [1, 2.5]) {
    it(`pos_weight ${pw}`, () => {
      const size = 2 * 3 * 7;
      const y = Array.from(rand(size, 4, 0, 1), (v) => (v < 0.5 ? 0 : 1));
      const w = Array.from(rand(size, 5, 0.2, 2));
      return checkOp({
        name: `bce pw ${pw}`,
        inputs: [
          { shape: [2, 3, 7], data: rand(size, 6, -4, 4) },
          { shape: [2, 3, 7], data: y, grad: false },
          { shape: [2, 3, 7], data: w, grad: false },
          { shape: [1], data: [pw], grad: false },
        ],
        gpu: ([x, yt, wt, p]) =>
          T.bceWithLogits(x as T.Tensor, yt as T.Tensor, wt as T.Tensor, p as T.Tensor),
        ref: ([x]) =>
          Float64Array.from(x ?? [], (v, i) => {
            const yv = y[i] ?? 0;
            const lw = 1 + (pw - 1) * yv;
            return (w[i] ?? 0) * ((1 - yv) * v + lw * (Math.log1p(Math.exp(-Math.abs(v))) + Math.max(-v, 0)));
          }),
      });
    });
  }
});

describe('mapNoGrad', () => {
  it('applies a WGSL expression without recording a gradient, and checks its inputs', async () => {
    const device = await testDevice();
    const a = T.parameter(device, [1, -2, 3, -4, 5], [5]);
    const b = T.tensor(device, [0.5, 0.5, 2, 2, 1], [5]);
    const out = T.mapNoGrad('select(0.0, a * b, a > s0)', [a, b], [0]);
    assert.equal(out.gradFn, null);
    assertClose(await out.data(), [0.5, 0, 6, 0, 5], 0, 'mapNoGrad');
    assert.throws(() => T.mapNoGrad('a', [a, T.zeros(device, [4])]), /same size/);
    T.tidy(() => undefined);
    for (const t of [a, b, out]) t.dispose();
  });
});

describe('ratioOfMeans', () => {
  const ratioRef =
    (eps: number) =>
    ([v, w]: Float64Array[]) => {
      const vs = v as Float64Array;
      const ws = w as Float64Array;
      let num = 0;
      let den = 0;
      for (let i = 0; i < vs.length; i++) {
        num += (vs[i] ?? 0) * (ws[i] ?? 0);
        den += ws[i] ?? 0;
      }
      return new Float64Array([num / vs.length / (den / vs.length + eps)]);
    };
  for (const [name, shape, share, eps] of [
    ['a 0/1 mask, OHEM eps', [2, 3, 5], 0.4, 1e-5],
    ['weights, 1000 values (several reduction chunks)', [1000], -1, 1e-8],
    ['an all-zero mask: 0, eps keeps it finite', [7], 1, 1e-5],
  ] as Array<[string, number[], number, number]>) {
    const size = product(shape);
    const mask = Array.from(rand(size, 31, 0, 1), (r) => (share < 0 ? 0.5 + r : r < share ? 0 : 1));
    it(name, () =>
      checkOp({
        name: `ratioOfMeans ${name}`,
        inputs: [
          { shape, data: rand(size, 30, -2, 2) },
          { shape, data: mask, grad: false },
        ],
        gpu: ([v, w]) => T.ratioOfMeans(v as T.Tensor, w as T.Tensor, eps),
        ref: ratioRef(eps),
      }),
    );
  }
  it('rejects mismatched sizes and a w that has a gradient', async () => {
    const device = await testDevice();
    const v = T.zeros(device, [4]);
    const w = T.parameter(device, new Float32Array(4).fill(1), [4]);
    assert.throws(() => T.ratioOfMeans(v, T.zeros(device, [3]), 1e-5), /v has 4 values, w 3/);
    assert.throws(() => T.ratioOfMeans(v, w, 1e-5), /w gets no gradient; compute it under noGrad/);
    v.dispose();
    w.dispose();
  });
});
