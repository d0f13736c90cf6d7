import assert from 'node:assert/strict';
import { type Device, getDevice, parameter, persistent, type Tensor, tensor } from '@segtrain/tensor';
import { describe, it } from 'vitest';
import { createOptimizer, type OptimizerConfig } from '../src/optimizer.js';

/** One parameter of a float64 reference run, with its hand-derived group settings. */
interface RefParam {
  readonly name: string;
  readonly shape: number[];
  readonly init: number[];
  readonly lrMult: number;
  readonly wd: number;
  /** Gradient-clipping scope (Paddle clips each param group separately when custom_cfg is set). */
  readonly scope: number;
}

type Clip = { kind: 'global' | 'norm'; c: number } | { kind: 'value'; lo: number; hi: number } | null;

interface RefOptions {
  readonly kind: 'sgd' | 'momentum' | 'adam' | 'adamw';
  readonly mu?: number;
  readonly nesterov?: boolean;
  readonly clip: Clip;
}

const B1 = 0.9;
const B2 = 0.999;
const EPS = 1e-8;

/** Paddle's update rules in float64; grads[s][i] null = no gradient for param i at step s. */
function reference(
  params: RefParam[],
  grads: Array<Array<number[] | null>>,
  lrs: number[],
  o: RefOptions,
): number[][] {
  const p = params.map((q) => [...q.init]);
  const vel = params.map((q) => q.init.map(() => 0));
  const m1 = params.map((q) => q.init.map(() => 0));
  const m2 = params.map((q) => q.init.map(() => 0));
  const t = params.map(() => 0);
  grads.forEach((stepGrads, s) => {
    const g = stepGrads.map((x) => (x ? [...x] : null));
    const clip = o.clip;
    if (clip?.kind === 'value')
      for (const x of g)
        if (x)
          x.forEach((v, k) => {
            x[k] = Math.min(clip.hi, Math.max(clip.lo, v));
          });
    if (clip?.kind === 'norm')
      for (const x of g) {
        if (!x) continue;
        const n = Math.sqrt(x.reduce((a, v) => a + v * v, 0));
        const sc = clip.c / Math.max(n, clip.c);
        x.forEach((v, k) => {
          x[k] = v * sc;
        });
      }
    if (clip?.kind === 'global') {
      const scopes = new Set(params.map((q) => q.scope));
      for (const sc of scopes) {
        const members = g.filter((x, i) => x && params[i]?.scope === sc) as number[][];
        if (!members.length) continue;
        const n = Math.sqrt(members.reduce((a, x) => a + x.reduce((b, v) => b + v * v, 0), 0));
        const f = clip.c / Math.max(n, clip.c);
        for (const x of members)
          x.forEach((v, k) => {
            x[k] = v * f;
          });
      }
    }
    params.forEach((q, i) => {
      const gi = g[i];
      if (!gi) return;
      const lr = (lrs[s] as number) * q.lrMult;
      const pi = p[i] as number[];
      if (o.kind === 'sgd' || o.kind === 'momentum') {
        const mu = o.kind === 'sgd' ? 0 : (o.mu ?? 0.9);
        const vi = vel[i] as number[];
        pi.forEach((w, k) => {
          const gg = (gi[k] as number) + q.wd * w;
          const v = mu * (vi[k] as number) + gg;
          vi[k] = v;
          pi[k] = w - lr * (o.nesterov ? gg + mu * v : v);
        });
      } else {
        t[i] = (t[i] as number) + 1;
        const ti = t[i] as number;
        const c2 = Math.sqrt(1 - B2 ** ti);
        const lrT = (lr * c2) / (1 - B1 ** ti);
        const a = m1[i] as number[];
        const b = m2[i] as number[];
        pi.forEach((w0, k) => {
          let w = w0;
          let gg = gi[k] as number;
          if (o.kind === 'adamw') w = w * (1 - lr * q.wd);
          else gg = gg + q.wd * w;
          a[k] = B1 * (a[k] as number) + (1 - B1) * gg;
          b[k] = B2 * (b[k] as number) + (1 - B2) * gg * gg;
          pi[k] = w - (lrT * (a[k] as number)) / (Math.sqrt(b[k] as number) + EPS * c2);
        });
      }
    });
  });
  return p;
}

/** Deterministic test values. */
function values(n: number, seed: number, scale: number): number[] {
  return Array.from(
    { length: n },
    (_, k) => (Math.round(Math.sin(seed * 12.9898 + k * 78.233) * 1000) / 1000) * scale,
  );
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function makeParams(device: Device, params: RefParam[]): Array<[string, Tensor]> {
  return params.map((q) => [q.name, parameter(device, q.init, q.shape, q.name)]);
}

function gradsFor(params: RefParam[], steps: number, scale: number, missing: Array<[number, number]> = []) {
  return Array.from({ length: steps }, (_, s) =>
    params.map((q, i) =>
      missing.some(([ms, mi]) => ms === s && mi === i) ? null : values(size(q.shape), 7 * s + i + 1, scale),
    ),
  );
}

async function run(
  device: Device,
  named: Array<[string, Tensor]>,
  config: OptimizerConfig,
  grads: Array<Array<number[] | null>>,
  lrs: number[],
  from = 0,
  opt = createOptimizer(named, config),
) {
  for (let s = from; s < grads.length; s++) {
    named.forEach(([, t], i) => {
      const g = grads[s]?.[i];
      if (g && t.requiresGrad) t.grad = tensor(device, g, t.shape);
    });
    opt.step(lrs[s] as number);
    opt.zeroGrad();
  }
  return opt;
}

async function assertClose(named: Array<[string, Tensor]>, want: number[][], tol = 2e-6): Promise<void> {
  for (const [i, [name, t]] of named.entries()) {
    const got = await t.data();
    const w = want[i] as number[];
    got.forEach((v, k) => {
      const e = w[k] as number;
      assert.ok(Math.abs(v - e) <= tol * Math.max(1, Math.abs(e)), `${name}[${k}]: ${v} vs ${e}`);
    });
  }
}

const LRS = [0.1, 0.05, 0.02];

function threeParams(
  names: [string, string, string],
  lrMult: number[],
  wd: number[],
  scope: number[],
): RefParam[] {
  const shapes = [[2, 3], [3], [2, 2]];
  return names.map((name, i) => ({
    name,
    shape: shapes[i] as number[],
    init: values(size(shapes[i] as number[]), 100 + i, 1),
    lrMult: lrMult[i] as number,
    wd: wd[i] as number,
    scope: scope[i] as number,
  }));
}

describe('Optimizer', () => {
  it('SGD: L2 decay, skips params without a gradient and frozen ones', async () => {
    const device = await getDevice();
    const params = threeParams(['a.weight', 'a.bias', 'b.weight'], [1, 1, 1], [0.01, 0.01, 0.01], [0, 0, 0]);
    const grads = gradsFor(params, 3, 1, [[1, 0]]);
    const named = makeParams(device, params);
    const frozen = persistent(device, [5, 6], [2], 'frozen');
    const opt = await run(
      device,
      [...named, ['frozen', frozen]],
      { type: 'SGD', weight_decay: 0.01 },
      [...grads.map((g) => [...g, null])],
      LRS,
    );
    assert.equal(opt.type, 'SGD');
    await assertClose(named, reference(params, grads, LRS, { kind: 'sgd', clip: null }));
    assert.deepEqual([...(await frozen.data())], [5, 6]);
  });

  it('Momentum: L2 on all params, ClipGradByGlobalNorm over all grads (no groups)', async () => {
    const device = await getDevice();
    const params = threeParams(['backbone.w', 'bn.bias', 'head.w'], [1, 1, 1], [0.05, 0.05, 0.05], [0, 0, 0]);
    const grads = gradsFor(params, 3, 1);
    const named = makeParams(device, params);
    const opt = await run(
      device,
      named,
      {
        type: 'Momentum',
        momentum: 0.9,
        weight_decay: 0.05,
        grad_clip_cfg: { name: 'ClipGradByGlobalNorm', clip_norm: 0.5 },
      },
      grads,
      LRS,
    );
    assert.equal(opt.stepCount, 3);
    await assertClose(
      named,
      reference(params, grads, LRS, { kind: 'momentum', clip: { kind: 'global', c: 0.5 } }),
    );
  });

  it('SGD + momentum key runs Nesterov Momentum with custom_cfg groups, clipped per group', async () => {
    const device = await getDevice();
    // backbone.* → group 0 (lr×0.1), *.bias → group 1 (wd×0), head.w → default group.
    const params = threeParams(
      ['backbone.conv.weight', 'head.bias', 'head.w'],
      [0.1, 1, 1],
      [0.02, 0, 0.02],
      [0, 1, 2],
    );
    const grads = gradsFor(params, 3, 2);
    const named = makeParams(device, params);
    const opt = await run(
      device,
      named,
      {
        type: 'SGD',
        momentum: 0.8,
        use_nesterov: true,
        weight_decay: 0.02,
        grad_clip_cfg: { name: 'ClipGradByGlobalNorm', clip_norm: 1 },
        custom_cfg: [
          { name: 'backbone', lr_mult: 0.1 },
          { name: 'bias', weight_decay_mult: 0 },
        ],
      },
      grads,
      LRS,
    );
    assert.equal(opt.type, 'Momentum');
    assert.deepEqual(
      opt.groups.map((g) => [g.pattern, g.lrMult, g.weightDecay, g.params.map(([n]) => n)]),
      [
        ['backbone', 0.1, 0.02, ['backbone.conv.weight']],
        ['bias', 1, 0, ['head.bias']],
        [null, 1, 0.02, ['head.w']],
      ],
    );
    await assertClose(
      named,
      reference(params, grads, LRS, {
        kind: 'momentum',
        mu: 0.8,
        nesterov: true,
        clip: { kind: 'global', c: 1 },
      }),
    );
  });

  it('Adam: L2 decay joins the gradient, ClipGradByValue (min defaults to −max)', async () => {
    const device = await getDevice();
    const params = threeParams(['x.w', 'x.b', 'y.w'], [1, 1, 1], [0.01, 0.01, 0.01], [0, 0, 0]);
    const grads = gradsFor(params, 3, 0.6);
    const named = makeParams(device, params);
    await run(
      device,
      named,
      { type: 'adam', weight_decay: 0.01, grad_clip_cfg: { name: 'ClipGradByValue', max: 0.3 } },
      grads,
      LRS,
    );
    await assertClose(
      named,
      reference(params, grads, LRS, { kind: 'adam', clip: { kind: 'value', lo: -0.3, hi: 0.3 } }),
    );
  });

  it('AdamW: decoupled decay, groups (lr_mult, weight_decay_mult), ClipGradByNorm per tensor', async () => {
    const device = await getDevice();
    const params = threeParams(
      ['enc.w', 'dec.pos_embed', 'dec.w'],
      [1, 2, 1],
      [0.05, 0.025, 0.05],
      [1, 0, 1],
    );
    const grads = gradsFor(params, 3, 1);
    const named = makeParams(device, params);
    await run(
      device,
      named,
      {
        type: 'AdamW',
        weight_decay: 0.05,
        beta1: 0.9,
        beta2: 0.999,
        grad_clip_cfg: { name: 'ClipGradByNorm', clip_norm: 0.4 },
        custom_cfg: [{ name: 'pos_embed', lr_mult: 2, weight_decay_mult: 0.5 }],
      },
      grads,
      LRS,
    );
    await assertClose(
      named,
      reference(params, grads, LRS, { kind: 'adamw', clip: { kind: 'norm', c: 0.4 } }),
    );
  });

  it('AdamW defaults weight_decay to 0.01', async () => {
    const device = await getDevice();
    const params = threeParams(['a', 'b', 'c'], [1, 1, 1], [0.01, 0.01, 0.01], [0, 0, 0]);
    const grads = gradsFor(params, 2, 1);
    const named = makeParams(device, params);
    await run(device, named, { type: 'AdamW' }, grads, LRS);
    await assertClose(named, reference(params, grads, LRS, { kind: 'adamw', clip: null }));
  });

  it('state values restore an optimizer exactly (resume), and a wrong shape names the key', async () => {
    const device = await getDevice();
    const params = threeParams(['p.w', 'p.b', 'q.w'], [1, 1, 1], [0.01, 0.01, 0.01], [0, 0, 0]);
    const grads = gradsFor(params, 3, 1);
    for (const config of [
      { type: 'AdamW', weight_decay: 0.01 },
      { type: 'Momentum', weight_decay: 0.01 },
    ] as OptimizerConfig[]) {
      const a = makeParams(device, params);
      const optA = await run(device, a, config, grads.slice(0, 2), LRS);
      const state = await optA.stateValues();
      assert.equal(state.get('@step')?.data[0], 2);
      const keys = [...state.keys()];
      if (config.type === 'AdamW')
        assert.ok(keys.includes('p.w.moment1') && keys.includes('q.w.moment2') && keys.includes('p.b.step'));
      else assert.ok(keys.includes('p.w.velocity'));
      await run(device, a, config, grads, LRS, 2, optA);

      const b = makeParams(device, params);
      // b's params as A's were after 2 steps (A's first two steps replayed), with a fresh optimizer.
      const replay = makeParams(device, params);
      await run(device, replay, config, grads.slice(0, 2), LRS);
      for (const [i, [, t]] of b.entries())
        device.write(t.buffer, await (replay[i] as [string, Tensor])[1].data());
      const optB = createOptimizer(b, config);
      optB.loadStateValues(state);
      assert.equal(optB.stepCount, 2);
      await run(device, b, config, grads, LRS, 2, optB);
      for (const [i, [name, t]] of b.entries())
        assert.deepEqual(await t.data(), await (a[i] as [string, Tensor])[1].data(), name);

      const bad = new Map(state);
      const key = config.type === 'AdamW' ? 'p.b.moment1' : 'p.b.velocity';
      bad.set(key, { shape: [4], data: new Float32Array(4) });
      assert.throws(
        () => optB.loadStateValues(bad),
        new RegExp(`'${key.replace(/\./g, '\\.')}' has shape \\[4\\]`),
      );
      const missing = new Map(state);
      missing.delete('@step');
      assert.throws(() => optB.loadStateValues(missing), /missing key\(s\) \[@step\]/);
      optA.dispose();
      optB.dispose();
    }
  });

  it('zeroGrad disposes gradients; bad configs are rejected', async () => {
    const device = await getDevice();
    const p = parameter(device, [1, 2], [2], 'w');
    const opt = createOptimizer([['w', p]], { type: 'Momentum' });
    const g = tensor(device, [1, 1], [2]);
    p.grad = g;
    opt.zeroGrad();
    assert.equal(p.grad, null);
    assert.ok(g.isDisposed);
    assert.throws(
      () => createOptimizer([['w', p]], { type: 'Lamb' as 'SGD' }),
      /unsupported optimizer type 'Lamb'/,
    );
    assert.throws(
      () =>
        createOptimizer([['w', p]], {
          type: 'SGD',
          grad_clip_cfg: { name: 'ClipGradByGlobalNorm', clip_norm: 0 },
        }),
      /clip_norm > 0/,
    );
  });
});
