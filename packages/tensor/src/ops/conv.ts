import { record, traceAttrs } from '../autograd/engine.js';
import {
  type ConvGeometry,
  conv2dBiasGrad,
  conv2dForward,
  conv2dInputGrad,
  conv2dWeightGrad,
} from '../kernels/conv.js';
import { formatShape, type Tensor } from '../tensor.js';

export type Pair = number | readonly [number, number];
export type Conv2dPadding =
  | number
  | readonly [number, number]
  | readonly [number, number, number, number]
  | 'same';

export interface Conv2dOptions {
  /** [sh, sw] or one value for both (default 1). */
  readonly stride?: Pair;
  /**
   * One value for all sides, [h, w] (top = bottom = h, left = right = w), [top, bottom, left, right],
   * or 'same' (Paddle/TF: total = max((ceil(in/s)-1)·s + (k-1)·d + 1 - in, 0), the extra pixel at
   * bottom/right). Default 0.
   */
  readonly padding?: Conv2dPadding;
  /** [dh, dw] or one value for both (default 1). */
  readonly dilation?: Pair;
  /** Channel groups (default 1); groups == Cin == Cout is depthwise. */
  readonly groups?: number;
}

function pair(value: Pair | undefined, fallback: number, name: string): [number, number] {
  const [a, b] =
    value === undefined ? [fallback, fallback] : typeof value === 'number' ? [value, value] : value;
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < 1 || b < 1)
    throw new Error(`conv2d: ${name} must be positive integers, got ${JSON.stringify(value)}`);
  return [a, b];
}

function samePad(size: number, k: number, s: number, d: number): [number, number] {
  const total = Math.max((Math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** [top, bottom, left, right] padding for this input and kernel. */
export function resolvePadding(
  padding: Conv2dPadding | undefined,
  h: number,
  w: number,
  kh: number,
  kw: number,
  [sh, sw]: [number, number],
  [dh, dw]: [number, number],
): [number, number, number, number] {
  let pads: number[];
  if (padding === undefined) pads = [0, 0, 0, 0];
  else if (padding === 'same') pads = [...samePad(h, kh, sh, dh), ...samePad(w, kw, sw, dw)];
  else if (typeof padding === 'number') pads = [padding, padding, padding, padding];
  else if (padding.length === 2) pads = [padding[0], padding[0], padding[1], padding[1]];
  else if (padding.length === 4) pads = [...padding];
  else throw new Error(`conv2d: padding must be a number, [h, w], [top, bottom, left, right] or 'same'`);
  if (pads.some((p) => !Number.isInteger(p) || p < 0))
    throw new Error(`conv2d: padding must be non-negative integers, got ${JSON.stringify(padding)}`);
  return pads as [number, number, number, number];
}

/** Validates shapes and options and returns the geometry the kernels take. */
export function conv2dGeometry(
  xShape: readonly number[],
  wShape: readonly number[],
  biasShape: readonly number[] | null,
  options: Conv2dOptions = {},
): ConvGeometry {
  if (xShape.length !== 4)
    throw new Error(`conv2d: x must be NCHW (rank 4), got shape ${formatShape(xShape)}`);
  if (wShape.length !== 4)
    throw new Error(
      `conv2d: weight must be [out, in/groups, kh, kw] (rank 4), got shape ${formatShape(wShape)}`,
    );
  const [n = 0, cin = 0, h = 0, w = 0] = xShape;
  const [cout = 0, cinPg = 0, kh = 0, kw = 0] = wShape;
  const groups = options.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1)
    throw new Error(`conv2d: groups must be a positive integer, got ${groups}`);
  if (cin % groups !== 0)
    throw new Error(
      `conv2d: x has ${cin} channels (shape ${formatShape(xShape)}), not divisible by groups=${groups}`,
    );
  if (cout % groups !== 0)
    throw new Error(
      `conv2d: weight ${formatShape(wShape)} has ${cout} output channels, not divisible by groups=${groups}`,
    );
  if (cinPg * groups !== cin)
    throw new Error(
      `conv2d: weight ${formatShape(wShape)} expects ${cinPg} input channels per group, x has shape ${formatShape(xShape)}` +
        (groups > 1 ? ` (groups=${groups}: ${cin / groups} per group)` : ''),
    );
  if ([n, cin, h, w, cout, kh, kw].some((d) => d < 1))
    throw new Error(`conv2d: empty shapes x ${formatShape(xShape)}, weight ${formatShape(wShape)}`);
  if (biasShape && (biasShape.length !== 1 || biasShape[0] !== cout))
    throw new Error(
      `conv2d: bias must have shape [${cout}] for weight ${formatShape(wShape)}, got ${formatShape(biasShape)}`,
    );
  const stride = pair(options.stride, 1, 'stride');
  const dilation = pair(options.dilation, 1, 'dilation');
  const [pt, pb, pl, pr] = resolvePadding(options.padding, h, w, kh, kw, stride, dilation);
  const [sh, sw] = stride;
  const [dh, dw] = dilation;
  const effH = (kh - 1) * dh + 1;
  const effW = (kw - 1) * dw + 1;
  const hout = Math.floor((h + pt + pb - effH) / sh) + 1;
  const wout = Math.floor((w + pl + pr - effW) / sw) + 1;
  if (hout < 1 || wout < 1)
    throw new Error(
      `conv2d: kernel ${kh}x${kw} (dilation ${dh}x${dw}) is larger than the padded input ` +
        `${h + pt + pb}x${w + pl + pr} for x ${formatShape(xShape)}`,
    );
  return { n, cin, h, w, cout, hout, wout, groups, kh, kw, sh, sw, pt, pl, dh, dw };
}

/**
 * 2-D convolution (cross-correlation, as PyTorch/Paddle) on NCHW f32 tensors:
 * x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], optional bias [Cout] → [N, Cout, Hout, Wout].
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null, options: Conv2dOptions = {}): Tensor {
  const geometry = conv2dGeometry(x.shape, weight.shape, bias ? bias.shape : null, options);
  const device = x.device;
  const out = conv2dForward(device, x, weight, bias, geometry);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  traceAttrs(out, { geometry });
  return record(out, 'conv2d', inputs, [x, weight], (g) => {
    const dx = x.requiresGrad ? conv2dInputGrad(device, g, weight, geometry) : null;
    const dw = weight.requiresGrad ? conv2dWeightGrad(device, g, x, geometry) : null;
    const grads: Array<Tensor | null> = [dx, dw];
    if (bias) grads.push(bias.requiresGrad ? conv2dBiasGrad(device, g, geometry) : null);
    return grads;
  });
}
