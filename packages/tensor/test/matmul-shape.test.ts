import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { gemmCandidates, gemmShapeClass, gemmSplits, gemmTiling } from '../src/kernels/gemm-template.js';
import { type Activation, type GemmArgs, gemm } from '../src/kernels/matmul.js';
import { checkOp, erf64, stridesOf, testDevice, withTunedChoices } from '../src/testing/index.js';

function matmulRef(sa: number[], sb: number[]) {
  return ([a, b]: Float64Array[]) => {
    const [m = 0, k = 0] = sa.slice(-2);
    const n = sb.at(-1) ?? 0;
    const ba = sa.length === 3 ? (sa[0] ?? 1) : 1;
    const bb = sb.length === 3 ? (sb[0] ?? 1) : 1;
    const batch = Math.max(ba, bb);
    const out = new Float64Array(batch * m * n);
    for (let t = 0; t < batch; t++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++)
            s +=
              (a?.[(ba === 1 ? 0 : t) * m * k + i * k + p] ?? 0) *
              (b?.[(bb === 1 ? 0 : t) * k * n + p * n + j] ?? 0);
          out[t * m * n + i * n + j] = s;
        }
    return out;
  };
}

/** Smooth test data in ±0.5: sin(i·step + seed) / 2. */
const sines = (size: number, seed: number, step = 0.7) =>
  Float32Array.from({ length: size }, (_, i) => Math.sin(i * step + seed) * 0.5);

/** Runs `gemm` on the GPU and compares with float64: the largest error and the largest |result|. */
async function gemmAgainstFloat64(av: Float32Array, bv: Float32Array, args: GemmArgs) {
  const device = await testDevice();
  const { batch, m, n, k, transA, transB, batchStrideA, batchStrideB } = args;
  const a = T.tensor(device, av, [av.length]);
  const b = T.tensor(device, bv, [bv.length]);
  const c = gemm(device, a, b, args);
  const shape = [...c.shape];
  const got = await c.data();
  for (const t of [a, b, c]) t.dispose();
  let worst = 0;
  let largest = 0;
  for (let t = 0; t < batch; t++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const x = av[t * batchStrideA + (transA ? p * m + i : i * k + p)] ?? 0;
          const y = bv[t * batchStrideB + (transB ? j * k + p : p * n + j)] ?? 0;
          sum += x * y;
        }
        worst = Math.max(worst, Math.abs(sum - (got[(t * m + i) * n + j] ?? Number.NaN)));
        largest = Math.max(largest, Math.abs(sum));
      }
  return { worst, largest, shape };
}

/** Runs `fn` with the GEMM tiling `name` chosen for `family` at these sizes; checks that it ran. */
async function withTiling<R>(
  family: string,
  size: { m: number; n: number; k: number; batch: number },
  name: string,
  fn: () => Promise<R>,
): Promise<R> {
  const device = await testDevice();
  const shapeClass = gemmShapeClass(family, size.m, size.n, size.k, size.batch);
  const { result, kernels } = await withTunedChoices(device, [{ family, shapeClass, name }], fn);
  assert.ok(
    kernels.includes(`gemm/${family}/${name}`),
    `${family} ${shapeClass}: the pinned tiling ${name} did not run`,
  );
  return result;
}

describe('matmul', () => {
  const cases: Array<[number[], number[]]> = [
    [
      [5, 7],
      [7, 3],
    ],
    [
      [9, 13],
      [13, 11],
    ],
    [
      [2, 5, 6],
      [2, 6, 4],
    ],
    [
      [3, 4, 5],
      [5, 6],
    ],
    [
      [5, 4],
      [3, 4, 9],
    ],
    [
      [1, 1],
      [1, 1],
    ],
    // m ≥ 32 and n ≥ 128: the 16×16 register tiles on subgroup adapters, with edge tiles.
    [
      [33, 5],
      [5, 130],
    ],
  ];
  for (const [sa, sb] of cases) {
    it(`[${sa}] x [${sb}]`, () =>
      checkOp({
        name: `matmul [${sa}] [${sb}]`,
        inputs: [{ shape: sa }, { shape: sb }],
        gpu: ([a, b]) => T.matmul(a as T.Tensor, b as T.Tensor),
        ref: matmulRef(sa, sb),
      }));
  }
  it('every transpose combination, batched, at a size with edge tiles of the large tiling', async () => {
    const [batch, m, n, k] = [2, 34, 131, 7];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const { worst } = await gemmAgainstFloat64(sines(batch * m * k, 1), sines(batch * k * n, 2), {
          batch,
          m,
          n,
          k,
          transA,
          transB,
          batchStrideA: m * k,
          batchStrideB: k * n,
        });
        assert.ok(worst < 1e-5, `transA ${transA} transB ${transB}: max error ${worst}`);
      }
    }
  });

  it('every tiling the autotuner may choose on this adapter matches float64 (edge tiles, transposes, batches)', async () => {
    const device = await testDevice();
    const [batch, m, n, k] = [2, 34, 131, 37];
    const names = gemmCandidates(device, m, n).map((c) => c.name);
    assert.ok(names.length >= 6, `only ${names.length} candidates`);
    for (const name of names)
      for (const [transA, transB] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const family = `matmul/${transA ? 't' : 'n'}${transB ? 't' : 'n'}`;
        const { worst } = await withTiling(family, { m, n, k, batch }, name, () =>
          gemmAgainstFloat64(sines(batch * m * k, 5), sines(k * n, 6), {
            batch,
            m,
            n,
            k,
            transA,
            transB,
            batchStrideA: m * k,
            batchStrideB: 0,
          }),
        );
        assert.ok(worst < 1e-5, `${name} ${family}: max error ${worst}`);
      }
  });

  it('every tiling the autotuner may choose sums split-K ranges (k ranges that end inside a k tile)', async () => {
    const device = await testDevice();
    const [batch, m, n, k] = [1, 9, 13, 3000];
    for (const { name, config } of gemmCandidates(device, m, n)) {
      assert.ok(gemmSplits(device, config, m, n, k, batch) > 1, `${name} should split k`);
      const { worst, largest } = await withTiling('matmul/nn', { m, n, k, batch }, name, () =>
        gemmAgainstFloat64(sines(m * k, 7, 0.37), sines(k * n, 8, 0.37), {
          batch,
          m,
          n,
          k,
          transA: false,
          transB: false,
          batchStrideA: 0,
          batchStrideB: 0,
        }),
      );
      assert.ok(worst < 1e-5, `${name}: max error ${worst} (largest |sum| ${largest})`);
    }
  });

  it('split-K: a small result over a long reduction, every transpose combination, batched and broadcast', async () => {
    const device = await testDevice();
    const [batch, m, n, k] = [2, 9, 13, 3000];
    assert.ok(gemmSplits(device, gemmTiling(device, m, n), m, n, k, batch) > 1, 'this case should split k');
    for (const [transA, transB, strideB] of [
      [false, false, k * n],
      [true, false, k * n],
      [false, true, k * n],
      [true, true, 0],
    ] as const) {
      const av = sines(batch * m * k, 1, 0.37);
      const bv = sines((strideB === 0 ? 1 : batch) * k * n, 2, 0.37);
      const { worst, largest, shape } = await gemmAgainstFloat64(av, bv, {
        batch,
        m,
        n,
        k,
        transA,
        transB,
        batchStrideA: m * k,
        batchStrideB: strideB,
      });
      assert.deepEqual(shape, [batch, m, n]);
      // 3000-term float32 sums: relative to the largest result.
      assert.ok(
        worst < 1e-6 * Math.max(largest, 1),
        `transA ${transA} transB ${transB}: max error ${worst} of ${largest}`,
      );
    }
  });

  it('split-K matmul with gradients ([2, 600] x [600, 2])', () =>
    checkOp({
      name: 'matmul split-K',
      inputs: [{ shape: [2, 600] }, { shape: [600, 2] }],
      gpu: ([a, b]) => T.matmul(a as T.Tensor, b as T.Tensor),
      ref: matmulRef([2, 600], [600, 2]),
    }));

  it('rejects shapes that do not multiply', async () => {
    const device = await testDevice();
    const a = T.zeros(device, [2, 3]);
    const b = T.zeros(device, [4, 5]);
    assert.throws(() => T.matmul(a, b), /matmul: shapes \[2, 3\] and \[4, 5\] do not multiply/);
    a.dispose();
    b.dispose();
  });
});

function permuteRef(shape: number[], perm: number[]) {
  return ([x]: Float64Array[]) => {
    const outShape = perm.map((p) => shape[p] ?? 1);
    const so = stridesOf(outShape);
    const si = stridesOf(shape);
    const out = new Float64Array(x?.length ?? 0);
    for (let i = 0; i < out.length; i++) {
      let off = 0;
      for (let d = 0; d < perm.length; d++)
        off += (Math.floor(i / (so[d] ?? 1)) % (outShape[d] ?? 1)) * (si[perm[d] ?? 0] ?? 0);
      out[i] = x?.[off] ?? 0;
    }
    return out;
  };
}

describe('shape ops', () => {
  it('transpose NCHW -> NHWC', () =>
    checkOp({
      name: 'transpose',
      inputs: [{ shape: [2, 3, 4, 5] }],
      gpu: ([x]) => T.transpose(x as T.Tensor, [0, 2, 3, 1]),
      ref: permuteRef([2, 3, 4, 5], [0, 2, 3, 1]),
    }));
  it('reshape', () =>
    checkOp({
      name: 'reshape',
      inputs: [{ shape: [2, 3, 4] }],
      gpu: ([x]) => T.reshape(x as T.Tensor, [6, -1]),
      ref: ([x]) => Float64Array.from(x as Float64Array),
    }));
  // float64 references, outer × (axis × inner) rows: the slice [start, start + length) along axis 1
  // of `shape`, and the concat of `a` and `b` (shapes [outer, ·, ...inner]) along axis 1.
  const sliceRef =
    (shape: number[], axis: number, start: number, length: number) =>
    ([x]: Float64Array[]): Float64Array => {
      const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
      const d = shape[axis] ?? 1;
      const out: number[] = [];
      for (let o = 0; o < outer; o++)
        for (let k = start; k < start + length; k++)
          for (let i = 0; i < inner; i++) out.push(x?.[(o * d + k) * inner + i] ?? 0);
      return Float64Array.from(out);
    };
  const concatRef =
    (shapes: number[][], axis = 1) =>
    (parts: Float64Array[]): Float64Array => {
      const outer = (shapes[0] ?? []).slice(0, axis).reduce((p, q) => p * q, 1);
      const rows = shapes.map((shape) => shape.slice(axis).reduce((p, q) => p * q, 1));
      const out: number[] = [];
      for (let o = 0; o < outer; o++)
        parts.forEach((part, k) => {
          const row = rows[k] ?? 0;
          for (let i = 0; i < row; i++) out.push(part[o * row + i] ?? 0);
        });
      return Float64Array.from(out);
    };
  it('concat along channels', () =>
    checkOp({
      name: 'concat',
      inputs: [{ shape: [2, 1, 3] }, { shape: [2, 2, 3] }],
      gpu: ([a, b]) => T.concat([a as T.Tensor, b as T.Tensor], 1),
      ref: concatRef([
        [2, 1, 3],
        [2, 2, 3],
      ]),
    }));
  // Slices and concats along an axis whose inner block is a multiple of 4 move whole vec4s (offsets
  // and strides too); [2, 5, 3] (inner 3) and [3, 6] columns 0..4 (row stride 6) do not.
  for (const [shape, axis, start, length] of [
    [[2, 5, 3], 1, 1, 3],
    [[2, 5, 2, 4], 1, 1, 3],
    [[3, 6, 8], 1, 2, 4],
    [[3, 6], 1, 0, 4],
  ] as Array<[number[], number, number, number]>) {
    it(`slice [${shape}] axis ${axis} from ${start}, ${length} long, with its gradient`, () =>
      checkOp({
        name: 'slice',
        inputs: [{ shape }],
        gpu: ([x]) => T.slice(x as T.Tensor, axis, start, length),
        ref: sliceRef(shape, axis, start, length),
      }));
  }
  it('concat of whole vec4 runs along channels ([2, 1, 2, 4] and [2, 3, 2, 4]), with gradients', () =>
    checkOp({
      name: 'concat4',
      inputs: [{ shape: [2, 1, 2, 4] }, { shape: [2, 3, 2, 4] }],
      gpu: ([a, b]) => T.concat([a as T.Tensor, b as T.Tensor], 1),
      ref: concatRef([
        [2, 1, 2, 4],
        [2, 3, 2, 4],
      ]),
    }));
  // One dispatch concatenates (and one splits the gradient back into) up to 7 parts: 9 parts take
  // two; widths that are not all multiples of 4 move floats; axis 0 has one row, the last axis many.
  for (const [label, shapes, axis, frozen] of [
    [
      '9 parts of whole vec4 runs along channels (two dispatches each way)',
      [1, 2, 1, 3, 2, 1, 1, 2, 1].map((c) => [2, c, 2, 2]),
      1,
      -1,
    ],
    [
      '3 parts along axis 0, one without a gradient',
      [
        [1, 3, 3],
        [2, 3, 3],
        [1, 3, 3],
      ],
      0,
      1,
    ],
    [
      '4 parts along the last axis (rows of 2, 5, 1, 4)',
      [
        [3, 2],
        [3, 5],
        [3, 1],
        [3, 4],
      ],
      1,
      -1,
    ],
    [
      'a part of size 0 between two',
      [
        [2, 2, 4],
        [2, 0, 4],
        [2, 1, 4],
      ],
      1,
      1,
    ],
  ] as Array<[string, number[][], number, number]>) {
    it(`concat of ${label}`, () =>
      checkOp({
        name: `concat ${label}`,
        inputs: shapes.map((shape, i) => ({ shape, grad: i !== frozen })),
        gpu: (parts) => T.concat(parts, axis),
        ref: concatRef(shapes, axis),
      }));
  }
  it('split is the inverse of concat', () =>
    checkOp({
      name: 'split',
      inputs: [{ shape: [4, 6] }],
      gpu: ([x]) => {
        const [p, q] = T.split(x as T.Tensor, 1, [2, 4]);
        return T.concat([q as T.Tensor, p as T.Tensor], 1);
      },
      ref: ([x]) => {
        const out: number[] = [];
        for (let r = 0; r < 4; r++) {
          for (let c = 2; c < 6; c++) out.push(x?.[r * 6 + c] ?? 0);
          for (let c = 0; c < 2; c++) out.push(x?.[r * 6 + c] ?? 0);
        }
        return Float64Array.from(out);
      },
    }));
  it('sum, mean and max over axes', async () => {
    await checkOp({
      name: 'sum',
      inputs: [{ shape: [2, 3, 4] }],
      gpu: ([x]) => T.sum(x as T.Tensor, [0, 2]),
      ref: ([x]) => reduceRef(x as Float64Array, (a, b) => a + b, 0, 1),
    });
    await checkOp({
      name: 'mean',
      inputs: [{ shape: [2, 3, 4] }],
      gpu: ([x]) => T.mean(x as T.Tensor, [0, 2]),
      ref: ([x]) => reduceRef(x as Float64Array, (a, b) => a + b, 0, 1 / 8),
    });
    await checkOp({
      name: 'max',
      inputs: [{ shape: [2, 3, 4] }],
      gpu: ([x]) => T.max(x as T.Tensor, [0, 2]),
      ref: ([x]) => reduceRef(x as Float64Array, Math.max, Number.NEGATIVE_INFINITY, 1),
    });
  });
  it('a large sum folds partial sums', () =>
    checkOp({
      name: 'big sum',
      // 5000 > the 2048-element chunk, so partial sums are folded; the O(n²) finite differences stay cheap.
      inputs: [{ shape: [2, 5000] }],
      gpu: ([x]) => T.sum(x as T.Tensor, 1),
      ref: ([x]) =>
        Float64Array.from([0, 1], (r) =>
          (x as Float64Array).slice(r * 5000, (r + 1) * 5000).reduce((a, b) => a + b, 0),
        ),
    }));
});

/** Reduces [2, 3, 4] over axes 0 and 2. */
function reduceRef(
  x: Float64Array,
  f: (a: number, b: number) => number,
  init: number,
  factor: number,
): Float64Array {
  const out = new Float64Array(3).fill(init);
  for (let n = 0; n < 2; n++)
    for (let c = 0; c < 3; c++)
      for (let w = 0; w < 4; w++) out[c] = f(out[c] ?? 0, x[n * 12 + c * 4 + w] ?? 0);
  return out.map((v) => v * factor);
}

describe('linear with a fused bias/activation epilogue (Paddle [in, out] weights)', () => {
  const acts: Record<string, (v: number) => number> = {
    none: (v) => v,
    relu: (v) => Math.max(v, 0),
    gelu: (v) => 0.5 * v * (1 + erf64(v / Math.SQRT2)),
  };
  // The last case fills the 16×16 register tiles of subgroup adapters (m = 34, n = 129: edge tiles).
  const shapes: Array<[number[], number, number]> = [
    [[2, 5, 6], 6, 7],
    [[2, 17, 6], 6, 129],
  ];
  const linearCase = (xs: number[], k: number, n: number, activation: Activation, withBias: boolean) =>
    checkOp({
      name: `linear ${activation}`,
      inputs: [{ shape: xs }, { shape: [k, n] }, ...(withBias ? [{ shape: [n] }] : [])],
      gpu: ([x, w, b]) => T.linear(x as T.Tensor, w as T.Tensor, b ?? null, { activation }),
      ref: ([x, w, b]) => {
        const m = (xs[0] ?? 1) * (xs[1] ?? 1);
        const out = new Float64Array(m * n);
        for (let i = 0; i < m; i++)
          for (let j = 0; j < n; j++) {
            let s = b ? (b[j] ?? 0) : 0;
            for (let p = 0; p < k; p++) s += (x?.[i * k + p] ?? 0) * (w?.[p * n + j] ?? 0);
            out[i * n + j] = (acts[activation] as (v: number) => number)(s);
          }
        return out;
      },
    });
  for (const [xs, k, n] of shapes)
    for (const activation of ['none', 'relu', 'gelu'] as const) {
      for (const withBias of [true, false]) {
        if (n > 100 && activation !== 'gelu') continue;
        it(`${activation}${withBias ? ' + bias' : ''} on [${xs}] x [${k}, ${n}]`, () =>
          linearCase(xs, k, n, activation, withBias));
      }
    }

  it('gelu + bias on [2,17,6] x [6, 129] with k tiles in workgroup memory (every such tiling the autotuner may choose)', async () => {
    const device = await testDevice();
    const [m, k, n] = [34, 6, 129];
    const staged = gemmCandidates(device, m, n).filter((c) => c.config.bk !== undefined);
    assert.ok(staged.length >= 4);
    for (const { name } of staged)
      await withTiling('linear/gelu/bias/pre', { m, n, k, batch: 1 }, name, () =>
        linearCase([2, 17, 6], k, n, 'gelu', true),
      );
  });
});
