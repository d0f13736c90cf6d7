import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { fill } from './elementwise.js';
import { emptyTensor, LINEAR_ID, launch, Uniforms } from './launch.js';

const WG = 256;
const BINS = 65536;

// Floats mapped to unsigned keys whose order is the floats' order (sign bit flipped, or all bits for negatives).
const KEY_OF = /* wgsl */ `fn key_of(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b ^ 0x80000000u, ~b, (b >> 31u) == 1u);
}`;

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
${KEY_OF}
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

// ---------------------------------------------------------------------------------------------
// OHEM's keep mask without readbacks: the same two radix passes, with the bin searches on the GPU.

const SEARCH_WG = 256;
const BINS_PER_LANE = BINS / SEARCH_WG;

/**
 * One workgroup finds, for each of two ranks, the bin holding it and how many values lie in
 * earlier bins: lane l sums bins [l·256, (l+1)·256), a prefix over lanes in workgroup memory finds
 * the lane, and that lane scans its bins. Pass 0 reads ranks from the uniforms and writes
 * `state` = [bin₁, before₁, bin₂, before₂]; pass 1 reads the low-bit histograms of those bins
 * (two, back to back in `hist`), finds ranks − before, and writes the two values as f32 to `found`.
 */
const searchSource: KernelSource = {
  key: 'select/search',
  bindings: ['read', 'rw', 'rw'],
  workgroupSize: SEARCH_WG,
  wgsl: () => /* wgsl */ `
struct U { rank1: u32, rank2: u32, pass_: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> hist: array<u32>;
@group(0) @binding(2) var<storage, read_write> state: array<u32>;
@group(0) @binding(3) var<storage, read_write> found: array<f32>;
var<workgroup> lane_sums: array<u32, ${SEARCH_WG}>;
var<workgroup> lane_starts: array<u32, ${SEARCH_WG}>;

fn float_of_key(key: u32) -> f32 {
  return bitcast<f32>(select(~key, key ^ 0x80000000u, (key >> 31u) == 1u));
}

@compute @workgroup_size(${SEARCH_WG})
fn main(@builtin(local_invocation_index) l: u32) {
  for (var which = 0u; which < 2u; which++) {
    let base = select(0u, which * ${BINS}u, u.pass_ == 1u);
    var rank = select(u.rank1, u.rank2, which == 1u);
    if (u.pass_ == 1u) { rank -= state[which * 2u + 1u]; }
    var total = 0u;
    for (var b = 0u; b < ${BINS_PER_LANE}u; b++) { total += hist[base + l * ${BINS_PER_LANE}u + b]; }
    lane_sums[l] = total;
    workgroupBarrier();
    if (l == 0u) {
      var acc = 0u;
      for (var i = 0u; i < ${SEARCH_WG}u; i++) { lane_starts[i] = acc; acc += lane_sums[i]; }
    }
    workgroupBarrier();
    let start = lane_starts[l];
    if (rank >= start && rank < start + lane_sums[l]) {
      var before = start;
      for (var b = 0u; b < ${BINS_PER_LANE}u; b++) {
        let c = hist[base + l * ${BINS_PER_LANE}u + b];
        if (rank < before + c) {
          let bin = l * ${BINS_PER_LANE}u + b;
          if (u.pass_ == 0u) {
            state[which * 2u] = bin;
            state[which * 2u + 1u] = before;
          } else {
            found[which] = float_of_key((state[which * 2u] << 16u) | bin);
          }
          break;
        }
        before += c;
      }
    }
    workgroupBarrier();
  }
}`,
};

/** Low-bit histograms of the values whose high bits are state[0] (first half) or state[2] (second). */
const lowHistogramSource: KernelSource = {
  key: 'select/histogram-low2',
  bindings: ['read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> state: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist: array<atomic<u32>>;
${LINEAR_ID}
${KEY_OF}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i >= u.n) { return; }
  let key = key_of(x[i]);
  if ((key >> 16u) == state[0]) { atomicAdd(&hist[key & 0xffffu], 1u); }
  if ((key >> 16u) == state[2]) { atomicAdd(&hist[${BINS}u + (key & 0xffffu)], 1u); }
}`,
};

/** kept = p < threshold, with threshold = max(v₁, thresh) when v₂ ≤ 1 (enough valid pixels), else every valid pixel (p ≤ 1). */
const keepSource: KernelSource = {
  key: 'select/ohem-keep',
  bindings: ['read', 'read', 'rw'],
  workgroupSize: WG,
  wgsl: () => /* wgsl */ `
struct U { n: u32, thresh: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> found: array<f32>;
@group(0) @binding(3) var<storage, read_write> kept: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = linear_id(gid, groups, ${WG}u);
  if (i >= u.n) { return; }
  let threshold = select(1.5, max(found[0], u.thresh), found[1] <= 1.0);
  kept[i] = select(0.0, 1.0, p[i] < threshold);
}`,
};

/**
 * OHEM's keep mask on the GPU, with no readback: p holds each pixel's probability of its label
 * (2.0 at ignored pixels, which sort last). With v₁, v₂ the (minKept − 1)-th and minKept-th
 * smallest p (exact, two radix passes as `kthSmallest`): if v₂ ≤ 1 (more than minKept valid
 * pixels) kept = p < max(v₁, thresh), else kept = every valid pixel. Needs 0 < minKept < p.size.
 */
export function ohemKeepMask(device: Device, p: Tensor, minKept: number, thresh: number): Tensor {
  if (!Number.isInteger(minKept) || minKept < 1 || minKept >= p.size)
    throw new Error(`ohemKeepMask: min_kept ${minKept} must be in [1, ${p.size})`);
  const high = fill(device, [BINS], 0);
  launch(device, histogram, [p.buffer, high.buffer], new Uniforms().u32(p.size).u32(0).u32(0), p.size);
  const state = fill(device, [4], 0);
  const found = fill(device, [2], 0);
  const search = device.kernel(searchSource);
  const ranks = (pass: number) =>
    new Uniforms()
      .u32(minKept - 1)
      .u32(minKept)
      .u32(pass)
      .bytes();
  device.dispatch(search, [high.buffer, state.buffer, found.buffer], ranks(0), [1]);
  const low = fill(device, [2 * BINS], 0);
  launch(
    device,
    lowHistogramSource,
    [p.buffer, state.buffer, low.buffer],
    new Uniforms().u32(p.size),
    p.size,
  );
  device.dispatch(search, [low.buffer, state.buffer, found.buffer], ranks(1), [1]);
  const kept = emptyTensor(device, p.shape);
  launch(
    device,
    keepSource,
    [p.buffer, found.buffer, kept.buffer],
    new Uniforms().u32(p.size).f32(thresh),
    p.size,
  );
  for (const t of [high, state, found, low]) t.dispose();
  return kept;
}
