import type { Device } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { gemmGroups, gemmSource, gemmTiling } from './gemm-template.js';
import { emptyTensor, Uniforms } from './launch.js';

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

function matmulSpec(transA: boolean, transB: boolean) {
  const aAt = transA ? 'k * u.m + m' : 'm * u.k + k';
  const bAt = transB ? 'n * u.k + k' : 'k * u.n + n';
  return {
    key: `matmul/${transA ? 't' : 'n'}${transB ? 't' : 'n'}`,
    bindings: ['read', 'read', 'rw'] as const,
    uniformFields: 'stride_a: u32, stride_b: u32,',
    decls: /* wgsl */ `
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;`,
    functions: /* wgsl */ `
fn load_a(batch: u32, m: u32, k: u32) -> f32 { return a[batch * u.stride_a + ${aAt}]; }
fn load_b(batch: u32, k: u32, n: u32) -> f32 { return b[batch * u.stride_b + ${bAt}]; }
fn store_c(batch: u32, m: u32, n: u32, v: f32) { c[(batch * u.m + m) * u.n + n] = v; }`,
  };
}

/** Batched C[b] = op(A[b])·op(B[b]) through the shared GEMM template. */
export function gemm(device: Device, a: Tensor, b: Tensor, args: GemmArgs): Tensor {
  const result = emptyTensor(device, args.batch === 1 ? [args.m, args.n] : [args.batch, args.m, args.n]);
  const tiling = gemmTiling(device);
  const spec = matmulSpec(args.transA, args.transB);
  const kernel = device.kernel(gemmSource({ ...spec, bindings: [...spec.bindings] }, tiling));
  const u = new Uniforms()
    .u32(args.m)
    .u32(args.n)
    .u32(args.k)
    .u32(args.batch)
    .u32(args.batchStrideA)
    .u32(args.batchStrideB);
  device.dispatch(
    kernel,
    [a.buffer, b.buffer, result.buffer],
    u.bytes(),
    gemmGroups(tiling, args.m, args.n, args.batch),
  );
  return result;
}
