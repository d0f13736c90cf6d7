/**
 * Convolutions of one group as implicit GEMMs through the GEMM template (cuDNN's IMPLICIT_GEMM):
 * no unfolded (im2col) buffer; the template's operand loads gather the unfolded values on the fly
 * and its store writes NCHW. The passes as products:
 *   forward  out (cout × n·hout·wout) = W (cout × cin·kh·kw) · unfold(x)
 *   dX       dx  (cin × n·h·w)        = Wᵀ (cin × cout·kh·kw) · fold(dY), the taps whose stride
 *            divides the offset (strided convolutions multiply zeros for the rest)
 *   dW       dW  (cout × cin·kh·kw)   = dY (cout × n·hout·wout) · unfold(x)ᵀ, split over k ranges
 *            when the result is small (the GEMM's split-K)
 * They are autotune candidates beside the convolution kernels, one per GEMM tiling of
 * IMPLICIT_GEMM_TILINGS (the template's workgroup-memory tiles are how GPUs reuse loads; none was
 * lent to measure them). On lavapipe, where the tuner is off by default, the dedicated kernels win
 * by 1.5–3× even against the best tiling for each product: 2×64×128×256 3×3 forward 195 vs 73 ms,
 * dX 202 vs 75, dW 171 vs 91; 4×512×4×8 → 128 6.0 / 6.9 / 6.0 vs 2.4 / 2.5 / 3.1 ms.
 */
import type { TuneCandidate } from '../../device/autotune.js';
import type { Device } from '../../device/device.js';
import type { Tensor } from '../../tensor.js';
import {
  type GemmSpec,
  type GemmTiling,
  gemmGroups,
  gemmSource,
  gemmSplits,
  gemmUniforms,
  STAGED_TILINGS,
  sumSplits,
  tilingName,
} from '../gemm-template.js';
import { emptyTensor, FAST_DIV, fastDivisor } from '../launch.js';
import type { ConvGeometry } from './common.js';
import { isPointwise, POINTWISE_GEMM } from './pointwise.js';

/** The implicit GEMM with one GEMM tiling: a candidate's config. */
export interface ImplicitGemm {
  readonly implicit: GemmTiling;
}

/** The candidates' names: `implicit-gemm/<tiling>`. */
export const IMPLICIT_GEMM = 'implicit-gemm';

/**
 * The tilings the implicit GEMM is tried with, each a candidate of its own (no nested tuning: a
 * convolution's class is decided with each tiling at its best): plain 8×8 register tiles and the
 * workgroup-memory ones (vec4 and prefetched among them), all within WebGPU's guaranteed limits.
 */
export const IMPLICIT_GEMM_TILINGS: readonly GemmTiling[] = [
  { tm: 8, tn: 8, wx: 8, wy: 8, subgroupA: false },
  ...STAGED_TILINGS,
];

/** A pass computed by the GEMM template: a GEMM per image (1×1), or the implicit GEMM with a tiling. */
export type GemmVariant = typeof POINTWISE_GEMM | ImplicitGemm;

/** Whether a variant is the implicit GEMM (its config names the tiling). */
export const isImplicitGemm = (variant: unknown): variant is ImplicitGemm =>
  typeof variant === 'object' && variant !== null && 'implicit' in variant;

/**
 * `candidates` with the GEMM variants that compute this convolution added: the GEMM per image when
 * it is 1×1 (and `pointwiseAllowed`: that path has no bias), the implicit GEMM with each of
 * IMPLICIT_GEMM_TILINGS when it has one group.
 */
export function withGemmVariants<C>(
  candidates: TuneCandidate<C>[],
  g: ConvGeometry,
  pointwiseAllowed = true,
): TuneCandidate<C | GemmVariant>[] {
  const gemms: TuneCandidate<GemmVariant>[] = [];
  if (pointwiseAllowed && isPointwise(g)) gemms.push({ name: POINTWISE_GEMM, config: POINTWISE_GEMM });
  if (g.groups === 1)
    for (const implicit of IMPLICIT_GEMM_TILINGS)
      gemms.push({ name: `${IMPLICIT_GEMM}/${tilingName(implicit)}`, config: { implicit } });
  return [...candidates, ...gemms];
}

type Pass = 'fwd' | 'dx' | 'dw';

/**
 * Uniform fields after the template's own: the geometry, and fast divisors ([d, multiplier,
 * shift1, shift2] as scalars) of a plane's size and width (the output's for the forward and dW,
 * the input's for dX), by which a GEMM column or k index splits into (image, y, x).
 */
const FIELDS = `cin: u32, cout: u32, h: u32, w: u32, hout: u32, wout: u32, pt: i32, pl: i32, dh: u32, dw: u32,
  plane: u32, plane_mul: u32, plane_s1: u32, plane_s2: u32, width: u32, width_mul: u32, width_s1: u32, width_s2: u32,`;

const SPLIT = /* wgsl */ `
struct Pos { img: u32, p: u32, y: u32, x: u32 }
/** Flat position i of [images, plane] → (image, offset in the plane, y, x) by the fast divisors. */
fn split_pos(i: u32) -> Pos {
  let img = fdiv(i, vec4<u32>(u.plane, u.plane_mul, u.plane_s1, u.plane_s2));
  let p = i - img * u.plane;
  let y = fdiv(p, vec4<u32>(u.width, u.width_mul, u.width_s1, u.width_s2));
  return Pos(img, p, y, p - y * u.width);
}`;

/** A filter tap index k = (channel · kh + ky) · kw + kx, by constant divisions. */
const tap = (g: ConvGeometry, k: string) => `let khw = ${g.kh * g.kw}u;
  let ch = ${k} / khw;
  let r = ${k} - ch * khw;
  let ky = r / ${g.kw}u;
  let kx = r - ky * ${g.kw}u;`;

/** The x value tap (ky, kx) of channel `ch` reads for output position q; zero in the padding. */
const unfoldedX = `let iy = i32(q.y * SH + ky * u.dh) - u.pt;
  let ix = i32(q.x * SW + kx * u.dw) - u.pl;
  if (iy < 0 || iy >= i32(u.h) || ix < 0 || ix >= i32(u.w)) { return 0.0; }
  return x[((q.img * u.cin + ch) * u.h + u32(iy)) * u.w + u32(ix)];`;

function spec(pass: Pass, g: ConvGeometry, bias: boolean): GemmSpec {
  // Storage bindings 1, 2, …: the operands read, then the result written.
  const build = (names: readonly string[], bContiguous: 'k' | 'n', functions: string): GemmSpec => ({
    key: `conv/${pass}/k${g.kh}x${g.kw}/s${g.sh}x${g.sw}${bias ? '/bias' : ''}`,
    bindings: names.map((_, i) => (i === names.length - 1 ? 'rw' : 'read')),
    uniformFields: FIELDS,
    aContiguous: 'k',
    bContiguous,
    decls: `${names
      .map(
        (name, i) =>
          `@group(0) @binding(${i + 1}) var<storage, ${i === names.length - 1 ? 'read_write' : 'read'}> ${name}: array<f32>;`,
      )
      .join('\n')}
${FAST_DIV}
${SPLIT}`,
    functions: functions.replaceAll('SH', `${g.sh}u`).replaceAll('SW', `${g.sw}u`),
  });
  if (pass === 'fwd')
    return build(
      bias ? ['x', 'wt', 'bs', 'out'] : ['x', 'wt', 'out'],
      'n',
      `
fn load_a(b: u32, m: u32, k: u32) -> f32 { return wt[m * u.k + k]; }
fn load_b(b: u32, k: u32, n: u32) -> f32 {
  ${tap(g, 'k')}
  let q = split_pos(n);
  ${unfoldedX}
}
fn store_c(b: u32, m: u32, n: u32, v: f32) {
  let q = split_pos(n);
  out[(q.img * u.cout + m) * u.plane + q.p] = v${bias ? ' + bs[m]' : ''};
}`,
    );
  if (pass === 'dx')
    return build(
      ['dy', 'wt', 'dx'],
      'n',
      `
fn load_a(b: u32, m: u32, k: u32) -> f32 {
  ${tap(g, 'k')}
  return wt[(ch * u.cin + m) * khw + r];
}
fn load_b(b: u32, k: u32, n: u32) -> f32 {
  ${tap(g, 'k')}
  let q = split_pos(n);
  // Output (oy, ox) reaches input (y, x) through tap (ky, kx) when y = oy·sh − pt + ky·dh.
  let ty = i32(q.y) + u.pt - i32(ky * u.dh);
  let tx = i32(q.x) + u.pl - i32(kx * u.dw);
  if (ty < 0 || tx < 0 || u32(ty) % SH != 0u || u32(tx) % SW != 0u) { return 0.0; }
  let oy = u32(ty) / SH;
  let ox = u32(tx) / SW;
  if (oy >= u.hout || ox >= u.wout) { return 0.0; }
  return dy[((q.img * u.cout + ch) * u.hout + oy) * u.wout + ox];
}
fn store_c(b: u32, m: u32, n: u32, v: f32) {
  let q = split_pos(n);
  dx[(q.img * u.cin + m) * u.plane + q.p] = v;
}`,
    );
  return build(
    ['dy', 'x', 'partial'],
    'k',
    `
fn load_a(b: u32, m: u32, k: u32) -> f32 {
  let q = split_pos(k);
  return dy[(q.img * u.cout + m) * u.plane + q.p];
}
fn load_b(b: u32, k: u32, n: u32) -> f32 {
  ${tap(g, 'n')}
  let q = split_pos(k);
  ${unfoldedX}
}
fn store_c(b: u32, m: u32, n: u32, v: f32) { partial[(b * u.m + m) * u.n + n] = v; }`,
  );
}

/** The product's m, n, k and the plane its positions split by, per pass. */
function dims(pass: Pass, g: ConvGeometry): { m: number; n: number; k: number; plane: [number, number] } {
  const taps = g.kh * g.kw;
  const outPlane: [number, number] = [g.hout * g.wout, g.wout];
  if (pass === 'fwd') return { m: g.cout, n: g.n * g.hout * g.wout, k: g.cin * taps, plane: outPlane };
  if (pass === 'dx') return { m: g.cin, n: g.n * g.h * g.w, k: g.cout * taps, plane: [g.h * g.w, g.w] };
  return { m: g.cout, n: g.cin * taps, k: g.n * g.hout * g.wout, plane: outPlane };
}

function uniforms(g: ConvGeometry, m: number, n: number, k: number, splits: number, plane: [number, number]) {
  const u = gemmUniforms(m, n, k, 1, splits);
  for (const v of [g.cin, g.cout, g.h, g.w, g.hout, g.wout]) u.u32(v);
  u.i32(g.pt).i32(g.pl).u32(g.dh).u32(g.dw);
  for (const v of [...fastDivisor(plane[0]), ...fastDivisor(plane[1])]) u.u32(v);
  return u;
}

/**
 * Runs one pass into `out` (forward, dX: the NCHW result; dW: a [splits, cout·cin·kh·kw] partial
 * buffer when split).
 */
function run(
  device: Device,
  pass: Pass,
  g: ConvGeometry,
  operands: readonly Tensor[],
  tiling: GemmTiling,
  splits: number,
  out: Tensor,
): void {
  const { m, n, k, plane } = dims(pass, g);
  const gemmSpec = spec(pass, g, operands.length === 3);
  device.dispatch(
    device.kernel(gemmSource(gemmSpec, tiling)),
    [...operands.map((t) => t.buffer), out.buffer],
    uniforms(g, m, n, k, splits, plane).bytes(),
    gemmGroups(tiling, m, n, 1, splits),
  );
}

/** The forward (bias added in the store) into `out`. */
export function implicitGemmForward(
  device: Device,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  out: Tensor,
  g: ConvGeometry,
  variant: ImplicitGemm,
): void {
  run(device, 'fwd', g, bias ? [x, w, bias] : [x, w], variant.implicit, 1, out);
}

/** The input gradient into `out`. */
export function implicitGemmInputGrad(
  device: Device,
  dy: Tensor,
  w: Tensor,
  out: Tensor,
  g: ConvGeometry,
  variant: ImplicitGemm,
): void {
  run(device, 'dx', g, [dy, w], variant.implicit, 1, out);
}

/** The weight gradient, [cout, cin, kh, kw]. */
export function implicitGemmWeightGrad(
  device: Device,
  dy: Tensor,
  x: Tensor,
  g: ConvGeometry,
  variant: ImplicitGemm,
): Tensor {
  const { m, n, k } = dims('dw', g);
  const splits = gemmSplits(device, variant.implicit, m, n, k, 1);
  const shape = [g.cout, g.cin, g.kh, g.kw];
  const partial = emptyTensor(device, splits === 1 ? shape : [splits, m * n]);
  run(device, 'dw', g, [dy, x], variant.implicit, splits, partial);
  return splits === 1 ? partial : sumSplits(partial, m * n, shape);
}
