/**
 * Kernels across the channels of NCHW tensors, one invocation per (image, pixel): the mean and
 * maximum over channels (PaddleSeg's `avg_max_reduce_channel`) and the blend x·α + y·(s − α) under a
 * one-channel map α (UAFM's spatial attention), each pass in one dispatch where the composed ops
 * took 6–8 (mean, max, concat, broadcasts, their gradients and the sums those need). With HW a
 * multiple of 4 a lane takes 4 pixels as vec4s.
 */
import type { Device, KernelSource } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { f32Type, f32Zero, indexedMain, launch, Uniforms } from './launch.js';

const WG = 64;

type Binding = readonly [name: string, access: 'read' | 'rw', type: 'pixels' | 'f32'];

/**
 * A kernel over the (image, pixel group) lanes of NCHW tensors, one lane each (`launchPixels`):
 * storage bindings 1, 2, … are `vars` ('pixels': f32, or vec4 with `vec4`), and `body` sees `img`,
 * the pixel group `p` and the uniforms `u.hw` (groups a channel), `u.c` (the input's channels),
 * `u.extra` and `u.out_c` (the output's first channel and channel count, where there are those).
 */
function pixelKernel(name: string, vec4: boolean, vars: readonly Binding[], body: string): KernelSource {
  const declare = ([name, access, type]: Binding, i: number) =>
    `@group(0) @binding(${i + 1}) var<storage, ${access === 'rw' ? 'read_write' : 'read'}> ${name}: array<${f32Type(type === 'pixels' && vec4)}>;`;
  return {
    key: `channel/${name}${vec4 ? '4' : ''}`,
    bindings: vars.map(([, access]) => access),
    workgroupSize: WG,
    wgsl: () => /* wgsl */ `
struct U { lanes: u32, hw: u32, c: u32, extra: u32, div_hw: vec4<u32>, out_c: u32 }
@group(0) @binding(0) var<uniform> u: U;
${vars.map(declare).join('\n')}
${indexedMain(WG, 'i', 'u.lanes')}
  let img = fdiv(i, u.div_hw);
  let p = i - img * u.hw;
${body}
}`,
  };
}

/** The element (vec4) index of pixel group p of channel c of image img, in a tensor of `channels` channels. */
const index = (channels: string, c: string) => `(img * ${channels} + ${c}) * u.hw + p`;

/** Mean and maximum over the `u.c` channels of x into channels `u.extra`, `u.extra + 1` of `out`. */
const meanMaxSource = (vec4: boolean) =>
  pixelKernel(
    'mean-max',
    vec4,
    [
      ['x', 'read', 'pixels'],
      ['out', 'rw', 'pixels'],
    ],
    `    var total = x[${index('u.c', '0u')}];
    var top = total;
    for (var c = 1u; c < u.c; c++) {
      let v = x[${index('u.c', 'c')}];
      total += v;
      top = max(top, v);
    }
    out[${index('u.out_c', 'u.extra')}] = total / f32(u.c);
    out[${index('u.out_c', 'u.extra + 1u')}] = top;`,
  );

/**
 * dX of `meanMaxSource`: g_mean / C to every channel, plus g_max to every channel equal to the
 * maximum (all of them on a tie, as `max`'s gradient does).
 */
const meanMaxGradSource = (vec4: boolean) =>
  pixelKernel(
    'mean-max-grad',
    vec4,
    [
      ['x', 'read', 'pixels'],
      ['out', 'read', 'pixels'],
      ['g', 'read', 'pixels'],
      ['dx', 'rw', 'pixels'],
    ],
    `    let g_mean = g[${index('u.out_c', 'u.extra')}] / f32(u.c);
    let g_max = g[${index('u.out_c', 'u.extra + 1u')}];
    let top = out[${index('u.out_c', 'u.extra + 1u')}];
    for (var c = 0u; c < u.c; c++) {
      let at = ${index('u.c', 'c')};
      dx[at] = g_mean + select(${f32Zero(vec4)}, g_max, x[at] == top);
    }`,
  );

/** The blend kernels' operands: x, y, alpha, scale (one f32). */
const BLEND_INPUTS: readonly Binding[] = [
  ['x', 'read', 'pixels'],
  ['y', 'read', 'pixels'],
  ['alpha', 'read', 'pixels'],
  ['scale', 'read', 'f32'],
];

/** The blend kernels' pixel weight `a` = α and `rest` = s − α. */
const BLEND_PRELUDE = `    let a = alpha[img * u.hw + p];
    let rest = scale[0] - a;`;

/** out = x·α + y·(s − α), α [N, 1, H, W] over x's and y's channels, s = scale[0]. */
const blendSource = (vec4: boolean) =>
  pixelKernel(
    'blend',
    vec4,
    [...BLEND_INPUTS, ['out', 'rw', 'pixels']],
    `${BLEND_PRELUDE}
    for (var c = 0u; c < u.c; c++) {
      let at = ${index('u.c', 'c')};
      out[at] = x[at] * a + y[at] * rest;
    }`,
  );

/** dX = g·α, dY = g·(s − α), dα = Σ_c g·x − Σ_c g·y (the sums of the two products' gradients). */
const blendGradSource = (vec4: boolean) =>
  pixelKernel(
    'blend-grad',
    vec4,
    [
      ...BLEND_INPUTS,
      ['g', 'read', 'pixels'],
      ['dx', 'rw', 'pixels'],
      ['dy', 'rw', 'pixels'],
      ['dalpha', 'rw', 'pixels'],
    ],
    `${BLEND_PRELUDE}
    var gx = ${f32Zero(vec4)};
    var gy = gx;
    for (var c = 0u; c < u.c; c++) {
      let at = ${index('u.c', 'c')};
      let gc = g[at];
      dx[at] = gc * a;
      dy[at] = gc * rest;
      gx += gc * x[at];
      gy += gc * y[at];
    }
    dalpha[img * u.hw + p] = gx - gy;`,
  );

/**
 * Launches a `pixelKernel` over the (image, pixel group) lanes of NCHW `x`, whose channel count is
 * `u.c`; `outChannels`: `u.extra` (the output's first channel) and `u.out_c`.
 */
function launchPixels(
  device: Device,
  source: (vec4: boolean) => KernelSource,
  x: Tensor,
  buffers: readonly GPUBuffer[],
  outChannels: readonly [number, number] | null = null,
): void {
  const [n = 1, c = 1] = x.shape;
  const hw = x.size / (n * c);
  const vec4 = hw % 4 === 0;
  const groups = vec4 ? hw / 4 : hw;
  const u = new Uniforms()
    .u32(n * groups)
    .u32(groups)
    .u32(c)
    .u32(outChannels?.[0] ?? 0)
    .divisor(groups)
    .u32(outChannels?.[1] ?? 0);
  launch(device, source(vec4), buffers, u, n * groups);
}

/**
 * [N, 2k, H, W]: channels 2i and 2i + 1 are the mean and maximum over the channels of xs[i]
 * (each [N, C_i, H, W], the same N, H, W).
 */
export function meanMaxChannels(device: Device, xs: readonly Tensor[], out: Tensor): void {
  for (const [i, x] of xs.entries())
    launchPixels(device, meanMaxSource, x, [x.buffer, out.buffer], [2 * i, 2 * xs.length]);
}

/** dX of input `i` of `meanMaxChannels` (`out` its output, `g` that output's gradient). */
export function meanMaxChannelsGrad(
  device: Device,
  x: Tensor,
  i: number,
  out: Tensor,
  g: Tensor,
  dx: Tensor,
): void {
  const buffers = [x.buffer, out.buffer, g.buffer, dx.buffer];
  launchPixels(device, meanMaxGradSource, x, buffers, [2 * i, out.shape[1] ?? 2]);
}

/** `blendSource` into `out`. */
export function blendChannels(
  device: Device,
  x: Tensor,
  y: Tensor,
  alpha: Tensor,
  scale: Tensor,
  out: Tensor,
): void {
  launchPixels(device, blendSource, x, [x.buffer, y.buffer, alpha.buffer, scale.buffer, out.buffer]);
}

/** `blendGradSource` into dx, dy (x's shape) and dalpha (α's shape). */
export function blendChannelsGrad(
  device: Device,
  x: Tensor,
  y: Tensor,
  alpha: Tensor,
  scale: Tensor,
  g: Tensor,
  grads: { dx: Tensor; dy: Tensor; dalpha: Tensor },
): void {
  const buffers = [x.buffer, y.buffer, alpha.buffer, scale.buffer, g.buffer];
  buffers.push(grads.dx.buffer, grads.dy.buffer, grads.dalpha.buffer);
  launchPixels(device, blendGradSource, x, buffers);
}
