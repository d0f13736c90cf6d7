import type { Device } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { GELU_WGSL } from './elementwise.js';
import {
  type GemmTiling,
  gemmCandidates,
  gemmGroups,
  gemmShapeClass,
  gemmSource,
  gemmSplits,
  gemmTiling,
  gemmUniforms,
  sumSplits,
} from './gemm-template.js';
import { emptyTensor } from './launch.js';
import { tunedConfig } from './tuned.js';

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
    aContiguous: transA ? ('m' as const) : ('k' as const),
    bContiguous: transB ? ('k' as const) : ('n' as const),
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

/** The tiling for a GEMM kernel family at this shape: tuned, or the default while untuned. */
function tunedTiling(
  device: Device,
  family: string,
  size: { m: number; n: number; k: number; batch: number },
  scratch: readonly number[],
  run: (operands: readonly Tensor[], tiling: GemmTiling) => void,
): GemmTiling {
  const { m, n, k, batch } = size;
  return tunedConfig(
    device,
    family,
    () => gemmShapeClass(family, m, n, k, batch),
    gemmTiling(device, m, n),
    () => gemmCandidates(device, m, n),
    scratch,
    run,
  );
}

function gemmWith(
  device: Device,
  spec: ReturnType<typeof matmulSpec>,
  a: Tensor,
  b: Tensor,
  args: GemmArgs,
  tiling: GemmTiling,
  into: Tensor | null = null,
): Tensor {
  const shape = args.batch === 1 ? [args.m, args.n] : [args.batch, args.m, args.n];
  const splits = gemmSplits(device, tiling, args.m, args.n, args.k, args.batch);
  const size = args.batch * args.m * args.n;
  const result = splits === 1 && into ? into : emptyTensor(device, splits === 1 ? shape : [splits, size]);
  const kernel = device.kernel(gemmSource({ ...spec, bindings: [...spec.bindings] }, tiling));
  const u = gemmUniforms(args.m, args.n, args.k, args.batch, splits)
    .u32(args.batchStrideA)
    .u32(args.batchStrideB);
  device.dispatch(
    kernel,
    [a.buffer, b.buffer, result.buffer],
    u.bytes(),
    gemmGroups(tiling, args.m, args.n, args.batch, splits),
  );
  if (splits === 1) return result;
  const summed = sumSplits(result, size, into ? [1, size] : shape);
  if (!into) return summed;
  device.copy(summed.buffer, 0, into.buffer, 0, summed.bytes);
  summed.dispose();
  return into;
}

/**
 * Batched C[b] = op(A[b])·op(B[b]) through the shared GEMM template; a small result with a long
 * reduction is summed in k ranges by separate workgroups (split-K), then added up. With `into`, C
 * is written to that tensor's buffer (batch·m·n values in any shape) and `into` is returned.
 */
export function gemm(
  device: Device,
  a: Tensor,
  b: Tensor,
  args: GemmArgs,
  into: Tensor | null = null,
): Tensor {
  const spec = matmulSpec(args.transA, args.transB);
  const tiling = tunedTiling(device, spec.key, args, [a.size, b.size], ([ta, tb], t) => {
    if (ta && tb) gemmWith(device, spec, ta, tb, args, t).dispose();
  });
  return gemmWith(device, spec, a, b, args, tiling, into);
}

export type Activation = 'none' | 'relu' | 'gelu';

const ACTIVATION_WGSL: Record<Activation, string> = {
  none: 'v',
  relu: 'max(v, 0.0)',
  gelu: 'gelu(v)',
};

/**
 * Y = act(X·W + bias) with the bias and activation fused into the GEMM's store (the epilogue).
 * When `pre` is given, the pre-activation X·W + bias is stored there too (GELU's backward needs it).
 */
export function gemmBiasActivation(
  device: Device,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  m: number,
  k: number,
  n: number,
  activation: Activation,
  pre: Tensor | null,
): Tensor {
  const out = emptyTensor(device, [m, n]);
  const bindings: Array<'read' | 'rw'> = [
    'read',
    'read',
    ...(bias ? (['read'] as const) : []),
    'rw',
    ...(pre ? (['rw'] as const) : []),
  ];
  const biasBinding = bias ? 3 : -1;
  const outBinding = bias ? 4 : 3;
  const spec = {
    key: `linear/${activation}/${bias ? 'bias' : 'nobias'}/${pre ? 'pre' : 'nopre'}`,
    bindings,
    decls: /* wgsl */ `
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
${bias ? `@group(0) @binding(${biasBinding}) var<storage, read> bias: array<f32>;` : ''}
@group(0) @binding(${outBinding}) var<storage, read_write> c: array<f32>;
${pre ? `@group(0) @binding(${outBinding + 1}) var<storage, read_write> pre: array<f32>;` : ''}
${activation === 'gelu' ? GELU_WGSL : ''}`,
    functions: /* wgsl */ `
fn load_a(batch: u32, m: u32, k: u32) -> f32 { return a[m * u.k + k]; }
fn load_b(batch: u32, k: u32, n: u32) -> f32 { return b[k * u.n + n]; }
fn store_c(batch: u32, m: u32, n: u32, acc: f32) {
  let v = acc${bias ? ' + bias[n]' : ''};
  ${pre ? 'pre[m * u.n + n] = v;' : ''}
  c[m * u.n + n] = ${ACTIVATION_WGSL[activation]};
}`,
  };
  const u = gemmUniforms(m, n, k);
  const dispatch = (buffers: readonly GPUBuffer[], tiling: GemmTiling) =>
    device.dispatch(device.kernel(gemmSource(spec, tiling)), buffers, u.bytes(), gemmGroups(tiling, m, n, 1));
  const operands = [x, w, ...(bias ? [bias] : []), out, ...(pre ? [pre] : [])];
  const tiling = tunedTiling(
    device,
    spec.key,
    { m, n, k, batch: 1 },
    operands.map((t) => t.size),
    (scratch, t) =>
      dispatch(
        scratch.map((s) => s.buffer),
        t,
      ),
  );
  dispatch(
    operands.map((t) => t.buffer),
    tiling,
  );
  return out;
}
