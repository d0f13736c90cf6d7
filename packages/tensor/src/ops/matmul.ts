import { isGradEnabled, record, traceAttrs } from '../autograd/engine.js';
import { mapKernel } from '../kernels/elementwise.js';
import { emptyTensor, reshapeInto } from '../kernels/launch.js';
import { type Activation, gemm, gemmBiasActivation } from '../kernels/matmul.js';
import { reduceTo } from '../kernels/reduce.js';
import { formatShape, type Tensor } from '../tensor.js';

/**
 * Matrix product of [..., M, K] and [..., K, N] (rank 2 or 3; a rank-2 operand is shared by every
 * batch of the other). Backward uses the same GEMM with transposed operands.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank < 2 || a.rank > 3 || b.rank < 2 || b.rank > 3) {
    throw new Error(
      `matmul: operands must have rank 2 or 3, got ${formatShape(a.shape)} and ${formatShape(b.shape)}`,
    );
  }
  const [m = 0, k = 0] = a.shape.slice(-2);
  const [kb = 0, n = 0] = b.shape.slice(-2);
  const batchA = a.rank === 3 ? (a.shape[0] ?? 1) : 1;
  const batchB = b.rank === 3 ? (b.shape[0] ?? 1) : 1;
  if (k !== kb || (batchA !== batchB && batchA !== 1 && batchB !== 1)) {
    throw new Error(`matmul: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not multiply`);
  }
  const batch = Math.max(batchA, batchB);
  const strideA = batchA === 1 ? 0 : m * k;
  const strideB = batchB === 1 ? 0 : k * n;
  const device = a.device;
  const raw = gemm(device, a, b, {
    batch,
    m,
    n,
    k,
    transA: false,
    transB: false,
    batchStrideA: strideA,
    batchStrideB: strideB,
  });
  // The GEMM writes [m, n] for one matrix; a rank-3 operand makes the result [batch, m, n].
  const out = a.rank === 3 || b.rank === 3 ? reshapeInto(raw, [batch, m, n]) : raw;
  return record(out, 'matmul', [a, b], [a, b], (g) => {
    const gStride = m * n;
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = g · Bᵀ, summed over the batch when A was shared.
      const full = gemm(device, g, b, {
        batch,
        m,
        n: k,
        k: n,
        transA: false,
        transB: true,
        batchStrideA: gStride,
        batchStrideB: strideB,
      });
      ga = batchA === 1 && batch > 1 ? reduceTo(device, full, [1, m, k], 'sum') : full;
      if (ga !== full) full.dispose();
      ga = reshapeInto(ga, a.shape);
    }
    if (b.requiresGrad) {
      // dB = Aᵀ · g.
      const full = gemm(device, a, g, {
        batch,
        m: k,
        n,
        k: m,
        transA: true,
        transB: false,
        batchStrideA: strideA,
        batchStrideB: gStride,
      });
      gb = batchB === 1 && batch > 1 ? reduceTo(device, full, [1, k, n], 'sum') : full;
      if (gb !== full) full.dispose();
      gb = reshapeInto(gb, b.shape);
    }
    return [ga, gb];
  });
}

export interface LinearOptions {
  /** Fused into the GEMM's epilogue. */
  readonly activation?: Activation;
}

/**
 * y = act(x·w + bias) over the last axis, with w in Paddle's Linear layout [in, out]; bias and
 * activation are fused into the GEMM epilogue. x is [..., in]; y is [..., out].
 */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null, options: LinearOptions = {}): Tensor {
  const activation = options.activation ?? 'none';
  const k = x.shape.at(-1) ?? 0;
  if (w.rank !== 2 || w.shape[0] !== k)
    throw new Error(
      `linear: weight ${formatShape(w.shape)} does not take inputs ${formatShape(x.shape)} (expected [${k}, out])`,
    );
  const n = w.shape[1] ?? 0;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== n))
    throw new Error(`linear: bias ${formatShape(bias.shape)} should be [${n}]`);
  const m = x.size / k;
  const device = x.device;
  const needsPre =
    activation === 'gelu' &&
    isGradEnabled() &&
    (x.requiresGrad || w.requiresGrad || (bias?.requiresGrad ?? false));
  const pre = needsPre ? emptyTensor(device, [m, n]) : null;
  const flat = gemmBiasActivation(device, x, w, bias, m, k, n, activation, pre);
  const out = reshapeInto(flat, [...x.shape.slice(0, -1), n]);
  const inputs = bias ? [x, w, bias] : [x, w];
  traceAttrs(out, { activation });
  const result = record(out, 'linear', inputs, pre ? [x, w, pre] : [x, w, out], (g) => {
    // Gradient through the activation, then the GEMM's two transposed products and the bias sum.
    const gv =
      activation === 'relu'
        ? mapKernel(device, 'select(0.0, a, b > 0.0)', [g, out])
        : activation === 'gelu'
          ? mapKernel(device, 'a * gelu_grad(b)', [g, pre as Tensor])
          : g;
    const dx = x.requiresGrad
      ? reshapeInto(
          gemm(device, gv, w, {
            batch: 1,
            m,
            n: k,
            k: n,
            transA: false,
            transB: true,
            batchStrideA: 0,
            batchStrideB: 0,
          }),
          x.shape,
        )
      : null;
    const dw = w.requiresGrad
      ? gemm(device, x, gv, {
          batch: 1,
          m: k,
          n,
          k: m,
          transA: true,
          transB: false,
          batchStrideA: 0,
          batchStrideB: 0,
        })
      : null;
    const db = bias?.requiresGrad ? reduceTo(device, gv, [1, n], 'sum') : null;
    const grads: Array<Tensor | null> = [dx, dw];
    if (bias) grads.push(db ? reshapeInto(db, [n]) : null);
    if (gv !== g) gv.dispose();
    return grads;
  });
  if (pre && !result.gradFn) pre.dispose();
  return result;
}
