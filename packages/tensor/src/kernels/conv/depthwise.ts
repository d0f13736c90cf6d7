/**
 * Depthwise convolutions (groups = in = out channels, horizontal dilation 1): forward, input and
 * weight gradients. The strip kernels (stride and dilation 1, widths multiples of 4) walk a lane
 * down a strip of rows and read every input value once. The forward row kernel (any stride and
 * vertical dilation) computes XB consecutive outputs of one row of one channel: per filter row it
 * loads the (XB − 1)·SW + KW input values those outputs share once (as aligned vec4s when the
 * stride is 1 and the widths are multiples of 4) and reuses them for every tap, where the grouped
 * kernel, built for dense channel blocks, reloads each input per tap and output; the input-gradient
 * row kernel is its transpose (below).
 */
import type { Device, KernelSource } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import { emptyTensor, gridFor, Uniforms } from '../launch.js';
import {
  type ConvGeometry,
  fold,
  forwardAccess,
  forwardBindings,
  forwardBuffers,
  range,
  UNIFORM_STRUCT,
  uniforms,
} from './common.js';

// Row kernel, measured on lavapipe (2×64×128×256, 3×3): x blocks of 16 in workgroups of 256 lanes were fastest
// (18.7 ms; blocks of 8: 21 ms; a column-per-lane variant with vertical reuse: 28 ms). Reading the
// window as aligned vec4s when widths allow: 16–20 → 11.6–12.7 ms in the same runs (blocks of 8 or
// 32: 15 and 12.3 ms; two output rows per invocation sharing input rows: no gain).
const WG = 256;
/** The widest filter row kept in registers (wider ones take the grouped kernel). */
export const MAX_DEPTHWISE_KW = 7;

/**
 * Test hooks: `strip: false` runs the row kernel where the strip kernel would, `vec4: false` the
 * row kernel's scalar-load variant where its vec4 one would.
 */
export const depthwiseConfig = { strip: true, vec4: true };

/** Whether the row-reuse depthwise kernel computes this convolution. */
export function depthwiseFits(g: ConvGeometry): boolean {
  return g.groups > 1 && g.groups === g.cin && g.cout === g.cin && g.dw === 1 && g.kw <= MAX_DEPTHWISE_KW;
}

/**
 * The head of a row kernel's main(): lane t = ((plane · rows) + row) · xblocks + xbk, one block of
 * a row of one (image, channel) plane; `row`, `plane`, `xbk` and the channel `c` are in scope after.
 */
const rowLaneMain = (row: string, rows: string) => `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
  if (t >= u.total) { return; }
  let xbk = t % u.xblocks;
  let rest = t / u.xblocks;
  let ${row} = rest % ${rows};
  let plane = rest / ${rows};
  let c = plane % u.cin;`;

/**
 * The kernel for XB outputs per invocation. `vec4Pad` (the left padding, baked in) selects the vec4
 * variant, for input and output widths that are multiples of 4: the input window is read as aligned
 * vec4s (a whole vec4 is in or out of the row) and the outputs written as vec4s.
 */
function depthwiseSource(
  xb: number,
  kw: number,
  sw: number,
  bias: boolean,
  vec4Pad: number | null,
): KernelSource {
  // Output j's tap k reads window value j·sw + k.
  const win = (xb - 1) * sw + kw;
  const vec4 = vec4Pad !== null;
  // vec4 variant: the window starts `off` values into vec4 q0 = ox0/4 − left.
  const left = vec4 ? Math.ceil((vec4Pad as number) / 4) : 0;
  const off = vec4 ? 4 * left - (vec4Pad as number) : 0;
  const quads = Math.ceil((off + win) / 4);
  const loads = vec4
    ? `${range(quads)
        .map(
          (q) => `    let qi${q} = qbase + ${q};
    let q${q} = select(vec4<f32>(), x[row + u32(clamp(qi${q}, 0, wq - 1))], qi${q} >= 0 && qi${q} < wq);`,
        )
        .join('\n')}
${range(win)
  .map((i) => `    let v${i} = q${Math.floor((off + i) / 4)}.${'xyzw'[(off + i) % 4]};`)
  .join('\n')}`
    : range(win)
        .map(
          (i) => `    let ix${i} = ix0 + ${i};
    let v${i} = select(0.0, x[row + u32(clamp(ix${i}, 0, wi - 1))], ix${i} >= 0 && ix${i} < wi);`,
        )
        .join('\n');
  const stores = vec4
    ? range(xb / 4)
        .map(
          (k) =>
            `  if (ox0 + ${4 * k}u < u.wout) { out[obase / 4u + ${k}u] = vec4<f32>(${range(4)
              .map((j) => `a${4 * k + j}`)
              .join(', ')})${bias ? ' + b' : ''}; }`,
        )
        .join('\n')
    : range(xb)
        .map((j) => `  if (ox0 + ${j}u < u.wout) { out[obase + ${j}u] = a${j}${bias ? ' + b' : ''}; }`)
        .join('\n');
  return {
    key: `conv2d/depthwise/x${xb}/kw${kw}${sw > 1 ? `/sw${sw}` : ''}/bias${bias ? 1 : 0}${vec4 ? `/vec4pl${vec4Pad}` : ''}`,
    bindings: forwardAccess(bias),
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `${UNIFORM_STRUCT}
${forwardBindings(bias, vec4)}
${rowLaneMain('oy', 'u.hout')}
  let ox0 = xbk * ${xb}u;
  let ix0 = i32(ox0 * ${sw}u) - u.pl;
  let wi = i32(u.w);
  let hi = i32(u.h);
  let qbase = i32(ox0 / 4u) - ${left};
  let wq = i32(u.w / 4u);
${range(xb)
  .map((j) => `  var a${j} = 0.0;`)
  .join('\n')}
  for (var ky = 0u; ky < u.kh; ky++) {
    let iy = i32(oy * u.sh + ky * u.dh) - u.pt;
    if (iy < 0 || iy >= hi) { continue; }
    let row = (plane * u.h + u32(iy)) * ${vec4 ? '(u.w / 4u)' : 'u.w'};
${loads}
    let wrow = (c * u.kh + ky) * ${kw}u;
${range(kw)
  .map(
    (k) => `    let w${k} = wt[wrow + ${k}u];
${range(xb)
  .map((j) => `    a${j} += v${j * sw + k} * w${k};`)
  .join('\n')}`,
  )
  .join('\n')}
  }
  let obase = (plane * u.hout + oy) * u.wout + ox0;
${bias ? '  let b = bs[c];\n' : ''}${stores}
}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Strip kernel (stride and dilation 1, widths multiples of 4): a lane computes QUADS × 4 adjacent
// outputs down a strip of output rows. It reads each input row of the strip once, as aligned
// vec4s, forms the row's kh horizontal filter sums and adds them to the kh output rows that row
// feeds, kept as a rolling window of partial rows in registers: every input value is loaded once
// per lane (the row kernel loads it kh times). The channel comes from workgroup_id.z, so weights
// are uniform. Measured on lavapipe (2×64×128×256, 3×3): row kernel 11.0–13.3 ms; strips of 32
// rows 5.1–5.4 ms with one vec4 of outputs per lane, 4.4–4.6 ms with two (four: 4.2–4.6, eight:
// 3.0–6.0); strips of 16 rows 4.7–5.0 ms. Later, same runs (3.1–3.6 ms): taking the window's
// neighbour vec4s from adjacent lanes by subgroup shuffles (2 loads per row instead of 4) changed
// nothing; a 1×1 filter through this kernel takes 2.1 ms, 3×1 or 1×3 2.6 ms.

/**
 * Output vec4s per lane of the weight-gradient strip kernel. The forward strip kernel takes the most
 * of 4, 2 or 1 that divide the output row (`forwardQuads`).
 */
const STRIP_QUADS = 2;
const STRIP_MIN_ROWS = 4;
const STRIP_WG = 64;
/**
 * Lanes a launch aims for: strips are shortened (down to STRIP_MIN_ROWS) until there are this
 * many. A CPU adapter runs a few wide cores and prefers long strips; a GPU needs many lanes.
 */
const stripLanes = (device: Device) => (device.software ? 1 << 12 : 1 << 16);
/**
 * The longest strip: on a CPU adapter a lane's setup and its strip's kh − 1 extra input rows cost
 * less the longer it walks (2×64×128×256 3×3 on lavapipe, strips of 128 rows against 32: forward
 * 2.9 → 2.7 ms, input gradient 2.9–3.3 → 2.7–2.8, weight gradient 3.4–4.0 → 3.0–3.2).
 */
const stripMaxRows = (device: Device) => (device.software ? 128 : 32);

/** Whether the strip kernel computes this depthwise convolution. */
function stripFits(device: Device, g: ConvGeometry): boolean {
  return (
    depthwiseConfig.strip &&
    g.sh === 1 &&
    g.sw === 1 &&
    g.dh === 1 &&
    g.w % 4 === 0 &&
    g.wout % 4 === 0 &&
    g.pl >= 0 &&
    g.n * g.cin <= device.limits.maxComputeWorkgroupsPerDimension
  );
}

/**
 * WGSL for a strip lane's input window at loop step r: `loads` masks and loads the aligned vec4s
 * v0, v1, … of input row y0 + r − pt that cover its `quads` output vec4s and the kw − 1 columns
 * beside them (`live`, when not empty, masks the whole row too), and `shifted(o)` forms s{o}_{kx}:
 * the 4 inputs under tap kx of output vec4 o. `r`, `y0`, `plane`, `vbase` (the window's first vec4)
 * and `wq` (vec4s per row) must be in scope.
 */
function stripWindow(
  quads: number,
  kw: number,
  pl: number,
  live: string,
): { loads: string; shifted: (o: number) => string; left: number } {
  const win = 4 * quads + kw - 1;
  // The window starts `off` values into input vec4 q0 − left.
  const left = Math.ceil(pl / 4);
  const off = 4 * left - pl;
  const value = (i: number) => `v${Math.floor((off + i) / 4)}.${'xyzw'[(off + i) % 4]}`;
  // Input row iy = y0 + r − pt of the lane's plane (`row`: its first vec4), masked outside the map.
  const loads = [
    `    let iy = i32(y0 + r) - u.pt;
    let ok = ${live ? `${live} && ` : ''}iy >= 0 && iy < i32(u.h);
    let row = (plane * u.h + u32(clamp(iy, 0, i32(u.h) - 1))) * u.wq;`,
    ...range(Math.ceil((off + win) / 4)).map(
      (j) => `    let vi${j} = vbase + ${j};
    let v${j} = select(vec4<f32>(), x[row + u32(clamp(vi${j}, 0, wq - 1))], ok && vi${j} >= 0 && vi${j} < wq);`,
    ),
  ].join('\n');
  const shifted = (o: number) =>
    range(kw)
      .map(
        (kx) =>
          `    let s${o}_${kx} = vec4<f32>(${range(4)
            .map((i) => value(4 * o + kx + i))
            .join(', ')});`,
      )
      .join('\n');
  return { loads, shifted, left };
}

/**
 * How strips cover an output: lanes per output row (`quads` vec4s each) and rows per strip — long
 * strips, shortened until the lanes fill the device — and the uniforms both strip kernels start
 * with (h, hout, wq, wq_out, c, rows).
 */
function stripLayout(device: Device, g: ConvGeometry, quads: number) {
  const wqOut = g.wout / 4;
  const lanesPerRow = Math.ceil(wqOut / quads);
  let rows = Math.min(stripMaxRows(device), pow2AtLeast(g.hout));
  while (rows > STRIP_MIN_ROWS && g.n * g.cin * lanesPerRow * Math.ceil(g.hout / rows) < stripLanes(device))
    rows /= 2;
  const uniforms = () =>
    new Uniforms()
      .u32(g.h)
      .u32(g.hout)
      .u32(g.w / 4)
      .u32(wqOut)
      .u32(g.cin)
      .u32(rows);
  return { lanesPerRow, rows, strips: Math.ceil(g.hout / rows), uniforms };
}

/**
 * Output vec4s per lane of the forward strip kernel: the most of 4, 2 or 1 that divides the output
 * row, so a lane's outputs are all in the row or all past it (a workgroup can be wider than the
 * row) and one lane check replaces a store mask per vec4 (2×64×128×256 3×3 on lavapipe: 2 vec4s
 * with store masks 2.45 ms, 4 with them 2.2, 4 without 2.1).
 */
const forwardQuads = (g: ConvGeometry) => [4, 2, 1].find((q) => (g.wout / 4) % q === 0) ?? 1;

/** `flip`: the filter rotated by 180° (the input gradient as a forward convolution of dY). */
function depthwiseStripSource(
  quadCount: number,
  kh: number,
  kw: number,
  pl: number,
  bias: boolean,
  wgx: number,
  wgy: number,
  flip: boolean,
): KernelSource {
  const { loads, shifted, left } = stripWindow(quadCount, kw, pl, '');
  // Input row r feeds output rows y0 + r − ky; partial p{o}_j holds output row y0 + r − kh + 2 + j.
  // Each tap row's products are fma'd straight onto the partial they extend (the bias starts the
  // newest): no separate row sums and adds (2×64×128×256 3×3 on lavapipe: 2.35 → 2.2 ms).
  const tapRow = (o: number, ky: number, start: string) =>
    range(kw).reduce(
      (acc, kx) => (acc ? `fma(s${o}_${kx}, vec4<f32>(w${ky}_${kx}), ${acc})` : `s${o}_${kx} * w${ky}_${kx}`),
      start,
    );
  const newest = bias ? 'vec4<f32>(b)' : '';
  const roll = (o: number) =>
    kh === 1
      ? `    let done${o} = ${tapRow(o, 0, newest)};`
      : [
          `    let done${o} = ${tapRow(o, kh - 1, `p${o}_0`)};`,
          ...range(kh - 2).map((j) => `    p${o}_${j} = ${tapRow(o, kh - 2 - j, `p${o}_${j + 1}`)};`),
          `    p${o}_${kh - 2} = ${tapRow(o, 0, newest)};`,
        ].join('\n');
  const quads = range(quadCount);
  return {
    key: `conv2d/depthwise-strip/q${quadCount}/k${kh}x${kw}/pl${pl}/bias${bias ? 1 : 0}/wg${wgx}x${wgy}${flip ? '/flip' : ''}`,
    bindings: forwardAccess(bias),
    workgroupSize: wgx * wgy,
    wgsl: () => /* wgsl */ `
struct U { h: u32, hout: u32, wq: u32, wq_out: u32, c: u32, rows: u32, steps: u32, pt: i32 }
@group(0) @binding(0) var<uniform> u: U;
${forwardBindings(bias, true)}
@compute @workgroup_size(${wgx}, ${wgy})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = (wid.x * ${wgx}u + lid.x) * ${quadCount}u;
  let y0 = (wid.y * ${wgy}u + lid.y) * u.rows;
  let plane = wid.z;
  let c = plane % u.c;
  let vbase = i32(min(q, u.wq_out - 1u)) - ${left};
  let wq = i32(u.wq);
${range(kh)
  .map((ky) =>
    range(kw)
      .map(
        (kx) =>
          `  let w${ky}_${kx} = wt[c * ${kh * kw}u + ${flip ? kh * kw - 1 - (ky * kw + kx) : ky * kw + kx}u];`,
      )
      .join('\n'),
  )
  .join('\n')}
${bias ? '  let b = bs[c];\n' : ''}${quads
  .flatMap((o) => range(kh - 1).map((j) => `  var p${o}_${j} = vec4<f32>();`))
  .join('\n')}
  for (var r = 0u; r < u.steps; r++) {
${loads}
${quads.map((o) => `${shifted(o)}\n${roll(o)}`).join('\n')}
    let oy = y0 + r - ${kh - 1}u;
    if (r >= ${kh - 1}u && oy < u.hout && q < u.wq_out) {
      let at = (plane * u.hout + oy) * u.wq_out + q;
${quads.map((o) => `      out[at + ${o}u] = done${o};`).join('\n')}
    }
  }
}`,
  };
}

const pow2AtLeast = (v: number) => 2 ** Math.ceil(Math.log2(Math.max(1, v)));

function depthwiseStrip(
  device: Device,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
  flip = false,
): Tensor {
  const planes = g.n * g.cin;
  const quads = forwardQuads(g);
  const { lanesPerRow, rows, strips, uniforms } = stripLayout(device, g, quads);
  const wgx = Math.min(STRIP_WG, pow2AtLeast(lanesPerRow));
  const wgy = Math.min(STRIP_WG / wgx, pow2AtLeast(strips));
  const out = emptyTensor(device, [g.n, g.cout, g.hout, g.wout]);
  const source = depthwiseStripSource(quads, g.kh, g.kw, g.pl, bias !== null, wgx, wgy, flip);
  const u = uniforms()
    .u32(rows + g.kh - 1)
    .i32(g.pt);
  device.dispatch(device.kernel(source), forwardBuffers(x, w, bias, out), u.bytes(), [
    Math.ceil(lanesPerRow / wgx),
    Math.ceil(strips / wgy),
    planes,
  ]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Input-gradient row kernel (any stride and vertical dilation, horizontal dilation 1): a lane
// computes XB consecutive input-gradient values of one row of one channel. Input x = ox·sw − pl + kx,
// so with XB a multiple of sw and blocks starting at multiples of XB, which taps kx reach value j of
// the block (j + pl − kx ≡ 0 mod sw) and at which dY column (ix0/sw + (j + pl − kx)/sw) are known
// when the kernel is built: per filter row it loads the dY values the block reads once and does only
// the products that exist. The grouped kernel it replaces ran a workgroup per (channel, stride
// class) with a few lanes each: STDC's 3×3 stride-2 depthwise input gradients at batch 4, 2048
// workgroups of 8 lanes for 512 channels.

/** Input-gradient values a lane computes: a multiple of the stride near 8. */
const dxBlock = (sw: number) => sw * Math.max(1, Math.floor(8 / sw));

function depthwiseInputGradSource(kh: number, kw: number, sh: number, sw: number, pl: number): KernelSource {
  const xb = dxBlock(sw);
  // Value j's taps: [kx, dY column offset from ix0/sw].
  const taps = range(xb).map((j) =>
    range(kw)
      .filter((kx) => (j + pl - kx) % sw === 0)
      .map((kx) => [kx, (j + pl - kx) / sw] as const),
  );
  const offsets = taps.flat().map(([, d]) => d);
  const dmin = Math.min(...offsets);
  const dmax = Math.max(...offsets);
  const yv = (d: number) => (d < 0 ? `ym${-d}` : `y${d}`);
  const filterRow = (ky: number) => `  {
    // Output row oy reaches this input row through filter row ${ky} when iy = oy·sh − pt + ${ky}·dh.
    let ty = i32(iy) + u.pt - i32(${ky}u * u.dh);
    if (ty >= 0 && ty % ${sh} == 0 && ty / ${sh} < i32(u.hout)) {
      let row = (plane * u.hout + u32(ty / ${sh})) * u.wout;
${range(dmax - dmin + 1)
  .map((k) => {
    const d = dmin + k;
    return `      let ${yv(d)} = select(0.0, dy[row + u32(clamp(oxb + ${d}, 0, wo - 1))], oxb + ${d} >= 0 && oxb + ${d} < wo);`;
  })
  .join('\n')}
${range(kw)
  .map(
    (kx) => `      let w${kx} = wt[(c * ${kh}u + ${ky}u) * ${kw}u + ${kx}u];
${taps
  .flatMap((list, j) => list.filter(([k]) => k === kx).map(([, d]) => `      a${j} += ${yv(d)} * w${kx};`))
  .join('\n')}`,
  )
  .join('\n')}
    }
  }`;
  return {
    key: `conv2d/depthwise-dx/x${xb}/k${kh}x${kw}/s${sh}x${sw}/pl${pl}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `${UNIFORM_STRUCT}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
${rowLaneMain('iy', 'u.h')}
  let ix0 = xbk * ${xb}u;
  let oxb = i32(ix0 / ${sw}u);
  let wo = i32(u.wout);
${range(xb)
  .map((j) => `  var a${j} = 0.0;`)
  .join('\n')}
${range(kh).map(filterRow).join('\n')}
  let base = (plane * u.h + iy) * u.w + ix0;
${range(xb)
  .map((j) => `  if (ix0 + ${j}u < u.w) { dx[base + ${j}u] = a${j}; }`)
  .join('\n')}
}`,
  };
}

/**
 * The input gradient of a depthwise convolution (horizontal dilation 1): with stride 1 and a
 * strip-shaped map, the strip kernel (dX is dY convolved with the filter rotated by 180° and padded
 * by k − 1 − p); otherwise the row kernel above. Null where neither applies (the grouped
 * input-gradient kernel computes those).
 */
export function depthwiseInputGrad(device: Device, dy: Tensor, w: Tensor, g: ConvGeometry): Tensor | null {
  if (!depthwiseFits(g) || g.kh > MAX_DEPTHWISE_KW) return null;
  if (g.sh === 1 && g.sw === 1 && g.dh === 1) {
    const transposed: ConvGeometry = {
      ...g,
      h: g.hout,
      w: g.wout,
      hout: g.h,
      wout: g.w,
      pt: g.kh - 1 - g.pt,
      pl: g.kw - 1 - g.pl,
    };
    if (stripFits(device, transposed)) return depthwiseStrip(device, dy, w, null, transposed, true);
  }
  const xblocks = Math.ceil(g.w / dxBlock(g.sw));
  const total = g.n * g.cin * g.h * xblocks;
  const dx = emptyTensor(device, [g.n, g.cin, g.h, g.w]);
  const source = depthwiseInputGradSource(g.kh, g.kw, g.sh, g.sw, g.pl);
  const [gx, gy] = gridFor(device, total, WG);
  const u = uniforms(g, { ocb: 1, icb: 1, xblocks, total });
  device.dispatch(device.kernel(source), [dy.buffer, w.buffer, dx.buffer], u.bytes(), [gx, gy, 1]);
  return dx;
}

export function depthwiseForward(
  device: Device,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
): Tensor {
  if (stripFits(device, g)) return depthwiseStrip(device, x, w, bias, g);
  // A strided window holds (xb − 1)·sw + kw values: fewer outputs a lane as the stride grows.
  const widest = g.sw === 1 ? 16 : g.sw === 2 ? 8 : 4;
  const xb = [16, 8, 4, 1].find((b) => b <= widest && b <= g.wout) ?? 1;
  const xblocks = Math.ceil(g.wout / xb);
  const total = g.n * g.cin * g.hout * xblocks;
  const out = emptyTensor(device, [g.n, g.cout, g.hout, g.wout]);
  const vec4 =
    xb >= 4 && g.sw === 1 && g.w % 4 === 0 && g.wout % 4 === 0 && g.pl >= 0 && depthwiseConfig.vec4;
  const source = depthwiseSource(xb, g.kw, g.sw, bias !== null, vec4 ? g.pl : null);
  const buffers = forwardBuffers(x, w, bias, out);
  const [gx, gy] = gridFor(device, total, WG);
  device.dispatch(device.kernel(source), buffers, uniforms(g, { ocb: 1, icb: 1, xblocks, total }).bytes(), [
    gx,
    gy,
    1,
  ]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Weight gradient of a depthwise convolution (stride and dilation 1, widths multiples of 4):
// dW[c, ky, kx] = Σ dY[n, c, oy, ox] · X[n, c, oy + ky − pt, ox + kx − pl]. A lane takes
// STRIP_QUADS output vec4s down a strip of rows of one image, reads each input row of the strip
// once and keeps the kh dY rows it pairs with in registers (input row iy pairs with dY row
// iy + pt − ky for tap row ky), holding all kh·kw sums; a workgroup adds its lanes' sums in
// workgroup memory and writes one partial per tap, which a fold adds up. The grouped weight-gradient
// kernel gave each channel a workgroup of 16 lanes of which kh worked.

const DW_STRIP_WG = 64;
const DW_STRIP_MIN_WG = 8;
/** The most taps a lane keeps sums for. */
const MAX_DW_TAPS = 25;

function depthwiseWeightGradSource(kh: number, kw: number, pl: number, wg: number): KernelSource {
  const taps = kh * kw;
  const { loads, shifted, left } = stripWindow(STRIP_QUADS, kw, pl, 'live');
  const quads = range(STRIP_QUADS);
  return {
    key: `conv2d/depthwise-dw/q${STRIP_QUADS}/k${kh}x${kw}/pl${pl}/wg${wg}`,
    bindings: ['read', 'read', 'rw'],
    workgroupSize: wg,
    wgsl: () => /* wgsl */ `
struct U {
  h: u32, hout: u32, wq: u32, wq_out: u32, c: u32, rows: u32, strips: u32, lanes_per_row: u32,
  items: u32, parts: u32, pt: i32,
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
var<workgroup> sums: array<f32, ${wg * taps}>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wid.z;
  let p = wid.x;
  let item = p * ${wg}u + lid.x;
  let live = item < u.items;
  let it = min(item, u.items - 1u);
  let q = (it % u.lanes_per_row) * ${STRIP_QUADS}u;
  let rest = it / u.lanes_per_row;
  let y0 = (rest % u.strips) * u.rows;
  let plane = (rest / u.strips) * u.c + c;
  let vbase = i32(min(q, u.wq_out - 1u)) - ${left};
  let wq = i32(u.wq);
${range(taps)
  .map((t) => `  var a${t} = 0.0;`)
  .join('\n')}
${quads.flatMap((o) => range(kh).map((ky) => `  var d${o}_${ky} = vec4<f32>();`)).join('\n')}
  for (var r = 0u; r < u.rows + ${kh - 1}u; r++) {
    // dY row y0 + r enters the window as d·_0; the older rows move down one tap row.
    let oy = y0 + r;
    let dy_ok = live && r < u.rows && oy < u.hout;
    let dy_row = (plane * u.hout + min(oy, u.hout - 1u)) * u.wq_out;
${quads
  .map(
    (o) => `${range(kh - 1)
      .reverse()
      .map((ky) => `    d${o}_${ky + 1} = d${o}_${ky};`)
      .join('\n')}
    d${o}_0 = select(vec4<f32>(), dy[dy_row + min(q + ${o}u, u.wq_out - 1u)], dy_ok && q + ${o}u < u.wq_out);`,
  )
  .join('\n')}
${loads}
${quads
  .map(
    (o) => `${shifted(o)}
${range(kh)
  .flatMap((ky) => range(kw).map((kx) => `    a${ky * kw + kx} += dot(d${o}_${ky}, s${o}_${kx});`))
  .join('\n')}`,
  )
  .join('\n')}
  }
${range(taps)
  .map((t) => `  sums[lid.x * ${taps}u + ${t}u] = a${t};`)
  .join('\n')}
  workgroupBarrier();
  for (var t = lid.x; t < ${taps}u; t += ${wg}u) {
    var total = 0.0;
    for (var l = 0u; l < ${wg}u; l++) { total += sums[l * ${taps}u + t]; }
    partial[(c * ${taps}u + t) * u.parts + p] = total;
  }
}`,
  };
}

/**
 * The depthwise weight gradient by the strip kernel, or null where it does not apply (the grouped
 * weight-gradient kernel computes those).
 */
export function depthwiseWeightGrad(device: Device, dy: Tensor, x: Tensor, g: ConvGeometry): Tensor | null {
  const taps = g.kh * g.kw;
  if (
    !depthwiseFits(g) ||
    !stripFits(device, g) ||
    taps > MAX_DW_TAPS ||
    g.cin > device.limits.maxComputeWorkgroupsPerDimension
  )
    return null;
  const { lanesPerRow, strips, uniforms } = stripLayout(device, g, STRIP_QUADS);
  const items = g.n * strips * lanesPerRow;
  // Small maps have few lanes per channel: a workgroup no wider than them (down to a SIMD width).
  const wg = Math.min(DW_STRIP_WG, Math.max(DW_STRIP_MIN_WG, pow2AtLeast(items)));
  const parts = Math.ceil(items / wg);
  if (parts > device.limits.maxComputeWorkgroupsPerDimension) return null;
  const shape = [g.cout, 1, g.kh, g.kw];
  const partial = emptyTensor(device, parts === 1 ? shape : [g.cin * taps, parts]);
  const u = uniforms().u32(strips).u32(lanesPerRow).u32(items).u32(parts).i32(g.pt);
  const source = depthwiseWeightGradSource(g.kh, g.kw, g.pl, wg);
  device.dispatch(device.kernel(source), [dy.buffer, x.buffer, partial.buffer], u.bytes(), [parts, 1, g.cin]);
  return parts === 1 ? partial : fold(device, partial, g, shape, parts);
}
