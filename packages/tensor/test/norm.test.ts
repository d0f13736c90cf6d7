import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { normConfig } from '../src/kernels/norm.js';
import { assertClose, assertSameBitsWithout, checkOp, rand, testDevice } from '../src/testing/index.js';

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

/** `values[i] += v` for a float64 accumulator. */
function addAt(values: Float64Array, i: number, v: number): void {
  values[i] = (values[i] ?? 0) + v;
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
    [2, 32, 4, 8],
    [2, 2, 24, 24], // 1152 values per channel: more than one chunk, so the partials are folded; 576 vec4s
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

  // The fused ReLU: relu(bn(x)) forward, and the BN backward with the gradient masked where the
  // output is 0; the vec4 path ([2, 3, 4, 5]), the scalar one ([3, 2, 3, 3]), several chunks.
  for (const [shape, training] of [
    [[2, 3, 4, 5], true],
    [[3, 2, 3, 3], true],
    [[2, 2, 24, 24], true],
    [[2, 3, 4, 5], false],
  ] as Array<[number[], boolean]>) {
    const c = shape[1] ?? 1;
    it(`fused ReLU, ${training ? 'training' : 'eval'} [${shape}]`, async () => {
      const plain = bnRef(
        shape,
        1e-5,
        training ? undefined : { mean: new Array(c).fill(0.1), variance: new Array(c).fill(0.8) },
      );
      await checkOp({
        name: `bn+relu [${shape}]`,
        inputs: [{ shape }, { shape: [c] }, { shape: [c] }],
        gpu: ([x, w, b]) => {
          const [rm, rv] = running((x as T.Tensor).device, c, 0.1, 0.8);
          return T.batchNorm2d(x as T.Tensor, w as T.Tensor, b as T.Tensor, rm, rv, {
            training,
            activation: 'relu',
          });
        },
        ref: (inputs) => plain(inputs).map((v) => Math.max(v, 0)),
      });
      await disposeCreated();
    });
  }

  it('the fused ReLU gives the bits of batchNorm2d then relu, forward and backward', async () => {
    const device = await testDevice();
    const shape = [2, 4, 8, 8];
    const data = Float32Array.from(rand(2 * 4 * 64, 41));
    const run = async (fused: boolean) => {
      const x = T.parameter(device, data, shape);
      const w = T.parameter(device, rand(4, 42), [4]);
      const b = T.parameter(device, rand(4, 43), [4]);
      const [rm, rv] = running(device, 4);
      const y = fused
        ? T.batchNorm2d(x, w, b, rm, rv, { training: true, activation: 'relu' })
        : T.relu(T.batchNorm2d(x, w, b, rm, rv, { training: true }));
      const out = await y.data();
      T.backward(T.sum(T.mul(y, T.tensor(device, rand(2 * 4 * 64, 44), shape))));
      const grads = await Promise.all([x, w, b].map((t) => (t.grad as T.Tensor).data()));
      T.tidy(() => undefined);
      for (const t of [x, w, b, rm, rv]) t.dispose();
      return [out, ...grads].map((a) => Array.from(a));
    };
    assert.deepEqual(await run(true), await run(false));
  });

  const STEP_OUTPUTS = ['y', 'running mean', 'running var', 'dx', 'dw', 'db'];
  /**
   * One seeded training step of batchNorm2d (forward, backward against a seeded gradient) on
   * `shape`, with running statistics starting at `init`: [y, running mean, running var, dx, dw, db].
   */
  async function trainingStep(
    shape: number[],
    seed: number,
    options: Partial<T.BatchNormOptions>,
    init: [number, number] = [0, 1],
  ): Promise<ArrayLike<number>[]> {
    const device = await testDevice();
    const c = shape[1] ?? 1;
    const size = shape.reduce((a, b) => a * b, 1);
    const x = T.parameter(device, Float32Array.from(rand(size, seed, -2, 3)), shape);
    const w = T.parameter(device, rand(c, seed + 1), [c]);
    const b = T.parameter(device, rand(c, seed + 2), [c]);
    const [rm, rv] = running(device, c, ...init);
    const y = T.batchNorm2d(x, w, b, rm, rv, { training: true, ...options });
    T.backward(y, { grad: T.tensor(device, rand(size, seed + 3), shape) });
    const values = await Promise.all([y, rm, rv, x.grad, w.grad, b.grad].map((t) => (t as T.Tensor).data()));
    T.tidy(() => undefined);
    for (const t of [x, w, b, rm, rv, y]) t.dispose();
    return values;
  }
  /** `trainingStep` with `hook` switching a kernel path off gives the same bits as with it on. */
  async function sameBitsWithout(
    hook: { set: (on: boolean) => void; label: string },
    step: () => Promise<ArrayLike<number>[]>,
  ): Promise<readonly ArrayLike<number>[]> {
    return assertSameBitsWithout(hook.set, step, STEP_OUTPUTS, hook.label);
  }

  // [3, 5, 20, 28]: 1680 positions a channel, 2 chunks, the first ending inside image 1 and the
  // second inside a block of 32.
  for (const relu of [false, true]) {
    it(`partial sums 4 positions a step give the bits of the one-position walk (${relu ? 'fused ReLU' : 'plain'})`, async () => {
      await sameBitsWithout(
        {
          set: (on) => {
            normConfig.vec4 = on;
          },
          label: '4 positions vs 1 a step',
        },
        () => trainingStep([3, 5, 20, 28], 61, relu ? { activation: 'relu' } : {}),
      );
    });
  }

  // [2, 3, 20, 24]: 960 positions a channel, one chunk: the Welford kernel writes the statistics
  // (and the running ones) itself instead of a merge dispatch.
  it('one chunk per channel: statistics written by the Welford kernel give the bits of a merge', async () => {
    const fused = await sameBitsWithout(
      {
        set: (on) => {
          normConfig.singleChunk = on;
        },
        label: 'one dispatch vs two',
      },
      () => trainingStep([2, 3, 20, 24], 81, { momentum: 0.7 }, [0.3, 1.7]),
    );
    assert.ok(Math.abs((fused[1]?.[0] ?? 0) - 0.3) > 1e-3, 'the running mean moved');
  });

  // One chunk per channel on a CPU adapter: the statistics kernel also normalises, the gradient-sums
  // kernel also computes dX, each walking its channel a second time. [2, 3, 20, 24]: 960 positions
  // as vec4s; [3, 2, 5, 7]: 105 positions one at a time (HW not a multiple of 4).
  for (const [shape, options] of [
    [[2, 3, 20, 24], {}],
    [[2, 3, 20, 24], { activation: 'relu' }],
    [[3, 2, 5, 7], { activation: 'relu' }],
  ] as const) {
    it(`one chunk per channel: normalisation and dX fused into the sums kernels give the bits of separate dispatches (${shape.join('x')}${options.activation ? ', fused ReLU' : ''})`, async () => {
      await sameBitsWithout(
        {
          set: (on) => {
            normConfig.fuseSingle = on;
          },
          label: 'fused vs separate normalisation and dX',
        },
        () => trainingStep([...shape], 91, { momentum: 0.8, ...options }, [0.2, 1.5]),
      );
    });
  }

  // Found by tools/f64-audit.mjs on OCRNet: one-pass Σ(x−k), Σ(x−k)² shifted by the first sample
  // lose the variance to cancellation when that sample lies far from the mean (up to a factor of
  // the count). Here it is 90σ out among 8192 values of channel 0; Welford chunks and their merge
  // stay at 1.1e-7 where the shifted sums erred 2.0e-5 (max error relative to the largest output).
  it('training statistics stay exact when the first sample is far from the mean (8 chunks merged)', async () => {
    const shape = [2, 2, 64, 64];
    const data = Float64Array.from(rand(2 * 2 * 64 * 64, 8), Math.fround);
    data[0] = 1000;
    await checkOp({
      name: 'bn far outlier',
      inputs: [
        { shape, data, grad: false },
        { shape: [2], grad: false },
        { shape: [2], grad: false },
      ],
      gpu: ([x, w, b]) => {
        const [rm, rv] = running((x as T.Tensor).device, 2);
        return T.batchNorm2d(x as T.Tensor, w as T.Tensor, b as T.Tensor, rm, rv, { training: true });
      },
      ref: bnRef(shape, 1e-5),
      forwardTol: 2e-6,
    });
    await disposeCreated();
  });

  // Welford's running mean drifts by a rounding per update; blocks of 32 updates merged pairwise
  // (in the chunks and in the chunks' merge) keep the statistics near float64: here the mean within
  // 1.8-2.5e-7σ (median) and 6e-7σ, the variance within 2.5e-7. One Welford walk per 1024-value
  // chunk and the chunks merged in a row were off by 3.8-5.4e-7σ and 1.9e-6σ, and 7.1e-7.
  for (const shape of [
    [2, 32, 30, 50], // 3 chunks, the last ending inside a block
    [4, 8, 100, 100], // 40 chunks: two blocks of chunks, the second partial
  ]) {
    it(`training statistics of [${shape}] stay within a few roundings of float64`, async () => {
      const device = await testDevice();
      const [n = 1, c = 1] = shape;
      const hw = (shape[2] ?? 1) * (shape[3] ?? 1);
      const data = Float64Array.from(rand(n * c * hw, 51, 1, 3), Math.fround);
      const x = T.tensor(device, data, shape);
      // Momentum 0: the running statistics become this batch's (biased) ones.
      const [rm, rv] = running(device, c);
      T.noGrad(() =>
        T.batchNorm2d(x, T.ones(device, [c]), T.zeros(device, [c]), rm, rv, { training: true, momentum: 0 }),
      );
      const [means, variances] = [await rm.data(), await rv.data()];
      const meanErrors: number[] = [];
      const varianceErrors: number[] = [];
      for (let ch = 0; ch < c; ch++) {
        const values = Array.from(
          { length: n * hw },
          (_, i) => data[(Math.floor(i / hw) * c + ch) * hw + (i % hw)] ?? 0,
        );
        const mean = values.reduce((s, v) => s + v, 0) / values.length;
        const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
        meanErrors.push(Math.abs((means[ch] ?? 0) - mean) / Math.sqrt(variance));
        varianceErrors.push(Math.abs((variances[ch] ?? 0) - variance) / variance);
      }
      const median = (e: number[]) => [...e].sort((p, q) => p - q)[e.length >> 1] ?? 0;
      // The mean itself rounds to float32 by up to 2.1e-7σ here (half a unit in the last place of 2).
      assert.ok(median(meanErrors) < 3.3e-7, `mean off by ${median(meanErrors)}σ (median over channels)`);
      assert.ok(Math.max(...meanErrors) < 8e-7, `mean off by ${Math.max(...meanErrors)}σ`);
      assert.ok(Math.max(...varianceErrors) < 4e-7, `variance off by ${Math.max(...varianceErrors)}`);
      for (const t of [x, rm, rv]) t.dispose();
      T.tidy(() => undefined);
    });
  }

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

  it('sync: one device of a two-device batch gets the full batch output and input gradient', async () => {
    // This device holds xa; a simulated second device holds xb. The hooks return what the
    // data-parallel exchange computes: the global statistics, and the global gradient sums
    // (xb's added in float64 here) scaled to this device's count.
    const device = await testDevice();
    const half = [2, 3, 3, 3];
    const c = 3;
    const hw = 9;
    const per = 54;
    const xa = rand(per, 8, -2, 3);
    const xb = rand(per, 9, -1, 2);
    const r = rand(2 * per, 10);
    const w = [1, 2, 0.5];
    const bias = [0, 0.1, -0.1];
    const eps = 1e-5;
    const full = Float64Array.from([...xa, ...xb]);
    const channel = (i: number) => Math.floor(i / hw) % c;
    const mean = new Float64Array(3);
    const variance = new Float64Array(3);
    for (let i = 0; i < full.length; i++) addAt(mean, channel(i), (full[i] ?? 0) / (4 * hw));
    for (let i = 0; i < full.length; i++)
      addAt(variance, channel(i), ((full[i] ?? 0) - (mean[channel(i)] ?? 0)) ** 2 / (4 * hw));
    const xhat = (v: number, ch: number) => (v - (mean[ch] ?? 0)) / Math.sqrt((variance[ch] ?? 0) + eps);
    const otherBackward = new Float64Array(2 * c);
    xb.forEach((v, i) => {
      const ch = channel(i);
      const g = r[per + i] ?? 0;
      addAt(otherBackward, ch, g);
      addAt(otherBackward, c + ch, g * xhat(v, ch));
    });
    const localMean = new Float64Array(3);
    const localVar = new Float64Array(3);
    xa.forEach((v, i) => {
      addAt(localMean, channel(i), v / 18);
    });
    xa.forEach((v, i) => {
      addAt(localVar, channel(i), (v - (localMean[channel(i)] ?? 0)) ** 2 / 18);
    });
    const counts: number[] = [];
    const seenLocal: T.Tensor[] = [];
    const x = T.parameter(device, xa, half);
    const wt = T.parameter(device, w, [c]);
    const bt = T.parameter(device, bias, [c]);
    const [rm, rv] = running(device, c);
    const y = T.batchNorm2d(x, wt, bt, rm, rv, {
      training: true,
      sync: {
        stats: (local, count) => {
          counts.push(count);
          seenLocal.push(T.scale(local, 1));
          return T.tensor(device, [...mean, ...variance], [2 * c]);
        },
        gradSums: (sums, count) => {
          counts.push(count);
          const other = T.tensor(device, otherBackward, [2 * c]);
          const added = T.add(sums, other);
          const global = T.scale(added, 0.5);
          for (const t of [other, added]) t.dispose();
          return global;
        },
      },
    });
    assertClose(
      await (seenLocal[0] as T.Tensor).data(),
      [...localMean, ...localVar],
      1e-5,
      'local statistics',
    );
    const expectedY = bnRef([4, 3, 3, 3], eps)([full, Float64Array.from(w), Float64Array.from(bias)]);
    assertClose(await y.data(), expectedY.subarray(0, per), 1e-4, 'synced output');
    assert.deepEqual(
      Array.from(await rm.data(), (v) => Number(v.toFixed(4))),
      Array.from(mean, (m) => Number((0.1 * m).toFixed(4))),
      'running mean from the global batch',
    );
    const grad = T.tensor(device, r.subarray(0, per), half);
    T.backward(y, { grad });
    assert.deepEqual(counts, [18, 18], 'one forward and one backward exchange, with the local count');
    // dL/dxa of L = Σ r·bn(full) by central differences in float64.
    const loss = (v: Float64Array) =>
      bnRef(
        [4, 3, 3, 3],
        eps,
      )([v, Float64Array.from(w), Float64Array.from(bias)]).reduce((s, yv, i) => s + yv * (r[i] ?? 0), 0);
    const h = 1e-5;
    const expectedDx = Array.from(xa, (_, i) => {
      const up = Float64Array.from(full);
      const down = Float64Array.from(full);
      up[i] = (up[i] ?? 0) + h;
      down[i] = (down[i] ?? 0) - h;
      return (loss(up) - loss(down)) / (2 * h);
    });
    assertClose(await (x.grad as T.Tensor).data(), expectedDx, 1e-3, 'input gradient over both devices');
    // The weight and bias gradients stay this device's own (data parallelism averages them).
    const dw = new Float64Array(3);
    const db = new Float64Array(3);
    xa.forEach((v, i) => {
      addAt(dw, channel(i), (r[i] ?? 0) * xhat(v, channel(i)));
      addAt(db, channel(i), r[i] ?? 0);
    });
    assertClose(await (wt.grad as T.Tensor).data(), dw, 1e-4, 'local weight gradient');
    assertClose(await (bt.grad as T.Tensor).data(), db, 1e-4, 'local bias gradient');
    for (const t of [x, wt, bt, y, grad, ...seenLocal]) t.dispose();
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

describe('layerNorm rows read as vec4s', () => {
  // [300, 12]: 12 values a row (3 vec4s), more rows than a chunk of the parameter gradients.
  it('give the bits of the one-value walk, forward and every gradient', async () => {
    const device = await testDevice();
    const shape = [300, 12];
    const run = async () => {
      const x = T.parameter(device, rand(3600, 71, -2, 3), shape);
      const w = T.parameter(device, rand(12, 72, 0.5, 1.5), [12]);
      const b = T.parameter(device, rand(12, 73), [12]);
      const y = T.layerNorm(x, w, b, 1e-5);
      T.backward(y, { grad: T.tensor(device, rand(3600, 74), shape) });
      const values = await Promise.all([y, x.grad, w.grad, b.grad].map((t) => (t as T.Tensor).data()));
      T.tidy(() => undefined);
      for (const t of [x, w, b, y]) t.dispose();
      return values;
    };
    await assertSameBitsWithout(
      (on) => {
        normConfig.vec4 = on;
      },
      run,
      ['layerNorm y', 'layerNorm dx', 'layerNorm dw', 'layerNorm db'],
      'vec4 vs one value a step',
    );
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
