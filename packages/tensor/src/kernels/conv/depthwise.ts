/**
 * Depthwise convolution forward (groups = in = out channels, horizontal stride and dilation 1):
 * one invocation computes XB consecutive outputs of one row of one channel. Per filter row it loads
 * the XB + KW − 1 input values those outputs share once (as aligned vec4s when the widths are
 * multiples of 4) and reuses them for every tap, where the grouped kernel, built for dense channel
 * blocks, reloads each input per tap and output.
 */
import type { Device, KernelSource } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import { emptyTensor, gridFor } from '../launch.js';
import {
  type ConvGeometry,
  forwardAccess,
  forwardBindings,
  forwardBuffers,
  UNIFORM_STRUCT,
  uniforms,
} from './common.js';

// Measured on lavapipe (2×64×128×256, 3×3): x blocks of 16 in workgroups of 256 lanes were fastest
// (18.7 ms; blocks of 8: 21 ms; a column-per-lane variant with vertical reuse: 28 ms). Reading the
// window as aligned vec4s when widths allow: 16–20 → 11.6–12.7 ms in the same runs (blocks of 8 or
// 32: 15 and 12.3 ms; two output rows per invocation sharing input rows: no gain).
const WG = 256;
/** The widest filter row kept in registers (wider ones take the grouped kernel). */
export const MAX_DEPTHWISE_KW = 7;

/** Test hook: `vec4: false` runs the scalar-load kernel where the vec4 one would. */
export const depthwiseConfig = { vec4: true };

/** Whether the row-reuse depthwise kernel computes this convolution. */
export function depthwiseFits(g: ConvGeometry): boolean {
  return (
    g.groups > 1 &&
    g.groups === g.cin &&
    g.cout === g.cin &&
    g.sw === 1 &&
    g.dw === 1 &&
    g.kw <= MAX_DEPTHWISE_KW
  );
}

const range = (k: number) => Array.from({ length: k }, (_, i) => i);

/**
 * The kernel for XB outputs per invocation. `vec4Pad` (the left padding, baked in) selects the vec4
 * variant, for input and output widths that are multiples of 4: the input window is read as aligned
 * vec4s (a whole vec4 is in or out of the row) and the outputs written as vec4s.
 */
function depthwiseSource(xb: number, kw: number, bias: boolean, vec4Pad: number | null): KernelSource {
  const win = xb + kw - 1;
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
    key: `conv2d/depthwise/x${xb}/kw${kw}/bias${bias ? 1 : 0}${vec4 ? `/vec4pl${vec4Pad}` : ''}`,
    bindings: forwardAccess(bias),
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `${UNIFORM_STRUCT}
${forwardBindings(bias, vec4)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = linear_id(gid, groups, ${WG}u);
  if (t >= u.total) { return; }
  let xbk = t % u.xblocks;
  let rest = t / u.xblocks;
  let oy = rest % u.hout;
  let plane = rest / u.hout;
  let c = plane % u.cin;
  let ox0 = xbk * ${xb}u;
  let ix0 = i32(ox0) - u.pl;
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
  .map((j) => `    a${j} += v${j + k} * w${k};`)
  .join('\n')}`,
  )
  .join('\n')}
  }
  let obase = (plane * u.hout + oy) * u.wout + ox0;
${bias ? '  let b = bs[c];\n' : ''}${stores}
}`,
  };
}

export function depthwiseForward(
  device: Device,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
): Tensor {
  const xb = g.wout >= 16 ? 16 : g.wout >= 8 ? 8 : g.wout >= 4 ? 4 : 1;
  const xblocks = Math.ceil(g.wout / xb);
  const total = g.n * g.cin * g.hout * xblocks;
  const out = emptyTensor(device, [g.n, g.cout, g.hout, g.wout]);
  const vec4 = xb >= 4 && g.w % 4 === 0 && g.wout % 4 === 0 && g.pl >= 0 && depthwiseConfig.vec4;
  const source = depthwiseSource(xb, g.kw, bias !== null, vec4 ? g.pl : null);
  const buffers = forwardBuffers(x, w, bias, out);
  const [gx, gy] = gridFor(device, total, WG);
  device.dispatch(device.kernel(source), buffers, uniforms(g, { ocb: 1, icb: 1, xblocks, total }).bytes(), [
    gx,
    gy,
    1,
  ]);
  return out;
}
