import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { adamUpdate, momentumUpdate } from '../src/kernels/optimizer.js';
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
