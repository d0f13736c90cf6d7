import { record } from '../autograd/engine.js';
import { emptyTensor } from '../kernels/launch.js';
import { gemm } from '../kernels/matmul.js';
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
  let out = raw;
  if (batch > 1 || a.rank === 3 || b.rank === 3) {
    out = emptyTensor(device, [batch, m, n]);
    device.copy(raw.buffer, 0, out.buffer, 0, raw.bytes);
    raw.dispose();
  }
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
      ga = reshapeTo(ga, a.shape);
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
      gb = reshapeTo(gb, b.shape);
    }
    return [ga, gb];
  });
}

function reshapeTo(t: Tensor, shape: readonly number[]): Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const out = emptyTensor(t.device, shape);
  t.device.copy(t.buffer, 0, out.buffer, 0, t.bytes);
  t.dispose();
  return out;
}
