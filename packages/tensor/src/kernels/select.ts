import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { fill } from './elementwise.js';
import { LINEAR_ID, launch, Uniforms } from './launch.js';

const WG = 256;
const BINS = 65536;

// Floats mapped to unsigned keys whose order is the floats' order (sign bit flipped, or all bits for negatives).
const histogram: KernelSource = {
  key: 'select/histogram',
  bindings: ['read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32, pass_: u32, prefix: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;
${LINEAR_ID}
fn key_of(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b ^ 0x80000000u, ~b, (b >> 31u) == 1u);
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i >= u.n) { return; }
  let key = key_of(x[i]);
  if (u.pass_ == 0u) { atomicAdd(&hist[key >> 16u], 1u); }
  else if ((key >> 16u) == u.prefix) { atomicAdd(&hist[key & 0xffffu], 1u); }
}`,
};

function floatOfKey(key: number): number {
  const bits = key >>> 31 === 1 ? (key ^ 0x80000000) >>> 0 : ~key >>> 0;
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits);
  return view.getFloat32(0);
}

/** The bin holding the k-th (0-based) smallest, and how many elements lie in earlier bins. */
function findBin(counts: Uint32Array, k: number): { bin: number; before: number } {
  let before = 0;
  for (let bin = 0; bin < counts.length; bin++) {
    const c = counts[bin] ?? 0;
    if (before + c > k) return { bin, before };
    before += c;
  }
  throw new Error(`select: k=${k} is out of range`);
}

/**
 * The exact k-th smallest value (0-based) of a float tensor: two radix-histogram passes over the
 * 32-bit keys on the GPU, reading back 2 × 256 KiB instead of the tensor. OHEM's threshold needs it.
 */
export async function kthSmallest(device: Device, x: Tensor, k: number): Promise<number> {
  if (!Number.isInteger(k) || k < 0 || k >= x.size)
    throw new Error(`kthSmallest: k=${k} is outside [0, ${x.size})`);
  const hist = fill(device, [BINS], 0);
  launch(device, histogram, [x.buffer, hist.buffer], new Uniforms().u32(x.size).u32(0).u32(0), x.size);
  const high = findBin(new Uint32Array(await device.read(hist.buffer, BINS * 4)), k);
  hist.dispose();
  const low = fill(device, [BINS], 0);
  launch(device, histogram, [x.buffer, low.buffer], new Uniforms().u32(x.size).u32(1).u32(high.bin), x.size);
  const found = findBin(new Uint32Array(await device.read(low.buffer, BINS * 4)), k - high.before);
  low.dispose();
  return floatOfKey(((high.bin << 16) | found.bin) >>> 0);
}
