import type { Device, KernelSource } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import { emptyTensor, launch } from '../launch.js';
import { type ConvGeometry, fold, splitReduction, UNIFORM_STRUCT, uniforms, WG } from './common.js';

// ---------------------------------------------------------------------------------------------
// Bias gradient: Σ dY over (n, oy, ox) per output channel, split like the weight gradient.

const biasGradSource: KernelSource = {
  key: 'conv2d/db',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
  if (t >= u.total) { return; }
  let p = t % u.parts;
  let c = t / u.parts;
  let plane = u.hout * u.wout;
  let start = p * u.chunk;
  let end = min(start + u.chunk, u.n * plane);
  var nn = start / plane;
  var s = start % plane;
  var base = (nn * u.cout + c) * plane;
  var acc = 0.0;
  for (var r = start; r < end; r++) {
    acc += dy[base + s];
    s++;
    if (s == plane) {
      s = 0u;
      base += u.cout * plane;
    }
  }
  partial[c * u.parts + p] = acc;
}`,
};

export function conv2dBiasGrad(device: Device, dy: Tensor, g: ConvGeometry): Tensor {
  const rsize = g.n * g.hout * g.wout;
  const { parts, chunk } = splitReduction(device, rsize, Math.ceil(g.cout / WG), g.cout, Infinity);
  const total = g.cout * parts;
  const partial = emptyTensor(device, parts === 1 ? [g.cout] : [g.cout, parts]);
  const u = uniforms(g, { ocb: 1, icb: 1, xblocks: 1, total, parts, chunk });
  launch(device, biasGradSource, [dy.buffer, partial.buffer], u, total);
  return parts === 1 ? partial : fold(device, partial, g, [g.cout], parts);
}
