import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { assertClose, checkOp, rand, testDevice } from '../src/testing/index.js';

/** float64 batch norm over N and spatial dims of [N, C, ...]; stats from `stats` or the batch. */
function bnRef(
  shape: number[],
  eps: number,
  stats?: { mean: ArrayLike<number>; variance: ArrayLike<number> },
) {
  const n = shape[0] ?? 1;
  const c = shape[1] ?? 1;
  const hw = shape.slice(2).reduce((a, b) => a * b, 1);
  return ([x, w, b]: Float64Array[]) => {
    const xs = x as Float64Array;
    const out = new Float64Array(xs.length);
    for (let ch = 0; ch < c; ch++) {
      let mean = stats?.mean[ch] ?? 0;
      let variance = stats?.variance[ch] ?? 0;
      if (!stats) {
        let s = 0;
        for (let i = 0; i < n; i++) for (let j = 0; j < hw; j++) s += xs[(i * c + ch) * hw + j] ?? 0;
        mean = s / (n * hw);
        let s2 = 0;
        for (let i = 0; i < n; i++)
          for (let j = 0; j < hw; j++) s2 += ((xs[(i * c + ch) * hw + j] ?? 0) - mean) ** 2;
        variance = s2 / (n * hw);
      }
      const inv = 1 / Math.sqrt(variance + eps);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < hw; j++) {
          const o = (i * c + ch) * hw + j;
          out[o] = ((xs[o] ?? 0) - mean) * inv * (w?.[ch] ?? 0) + (b?.[ch] ?? 0);
        }
    }
    return out;
  };
}

function lnRef(d: number, eps: number) {
  return ([x, w, b]: Float64Array[]) => {
    const xs = x as Float64Array;
    const out = new Float64Array(xs.length);
    for (let r = 0; r < xs.length / d; r++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += xs[r * d + i] ?? 0;
      const mean = s / d;
      let s2 = 0;
      for (let i = 0; i < d; i++) s2 += ((xs[r * d + i] ?? 0) - mean) ** 2;
      const inv = 1 / Math.sqrt(s2 / d + eps);
      for (let i = 0; i < d; i++)
        out[r * d + i] = ((xs[r * d + i] ?? 0) - mean) * inv * (w?.[i] ?? 0) + (b?.[i] ?? 0);
    }
    return out;
  };
}

/** Persistent running-stat tensors created inside a case, disposed after it. */
const created: T.Tensor[] = [];
async function disposeCreated(): Promise<void> {
  const device = await testDevice();
  await device.sync();
  for (const t of created.splice(0)) t.dispose();
}

function running(device: T.Device, c: number, mean = 0, variance = 1): [T.Tensor, T.Tensor] {
  const rm = T.persistent(device, new Array(c).fill(mean), [c], 'running-mean');
  const rv = T.persistent(device, new Array(c).fill(variance), [c], 'running-var');
  created.push(rm, rv);
  return [rm, rv];
}

describe('batchNorm2d', () => {
  const trainingShapes = [
    [2, 3, 4, 5],
    [3, 2, 3, 3],
    [1, 4, 1, 7],
    [5, 3, 2],
    [2, 2, 24, 24], // 1152 values per channel: more than one chunk, so the partials are folded
  ];
  for (const shape of trainingShapes) {
    const c = shape[1] ?? 1;
    it(`training [${shape}]`, async () => {
      await checkOp({
        name: `bn training [${shape}]`,
        inputs: [{ shape }, { shape: [c], data: rand(c, 11, 0.5, 1.5) }, { shape: [c] }],
        gpu: ([x, w, b]) => {
          const [rm, rv] = running((x as T.Tensor).device, c);
          return T.batchNorm2d(x as T.Tensor, w as T.Tensor, b as T.Tensor, rm, rv, { training: true });
        },
        ref: bnRef(shape, 1e-5),
      });
      await disposeCreated();
    });
  }

  it('training with an offset input (shifted sums keep float32 precision)', async () => {
    const shape = [2, 3, 5, 5];
    const data = rand(150, 3, 99, 101);
    await checkOp({
      name: 'bn offset',
      inputs: [{ shape, data }, { shape: [3] }, { shape: [3] }],
      gpu: ([x, w, b]) => {
        const [rm, rv] = running((x as T.Tensor).device, 3);
        return T.batchNorm2d(x as T.Tensor, w as T.Tensor, b as T.Tensor, rm, rv, { training: true });
      },
      ref: bnRef(shape, 1e-5),
      eps: 1e-5,
    });
    await disposeCreated();
  });

  for (const shape of [
    [2, 3, 4, 5],
    [1, 2, 3, 3],
  ]) {
    const c = shape[1] ?? 1;
    const mean = rand(c, 21, -0.5, 0.5);
    const variance = rand(c, 22, 0.3, 2);
    it(`eval [${shape}]`, async () => {
      await checkOp({
        name: `bn eval [${shape}]`,
        inputs: [{ shape }, { shape: [c] }, { shape: [c] }],
        gpu: ([x, w, b]) => {
          const device = (x as T.Tensor).device;
          const rm = T.persistent(device, mean, [c]);
          const rv = T.persistent(device, variance, [c]);
          created.push(rm, rv);
          return T.batchNorm2d(x as T.Tensor, w as T.Tensor, b as T.Tensor, rm, rv, { training: false });
        },
        ref: bnRef(shape, 1e-5, { mean, variance }),
      });
      await disposeCreated();
    });
  }

  it('one value per channel in training returns the input (Paddle)', async () => {
    await checkOp({
      name: 'bn single value',
      inputs: [{ shape: [1, 3, 1, 1] }, { shape: [3] }, { shape: [3] }],
      gpu: ([x, w, b]) => {
        const [rm, rv] = running((x as T.Tensor).device, 3, 0.25, 0.5);
        return T.batchNorm2d(x as T.Tensor, w as T.Tensor, b as T.Tensor, rm, rv, { training: true });
      },
      ref: ([x]) => Float64Array.from(x as Float64Array),
    });
    const [rm, rv] = created.slice(-2) as [T.Tensor, T.Tensor];
    assertClose(await rm.data(), [0.25, 0.25, 0.25], 1e-7, 'running mean untouched');
    assertClose(await rv.data(), [0.5, 0.5, 0.5], 1e-7, 'running var untouched');
    await disposeCreated();
  });

  it('updates running statistics after one training step (momentum 0.9, biased variance)', async () => {
    const device = await testDevice();
    // [N=2, C=2, 1, 2]: channel 0 = {1, 2, 3, 4} → mean 2.5, biased var 1.25; channel 1 = {0, 0, 2, −2} → mean 0, var 2.
    const x = T.tensor(device, [1, 2, 0, 0, 3, 4, 2, -2], [2, 2, 1, 2]);
    const w = T.tensor(device, [1, 1], [2]);
    const b = T.tensor(device, [0, 0], [2]);
    const rm = T.persistent(device, [1, -1], [2]);
    const rv = T.persistent(device, [2, 0.5], [2]);
    const y = T.batchNorm2d(x, w, b, rm, rv, { training: true });
    // running = 0.9·running + 0.1·batch
    assertClose(await rm.data(), [0.9 * 1 + 0.1 * 2.5, 0.9 * -1 + 0.1 * 0], 1e-6, 'running mean');
    assertClose(await rv.data(), [0.9 * 2 + 0.1 * 1.25, 0.9 * 0.5 + 0.1 * 2], 1e-6, 'running var');
    const inv0 = 1 / Math.sqrt(1.25 + 1e-5);
    const inv1 = 1 / Math.sqrt(2 + 1e-5);
    assertClose(
      await y.data(),
      [-1.5 * inv0, -0.5 * inv0, 0, 0, 0.5 * inv0, 1.5 * inv0, 2 * inv1, -2 * inv1],
      1e-5,
      'output',
    );
    // A second step with momentum 0.5 and eval afterwards uses the updated statistics.
    const y2 = T.batchNorm2d(x, w, b, rm, rv, { training: true, momentum: 0.5 });
    const m1 = [0.9 * 1 + 0.1 * 2.5, -0.9];
    const v1 = [0.9 * 2 + 0.1 * 1.25, 0.9 * 0.5 + 0.1 * 2];
    assertClose(
      await rm.data(),
      [0.5 * (m1[0] ?? 0) + 0.5 * 2.5, 0.5 * (m1[1] ?? 0)],
      1e-6,
      'running mean 2',
    );
    assertClose(
      await rv.data(),
      [0.5 * (v1[0] ?? 0) + 0.5 * 1.25, 0.5 * (v1[1] ?? 0) + 0.5 * 2],
      1e-6,
      'var 2',
    );
    for (const t of [x, w, b, y, y2, rm, rv]) t.dispose();
  });

  it('calls syncStats with raw per-channel sums and uses what it returns', async () => {
    const device = await testDevice();
    const shape = [2, 3, 3, 3];
    const data = rand(54, 8, -2, 3);
    const x = T.tensor(device, data, shape);
    const w = T.tensor(device, [1, 2, 0.5], [3]);
    const b = T.tensor(device, [0, 0.1, -0.1], [3]);
    const [rm, rv] = running(device, 3);
    const seen: { sum: T.Tensor; sumSq: T.Tensor; count: number }[] = [];
    const y = T.batchNorm2d(x, w, b, rm, rv, {
      training: true,
      syncStats: (sum, sumSq, count) => {
        seen.push({ sum: T.scale(sum, 1), sumSq: T.scale(sumSq, 1), count });
        // Pretend a second device holds an identical batch: doubling sums and count keeps the stats.
        return { sum: T.scale(sum, 2), sumSq: T.scale(sumSq, 2), count: 2 * count };
      },
    });
    assert.equal(seen.length, 1);
    const [first] = seen;
    assert.equal(first?.count, 18);
    const expectSum = [0, 0, 0];
    const expectSq = [0, 0, 0];
    for (let i = 0; i < 54; i++) {
      const ch = Math.floor(i / 9) % 3;
      expectSum[ch] = (expectSum[ch] ?? 0) + (data[i] ?? 0);
      expectSq[ch] = (expectSq[ch] ?? 0) + (data[i] ?? 0) ** 2;
    }
    assertClose(await (first as { sum: T.Tensor }).sum.data(), expectSum, 1e-5, 'sum');
    assertClose(await (first as { sumSq: T.Tensor }).sumSq.data(), expectSq, 1e-5, 'sumSq');
    const expected = bnRef(
      shape,
      1e-5,
    )([Float64Array.from(data), Float64Array.of(1, 2, 0.5), Float64Array.of(0, 0.1, -0.1)]);
    assertClose(await y.data(), expected, 1e-4, 'synced output');
    for (const t of [x, w, b, y, first?.sum, first?.sumSq]) t?.dispose();
    await disposeCreated();
  });
});

describe('layerNorm', () => {
  const cases: Array<[number[], number]> = [
    [[3, 5, 7], 1e-5],
    [[4, 16], 1e-6],
    [[9], 1e-5],
    [[300, 4], 1e-5], // more rows than one chunk of the weight/bias gradient
  ];
  for (const [shape, eps] of cases) {
    const d = shape[shape.length - 1] ?? 1;
    it(`[${shape}] eps ${eps}`, () =>
      checkOp({
        name: `layerNorm [${shape}]`,
        inputs: [{ shape }, { shape: [d], data: rand(d, 4, 0.5, 1.5) }, { shape: [d] }],
        gpu: ([x, w, b]) => T.layerNorm(x as T.Tensor, w as T.Tensor, b as T.Tensor, eps),
        ref: lnRef(d, eps),
      }));
  }
});

describe('syncStats hook typing', () => {
  it('accepts a hook that returns nothing', async () => {
    const device = await testDevice();
    const x = T.tensor(device, rand(24, 2), [2, 3, 2, 2]);
    const w = T.tensor(device, [1, 1, 1], [3]);
    const b = T.tensor(device, [0, 0, 0], [3]);
    const [rm, rv] = running(device, 3);
    let calls = 0;
    const y = T.batchNorm2d(x, w, b, rm, rv, {
      training: true,
      syncStats: () => {
        calls++;
      },
    });
    assert.equal(calls, 1);
    const expected = bnRef(
      [2, 3, 2, 2],
      1e-5,
    )([Float64Array.from(rand(24, 2)), Float64Array.of(1, 1, 1), Float64Array.of(0, 0, 0)]);
    assertClose(await y.data(), expected, 1e-4, 'output with an observing hook');
    for (const t of [x, w, b, y]) t.dispose();
    await disposeCreated();
  });
});

describe('norm memory', () => {
  it('batchNorm2d and layerNorm release their temporaries (training, eval, no-grad)', async () => {
    const device = await testDevice();
    const before = T.liveTensorCount();
    const x = T.parameter(device, rand(2 * 3 * 40 * 30, 3), [2, 3, 40, 30]);
    const w = T.parameter(device, [1, 2, 3], [3]);
    const b = T.parameter(device, [0, 0, 0], [3]);
    const rm = T.persistent(device, [0, 0, 0], [3]);
    const rv = T.persistent(device, [1, 1, 1], [3]);
    const lw = T.parameter(device, rand(30, 4), [30]);
    const lb = T.parameter(device, rand(30, 5), [30]);
    for (const training of [true, false]) {
      T.tidy(() => {
        const y = T.batchNorm2d(x, w, b, rm, rv, { training });
        T.backward(T.sum(T.layerNorm(y, lw, lb, 1e-6)));
      });
      T.tidy(() => {
        T.noGrad(() => T.layerNorm(T.batchNorm2d(x, w, b, rm, rv, { training }), lw, lb));
      });
    }
    assert.ok(x.grad && w.grad && b.grad && lw.grad && lb.grad);
    await device.sync();
    for (const t of [x, w, b, rm, rv, lw, lb]) t.dispose();
    assert.equal(T.liveTensorCount(), before);
  });
});
