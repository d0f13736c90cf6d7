import type { Device, KernelSource } from '../device/device.js';
import { type Shape, shapeSize, type Tensor } from '../tensor.js';
import { emptyTensor, FAST_DIV, LINEAR_ID, launch, Uniforms } from './launch.js';
import { collapseDims, pushLayout, stridedFields, stridedOffsets } from './strided.js';

const WG = 64;
/** Elements one invocation folds before the partial results are folded again. */
const CHUNK = 2048;
/** Kept and reduced dims each collapse to at most 3 runs in a rank-6 input (they alternate). */
const SLOTS = 3;

export type ReduceOp = 'sum' | 'max';

function reduceSource(op: ReduceOp, outRank: number, redRank: number): KernelSource {
  const init = op === 'sum' ? '0.0' : '-3.4028e38';
  const fold = op === 'sum' ? 'acc + v' : 'max(acc, v)';
  return {
    key: `reduce/${op}/o${outRank}/r${redRank}`,
    bindings: ['read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
// Output element o, partial p: folds reduce-space positions [p*chunk, min((p+1)*chunk, rsize)).
struct U { n_out: u32, rsize: u32, chunk: u32, parts: u32,
  ${stridedFields(['ostrides'], 'odims', SLOTS)}, ${stridedFields(['rstrides'], 'rdims', SLOTS)} }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${LINEAR_ID}
${FAST_DIV}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
  if (t >= u.n_out * u.parts) { return; }
  let o = t / u.parts;
  let p = t - o * u.parts;
  var base = 0u;
${stridedOffsets(outRank, 'o', ['base'], ['ostrides'], 'odims')}
  var acc = ${init};
  let start = p * u.chunk;
  let end = min(start + u.chunk, u.rsize);
  for (var r = start; r < end; r++) {
    var off = base;
${stridedOffsets(redRank, 'r', ['off'], ['rstrides'], 'rdims')
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
    let v = x[off];
    acc = ${fold};
  }
  out[t] = acc;
}`,
  };
}

function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) strides[i] = (strides[i + 1] ?? 1) * (shape[i + 1] ?? 1);
  return strides;
}

/**
 * Reduces `x` to `target` (same rank after left-padding with 1s; each target dim equals x's or is 1).
 * Large reductions fold in chunks, then fold the partials again, so every output is parallel.
 */
export function reduceTo(device: Device, x: Tensor, target: Shape, op: ReduceOp): Tensor {
  if (target.length > x.rank)
    throw new Error(`reduce: target rank ${target.length} exceeds input rank ${x.rank}`);
  const padded = [...new Array<number>(x.rank - target.length).fill(1), ...target];
  const strides = contiguousStrides(x.shape);
  const outDims: number[] = [];
  const outStrides: number[] = [];
  const redDims: number[] = [];
  const redStrides: number[] = [];
  padded.forEach((dim, i) => {
    const xd = x.shape[i] ?? 1;
    if (dim === xd) {
      outDims.push(dim);
      outStrides.push(strides[i] ?? 1);
    } else if (dim === 1) {
      redDims.push(xd);
      redStrides.push(strides[i] ?? 1);
    } else {
      throw new Error(`reduce: cannot reduce shape [${x.shape.join(', ')}] to [${target.join(', ')}]`);
    }
  });
  const nOut = shapeSize(outDims);
  const rsize = shapeSize(redDims);
  const parts = Math.max(1, Math.ceil(rsize / CHUNK));
  const partial = emptyTensor(device, parts === 1 ? target : [nOut, parts]);
  const outLayout = collapseDims(outDims, [outStrides]);
  const redLayout = collapseDims(redDims, [redStrides]);
  const u = new Uniforms().u32(nOut).u32(rsize).u32(CHUNK).u32(parts);
  pushLayout(pushLayout(u, outLayout, SLOTS), redLayout, SLOTS);
  const source = reduceSource(op, outLayout.dims.length, redLayout.dims.length);
  launch(device, source, [x.buffer, partial.buffer], u, nOut * parts);
  if (parts === 1) return partial;
  const folded = reduceTo(device, partial, [nOut, 1], op);
  partial.dispose();
  const out = emptyTensor(device, target);
  device.copy(folded.buffer, 0, out.buffer, 0, out.bytes);
  folded.dispose();
  return out;
}
