import assert from 'node:assert/strict';
import { describe, expect, it } from 'vitest';
import * as T from '../src/index.js';
import { FAST_DIV, fastDivisor } from '../src/kernels/launch.js';
import { collapseDims } from '../src/kernels/strided.js';
import { checkOp, rand, stridesOf, testDevice } from '../src/testing/index.js';

const U32_MAX = 0xffffffff;

/** Divisors and dividends at the edges of the round-up method (powers of two, 2^31 ± 1, u32 max). */
const DIVISORS = [
  1,
  2,
  3,
  5,
  7,
  19,
  64,
  100,
  127,
  641,
  65535,
  65536,
  65537,
  1e6 + 3,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 31 + 1,
  U32_MAX,
];
function dividends(d: number): number[] {
  const near = [
    0,
    1,
    d - 1,
    d,
    d + 1,
    2 * d - 1,
    2 * d,
    2 ** 24 - 1,
    2 ** 24 + 1,
    2 ** 31,
    U32_MAX - 1,
    U32_MAX,
  ];
  let s = d | 1;
  const random = Array.from({ length: 24 }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  });
  return [...near, ...random].filter((n) => n >= 0 && n <= U32_MAX);
}

describe('fast u32 division', () => {
  it('fdiv on the GPU equals floor(n / d) for every tested pair', async () => {
    const device = await testDevice();
    const pairs = DIVISORS.flatMap((d) => dividends(d).map((n) => [n, d] as const));
    const ns = new Uint32Array(pairs.map(([n]) => n));
    const ds = new Uint32Array(pairs.flatMap(([, d]) => fastDivisor(d)));
    const nT = T.tensor(device, new Int32Array(ns.buffer), [ns.length], 'i32');
    const dT = T.tensor(device, new Int32Array(ds.buffer), [ds.length], 'i32');
    const out = T.tensor(device, new Int32Array(ns.length), [ns.length], 'i32');
    const kernel = device.kernel({
      key: 'test/fdiv',
      bindings: ['read', 'read', 'rw'],
      workgroupSize: 64,
      wgsl: () => `
@group(0) @binding(0) var<uniform> u: vec4<u32>;
@group(0) @binding(1) var<storage, read> ns: array<u32>;
@group(0) @binding(2) var<storage, read> ds: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> q: array<u32>;
${FAST_DIV}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= u.x) { return; }
  q[gid.x] = fdiv(ns[gid.x], ds[gid.x]);
}`,
    });
    device.dispatch(kernel, [nT.buffer, dT.buffer, out.buffer], new Uint32Array([ns.length, 0, 0, 0]), [
      Math.ceil(ns.length / 64),
    ]);
    const got = new Uint32Array((await out.data()).buffer);
    const wrong = pairs.filter(([n, d], i) => got[i] !== Math.floor(n / d));
    assert.deepEqual(wrong, [], 'pairs whose quotient differs');
    for (const t of [nT, dT, out]) t.dispose();
  });

  it('empty tensors still copy, broadcast and reduce (a dim of 0 divides by nothing)', async () => {
    const device = await testDevice();
    const x = T.zeros(device, [2, 0, 3]);
    const y = T.zeros(device, [2, 1, 3]);
    const results = [T.transpose(x, [2, 0, 1]), T.add(x, y), T.sum(x, [0, 1])];
    expect(results.map((r) => r.shape)).toEqual([[3, 2, 0], [2, 0, 3], [3]]);
    expect(Array.from(await (results[2] as T.Tensor).data())).toEqual([0, 0, 0]);
    for (const t of [x, y, ...results]) t.dispose();
  });

  it('rejects divisors that are not u32 ≥ 1', () => {
    expect(() => fastDivisor(0)).toThrow(/not a u32/);
    expect(() => fastDivisor(2 ** 32)).toThrow(/not a u32/);
    expect(() => fastDivisor(1.5)).toThrow(/not a u32/);
  });
});

describe('collapseDims', () => {
  it('merges runs every operand walks contiguously and drops size-1 dims', () => {
    // [4, 64, 32, 64] × [4, 64, 1, 1]: a is contiguous, b is constant over the last two dims.
    const out = collapseDims([4, 64, 32, 64], [stridesOf([4, 64, 32, 64]), [64, 1, 0, 0]]);
    expect(out).toEqual({
      dims: [256, 2048],
      strides: [
        [2048, 1],
        [1, 0],
      ],
    });
    expect(collapseDims([1, 5, 1], [[5, 1, 1]])).toEqual({ dims: [5], strides: [[1]] });
    expect(collapseDims([1, 1], [[1, 1]])).toEqual({ dims: [1], strides: [[0]] });
    // A transpose's strides never merge.
    expect(collapseDims([3, 4], [[1, 3]])).toEqual({ dims: [3, 4], strides: [[1, 3]] });
  });
});

/** out[i] = x[Σ coord·stride] over `shape` with `strides` into x (float64). */
function gatherRef(
  x: Float64Array,
  shape: readonly number[],
  strides: readonly number[],
  offset = 0,
): Float64Array {
  const so = stridesOf(shape);
  const n = shape.reduce((a, b) => a * b, 1);
  return Float64Array.from({ length: n }, (_, i) => {
    let off = offset;
    shape.forEach((dim, d) => {
      off += (Math.floor(i / (so[d] ?? 1)) % dim) * (strides[d] ?? 0);
    });
    return x[off] ?? Number.NaN;
  });
}

// Rank 6 with size-1 dims between others: the kernels index over the collapsed dims only.
describe('strided kernels at rank 6', () => {
  it('broadcast [2,1,3,1,4,5] + [1,3,1,2,1,5]', () => {
    const sa = [2, 1, 3, 1, 4, 5];
    const sb = [1, 3, 1, 2, 1, 5];
    const out = sa.map((d, i) => Math.max(d, sb[i] ?? 1));
    const bstr = (s: number[]) => stridesOf(s).map((st, i) => ((s[i] ?? 1) === 1 ? 0 : st));
    return checkOp({
      name: 'broadcast rank 6',
      inputs: [{ shape: sa }, { shape: sb }],
      gpu: ([a, b]) => T.add(a as T.Tensor, b as T.Tensor),
      ref: ([a, b]) => {
        const ga = gatherRef(a as Float64Array, out, bstr(sa));
        const gb = gatherRef(b as Float64Array, out, bstr(sb));
        return ga.map((v, i) => v + (gb[i] ?? 0));
      },
    });
  });

  it('transpose [2,3,1,4,5,2] by [5,0,3,1,4,2], then a slice along axis 3', () => {
    const shape = [2, 3, 1, 4, 5, 2];
    const perm = [5, 0, 3, 1, 4, 2];
    const permuted = perm.map((p) => shape[p] ?? 1);
    const xs = stridesOf(shape);
    return checkOp({
      name: 'transpose+slice rank 6',
      inputs: [{ shape }],
      gpu: ([x]) => T.slice(T.transpose(x as T.Tensor, perm), 3, 1, 2),
      ref: ([x]) => {
        const t = gatherRef(
          x as Float64Array,
          permuted,
          perm.map((p) => xs[p] ?? 0),
        );
        const ts = stridesOf(permuted);
        return gatherRef(t, [2, 2, 4, 2, 5, 1], ts, ts[3] ?? 0);
      },
    });
  });

  // Transposes of the last two collapsed dims with sizes that are multiples of 4 move 4×4 tiles
  // (forward and, through the inverse permutation, backward).
  for (const [shape, perm] of [
    [
      [2, 8, 12],
      [0, 2, 1],
    ],
    [
      [2, 4, 3, 4],
      [0, 2, 3, 1],
    ],
    [
      [4, 8],
      [1, 0],
    ],
    [
      [3, 4, 20],
      [0, 2, 1],
    ],
  ] as Array<[number[], number[]]>) {
    it(`tiled transpose of [${shape}] by [${perm}]`, () => {
      const xs = stridesOf(shape);
      const outShape = perm.map((p) => shape[p] ?? 1);
      return checkOp({
        name: `tiled transpose [${shape}]`,
        inputs: [{ shape }],
        gpu: ([x]) => T.transpose(x as T.Tensor, perm),
        ref: ([x]) =>
          gatherRef(
            x as Float64Array,
            outShape,
            perm.map((p) => xs[p] ?? 0),
          ),
      });
    });
  }

  it('sum over interleaved axes of a rank-6 tensor', () => {
    const shape = [2, 3, 2, 1, 3, 4];
    const n = shape.reduce((a, b) => a * b, 1);
    return checkOp({
      name: 'sum rank 6',
      inputs: [{ shape, data: rand(n, 5) }],
      gpu: ([x]) => T.sum(x as T.Tensor, [0, 2, 4]),
      ref: ([x]) => {
        const xs = stridesOf(shape);
        const out = new Float64Array(3 * 1 * 4);
        for (let i = 0; i < n; i++) {
          const c = shape.map((d, k) => Math.floor(i / (xs[k] ?? 1)) % d);
          const at = (c[1] ?? 0) * 4 + (c[5] ?? 0);
          out[at] = (out[at] ?? 0) + ((x as Float64Array)[i] ?? 0);
        }
        return out;
      },
    });
  });
});
