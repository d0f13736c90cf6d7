import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { checkOp, erf64, rand, stridesOf, testDevice } from '../src/testing/index.js';

const map =
  (f: (x: number) => number) =>
  ([x]: Float64Array[]) =>
    (x as Float64Array).map(f);

/** NumPy broadcasting in float64. */
function broadcastRef(f: (a: number, b: number) => number, sa: number[], sb: number[]) {
  return ([a, b]: Float64Array[]) => {
    const rank = Math.max(sa.length, sb.length);
    const pa = [...new Array(rank - sa.length).fill(1), ...sa];
    const pb = [...new Array(rank - sb.length).fill(1), ...sb];
    const out = pa.map((d, i) => Math.max(d, pb[i] ?? 1));
    const so = stridesOf(out);
    const ta = stridesOf(pa);
    const tb = stridesOf(pb);
    const n = out.reduce((x, y) => x * y, 1);
    const r = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let ia = 0;
      let ib = 0;
      for (let d = 0; d < rank; d++) {
        const c = Math.floor(i / (so[d] ?? 1)) % (out[d] ?? 1);
        if ((pa[d] ?? 1) > 1) ia += c * (ta[d] ?? 0);
        if ((pb[d] ?? 1) > 1) ib += c * (tb[d] ?? 0);
      }
      r[i] = f(a?.[ia] ?? 0, b?.[ib] ?? 0);
    }
    return r;
  };
}

// [2, 3, 5, 7]: one float per element; [3, 5, 8, 20] (a multiple of 4, over one workgroup's 1024
// vec4s with a partial tail): the vec4 path.
describe.each([
  [2, 3, 5, 7],
  [3, 5, 8, 20],
])('unary ops: forward vs float64, backward vs finite differences (%i×%i×%i×%i)', (...shape) => {
  const positive = rand(
    shape.reduce((a, b) => a * b, 1),
    5,
    0.2,
    2,
  );
  const cases: Array<[string, (x: T.Tensor) => T.Tensor, (x: number) => number, ArrayLike<number>?]> = [
    ['neg', T.neg, (x) => -x],
    ['relu', T.relu, (x) => Math.max(x, 0)],
    ['exp', T.exp, Math.exp],
    ['log', T.log, Math.log, positive],
    ['sqrt', T.sqrt, Math.sqrt, positive],
    ['sigmoid', T.sigmoid, (x) => 1 / (1 + Math.exp(-x))],
    ['tanh', T.tanh, Math.tanh],
    ['gelu', T.gelu, (x) => 0.5 * x * (1 + erf64(x / Math.SQRT2))],
    ['pow 3', (x) => T.powScalar(x, 3), (x) => x ** 3],
    ['pow 0.5', (x) => T.powScalar(x, 0.5), (x) => x ** 0.5, positive],
    ['affine', (x) => T.affine(x, 2.5, -1), (x) => 2.5 * x - 1],
    ['clamp', (x) => T.clamp(x, -0.5, 0.25), (x) => Math.min(Math.max(x, -0.5), 0.25)],
  ];
  for (const [name, gpu, f, data] of cases) {
    it(name, () =>
      checkOp({
        name,
        inputs: [{ shape, ...(data ? { data } : {}) }],
        gpu: ([x]) => gpu(x as T.Tensor),
        ref: map(f),
      }),
    );
  }
});

describe('binary ops with broadcasting', () => {
  const shapes: Array<[number[], number[]]> = [
    [
      [2, 3, 4],
      [2, 3, 4],
    ],
    [
      [2, 3, 4, 5],
      [1, 3, 1, 1],
    ],
    [
      [3, 1, 5],
      [4, 1],
    ],
    [[7], [2, 3, 7]],
    [[2, 1, 3], [1]],
  ];
  const ops: Array<[string, (a: T.Tensor, b: T.Tensor) => T.Tensor, (a: number, b: number) => number]> = [
    ['add', T.add, (a, b) => a + b],
    ['sub', T.sub, (a, b) => a - b],
    ['mul', T.mul, (a, b) => a * b],
    ['div', T.div, (a, b) => a / b],
  ];
  for (const [name, gpu, f] of ops) {
    for (const [sa, sb] of shapes) {
      const nb = sb.reduce((x, y) => x * y, 1);
      const bData = name === 'div' ? rand(nb, 3, 0.5, 2) : undefined;
      it(`${name} [${sa}] [${sb}]`, () =>
        checkOp({
          name: `${name} [${sa}] [${sb}]`,
          inputs: [{ shape: sa }, { shape: sb, ...(bData ? { data: bData } : {}) }],
          gpu: ([a, b]) => gpu(a as T.Tensor, b as T.Tensor),
          ref: broadcastRef(f, sa, sb),
        }));
    }
  }
  it('where', () =>
    checkOp({
      name: 'where',
      inputs: [
        { shape: [3, 4], data: Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? 1 : 0)), grad: false },
        { shape: [3, 4] },
        { shape: [3, 4] },
      ],
      gpu: ([c, a, b]) => T.where(c as T.Tensor, a as T.Tensor, b as T.Tensor),
      ref: ([c, a, b]) =>
        (a as Float64Array).map((v, i) => ((c as Float64Array)[i] ? v : ((b as Float64Array)[i] ?? 0))),
    }));
});

describe('zeros, full', () => {
  it('zeros clear a reused pool buffer without a dispatch, in order with the dispatches around them', async () => {
    const device = await testDevice();
    // Leave nonzero floats in a pool buffer of a size class no other test uses, then take it back.
    const stale = T.full(device, [123457], 7.5);
    stale.dispose();
    // Released buffers are reused after the next submit.
    await device.sync();
    const before = device.stats().dispatches;
    const z = T.zeros(device, [123457]);
    assert.equal(device.stats().dispatches, before, 'a zero fill is a buffer clear, not a dispatch');
    // A dispatch recorded after the clear sees the zeros: z + 1 = 1 everywhere.
    const one = T.affine(z, 1, 1);
    assert.deepEqual([...new Set(await z.data())], [0]);
    assert.deepEqual([...new Set(await one.data())], [1]);
    for (const t of [z, one]) t.dispose();
  });
  it('full with −0 keeps the sign (the fill kernel), other values as given', async () => {
    const device = await testDevice();
    const negativeZero = T.full(device, [5], -0);
    assert.ok(Array.from(await negativeZero.data()).every((v) => Object.is(v, -0)));
    const value = T.full(device, [6], -2.25);
    assert.deepEqual(Array.from(await value.data()), new Array(6).fill(-2.25));
    for (const t of [negativeZero, value]) t.dispose();
  });
});
