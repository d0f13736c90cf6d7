import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { adamUpdate, adamUpdates, momentumUpdate, momentumUpdates } from '../src/kernels/optimizer.js';
import { assertClose, rand, testDevice } from '../src/testing/index.js';

// 37: the one-float-per-element path; 4100 (a multiple of 4, over one workgroup's 1024 vec4s
// with a partial tail): the vec4 path.
const SIZES = [37, 4100];

describe.each(SIZES)('fused optimizer updates match Paddle update rules in float64 (%i values)', (N) => {
  it('Momentum with L2 on every parameter, 3 steps', async () => {
    const device = await testDevice();
    const p0 = rand(N, 1);
    const grads = [rand(N, 2), rand(N, 3), rand(N, 4)];
    const param = T.persistent(device, p0, [N]);
    const velocity = T.persistent(device, new Float64Array(N), [N]);
    const [lr, mu, wd] = [0.05, 0.9, 4e-5];
    const p = Float64Array.from(p0);
    const v = new Float64Array(N);
    for (const g of grads) {
      const gt = T.tensor(device, g, [N]);
      momentumUpdate(device, param, gt, velocity, { lr, momentum: mu, weightDecay: wd });
      gt.dispose();
      for (let i = 0; i < N; i++) {
        const gi = (g[i] ?? 0) + wd * (p[i] ?? 0);
        v[i] = mu * (v[i] ?? 0) + gi;
        p[i] = (p[i] ?? 0) - lr * (v[i] ?? 0);
      }
    }
    assertClose(await param.data(), p, 1e-5, 'momentum param');
    assertClose(await velocity.data(), v, 1e-5, 'momentum velocity');
    param.dispose();
    velocity.dispose();
  });

  for (const decoupled of [true, false]) {
    it(`${decoupled ? 'AdamW (decoupled decay)' : 'Adam (L2)'}, 3 steps`, async () => {
      const device = await testDevice();
      const p0 = rand(N, 5);
      const grads = [rand(N, 6), rand(N, 7), rand(N, 8)];
      const param = T.persistent(device, p0, [N]);
      const m1 = T.persistent(device, new Float64Array(N), [N]);
      const m2 = T.persistent(device, new Float64Array(N), [N]);
      const o = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, decoupled };
      const lr = 6e-3;
      const p = Float64Array.from(p0);
      const m = new Float64Array(N);
      const v = new Float64Array(N);
      let t = 0;
      for (const g of grads) {
        t++;
        const gt = T.tensor(device, g, [N]);
        adamUpdate(device, param, gt, m1, m2, lr, t, o);
        gt.dispose();
        for (let i = 0; i < N; i++) {
          let gi = g[i] ?? 0;
          let pi = p[i] ?? 0;
          if (decoupled) pi *= 1 - lr * o.weightDecay;
          else gi += o.weightDecay * pi;
          m[i] = o.beta1 * (m[i] ?? 0) + (1 - o.beta1) * gi;
          v[i] = o.beta2 * (v[i] ?? 0) + (1 - o.beta2) * gi * gi;
          const lrT = (lr * Math.sqrt(1 - o.beta2 ** t)) / (1 - o.beta1 ** t);
          p[i] = pi - (lrT * (m[i] ?? 0)) / (Math.sqrt(v[i] ?? 0) + o.epsilon * Math.sqrt(1 - o.beta2 ** t));
        }
      }
      assertClose(await param.data(), p, 1e-5, 'adam param');
      assertClose(await m1.data(), m, 1e-5, 'adam m');
      assertClose(await m2.data(), v, 1e-4, 'adam v');
      for (const x of [param, m1, m2]) x.dispose();
    });
  }
});

/** float64 AdamW/Adam over one parameter, one step at t (m, v updated in place). */
function adamRef(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, lr: number, t: number) {
  const [b1, b2, eps, wd] = [0.9, 0.999, 1e-8, 0.01];
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] ?? 0;
    const pi = (p[i] ?? 0) * (1 - lr * wd);
    m[i] = b1 * (m[i] ?? 0) + (1 - b1) * gi;
    v[i] = b2 * (v[i] ?? 0) + (1 - b2) * gi * gi;
    const lrT = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
    p[i] = pi - (lrT * (m[i] ?? 0)) / (Math.sqrt(v[i] ?? 0) + eps * Math.sqrt(1 - b2 ** t));
  }
}

describe('multi-parameter updates', () => {
  // vec4 sizes (one over a workgroup's 1024 vec4s) and float sizes, more than one dispatch holds.
  const sizes = [4100, 8, 37, 12, 1, 64, 4, 5, 16, 20, 3];

  it('Adam over 11 parameters of mixed sizes: each matches float64, in fewer dispatches than parameters', async () => {
    const device = await testDevice();
    const [lr, t] = [6e-3, 2];
    const o = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, decoupled: true };
    const ref = sizes.map((n, k) => ({
      p: rand(n, 10 + k),
      g: rand(n, 30 + k),
      m: rand(n, 50 + k),
      v: rand(n, 70 + k).map(Math.abs),
    }));
    const targets = ref.map((r, k) => ({
      param: T.persistent(device, r.p, [sizes[k] as number]),
      grad: T.tensor(device, r.g, [sizes[k] as number]),
      moment1: T.persistent(device, r.m, [sizes[k] as number]),
      moment2: T.persistent(device, r.v, [sizes[k] as number]),
    }));
    const before = device.stats().dispatches;
    adamUpdates(device, targets, lr, t, o);
    const dispatches = device.stats().dispatches - before;
    const perDispatch = Math.min(8, Math.floor(device.limits.maxStorageBuffersPerShaderStage / 4));
    // 7 vec4 parameters and 4 float ones, in chunks of perDispatch.
    assert.equal(dispatches, Math.ceil(7 / perDispatch) + Math.ceil(4 / perDispatch));
    for (const [k, r] of ref.entries()) {
      adamRef(r.p, r.g, r.m, r.v, lr, t);
      const x = targets[k] as (typeof targets)[number];
      assertClose(await x.param.data(), r.p, 1e-5, `param ${k} (${sizes[k]} values)`);
      assertClose(await x.moment1.data(), r.m, 1e-5, `m ${k}`);
      assertClose(await x.moment2.data(), r.v, 1e-5, `v ${k}`);
    }
    for (const x of targets) for (const y of Object.values(x)) y.dispose();
  });

  it('Momentum over parameters that share a velocity buffer puts them in separate dispatches', async () => {
    const device = await testDevice();
    const n = 8;
    const shared = T.persistent(device, new Float64Array(n), [n]);
    const ps = [rand(n, 1), rand(n, 2), rand(n, 3)];
    const gs = [rand(n, 4), rand(n, 5), rand(n, 6)];
    const targets = ps.map((p, k) => ({
      param: T.persistent(device, p, [n]),
      grad: T.tensor(device, gs[k] as Float64Array, [n]),
      velocity: shared,
    }));
    const before = device.stats().dispatches;
    momentumUpdates(device, targets, { lr: 0.1, momentum: 0, weightDecay: 0 });
    assert.equal(device.stats().dispatches - before, 3);
    for (const [k, x] of targets.entries()) {
      const want = (ps[k] as Float64Array).map((v, i) => v - 0.1 * ((gs[k] as Float64Array)[i] ?? 0));
      assertClose(await x.param.data(), want, 1e-6, `param ${k}`);
    }
    for (const x of targets) {
      x.param.dispose();
      x.grad.dispose();
    }
    shared.dispose();
  });
});
