import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { emptyTensor, Uniforms } from './launch.js';

const TILE = 4;
const WG_X = 8;
const WG_Y = 8;

/**
 * Batched C[b] = op(A[b]) · op(B[b]) (+ C when accumulating), op = optional transpose. One kernel
 * serves matmul and both of its gradients; each invocation keeps a 4×4 register tile of C
 * (FIELD-NOTES: register tiling beats workgroup-memory tiling on lavapipe).
 */
function gemmSource(transA: boolean, transB: boolean, accumulate: boolean): KernelSource {
  const aAt = transA ? 'a[a_off + k * u.lda + r]' : 'a[a_off + r * u.lda + k]';
  const bAt = transB ? 'b[b_off + c * u.ldb + k]' : 'b[b_off + k * u.ldb + c]';
  return {
    key: `gemm/${transA ? 't' : 'n'}${transB ? 't' : 'n'}/${accumulate ? 'acc' : 'set'}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: WG_X * WG_Y,
    wgsl: () => /* wgsl */ `
struct U { m: u32, n: u32, k: u32, lda: u32, ldb: u32, batch_a: u32, batch_b: u32, batch_c: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG_X}, ${WG_Y})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row0 = gid.y * ${TILE}u;
  let col0 = gid.x * ${TILE}u;
  if (row0 >= u.m || col0 >= u.n) { return; }
  let batch = gid.z;
  let a_off = batch * u.batch_a;
  let b_off = batch * u.batch_b;
  let c_off = batch * u.batch_c;
  var acc: array<array<f32, ${TILE}>, ${TILE}>;
  let rows = min(${TILE}u, u.m - row0);
  let cols = min(${TILE}u, u.n - col0);
  for (var k = 0u; k < u.k; k++) {
    var av: array<f32, ${TILE}>;
    var bv: array<f32, ${TILE}>;
    for (var i = 0u; i < ${TILE}u; i++) {
      let r = row0 + min(i, rows - 1u);
      av[i] = ${aAt};
      let c = col0 + min(i, cols - 1u);
      bv[i] = ${bAt};
    }
    for (var i = 0u; i < ${TILE}u; i++) {
      for (var j = 0u; j < ${TILE}u; j++) {
        acc[i][j] = fma(av[i], bv[j], acc[i][j]);
      }
    }
  }
  for (var i = 0u; i < rows; i++) {
    for (var j = 0u; j < cols; j++) {
      let idx = c_off + (row0 + i) * u.n + col0 + j;
      ${accumulate ? 'out[idx] = out[idx] + acc[i][j];' : 'out[idx] = acc[i][j];'}
    }
  }
}`,
  };
}

export interface GemmArgs {
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transA: boolean;
  readonly transB: boolean;
  /** Elements between consecutive batch matrices (0 broadcasts one matrix over the batch). */
  readonly batchStrideA: number;
  readonly batchStrideB: number;
}

export function gemm(
  device: Device,
  a: Tensor,
  b: Tensor,
  args: GemmArgs,
  out?: Tensor,
  accumulate = false,
): Tensor {
  const result =
    out ?? emptyTensor(device, args.batch === 1 ? [args.m, args.n] : [args.batch, args.m, args.n]);
  const lda = args.transA ? args.m : args.k;
  const ldb = args.transB ? args.k : args.n;
  const u = new Uniforms()
    .u32(args.m)
    .u32(args.n)
    .u32(args.k)
    .u32(lda)
    .u32(ldb)
    .u32(args.batchStrideA)
    .u32(args.batchStrideB)
    .u32(args.m * args.n);
  const kernel = device.kernel(gemmSource(args.transA, args.transB, accumulate));
  const x = Math.ceil(args.n / (TILE * WG_X));
  const y = Math.ceil(args.m / (TILE * WG_Y));
  device.dispatch(kernel, [a.buffer, b.buffer, result.buffer], u.bytes(), [x, y, args.batch]);
  return result;
}
