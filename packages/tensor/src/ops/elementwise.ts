import { record, traceAttrs } from '../autograd/engine.js';
import { broadcastKernel, mapKernel } from '../kernels/elementwise.js';
import { reduceTo } from '../kernels/reduce.js';
import { sameShape, type Tensor } from '../tensor.js';

/** Sums a broadcast gradient back to an operand's shape. */
function unbroadcast(grad: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(grad.shape, shape)) return grad;
  return reduceTo(grad.device, grad, shape, 'sum');
}

function binary(
  name: string,
  expr: string,
  a: Tensor,
  b: Tensor,
  grads: (g: Tensor) => [Tensor | null, Tensor | null],
  saved: Tensor[],
): Tensor {
  const out = sameShape(a.shape, b.shape)
    ? mapKernel(a.device, expr, [a, b])
    : broadcastKernel(a.device, expr, a, b, name);
  return record(out, name, [a, b], saved, (g) => {
    const [ga, gb] = grads(g);
    const ra = ga && a.requiresGrad ? unbroadcast(ga, a.shape) : null;
    const rb = gb && b.requiresGrad ? unbroadcast(gb, b.shape) : null;
    if (ga && ga !== ra && ga !== g) ga.dispose();
    if (gb && gb !== rb && gb !== g) gb.dispose();
    return [ra === g ? copyOf(g) : ra, rb === g ? copyOf(g) : rb];
  });
}

function copyOf(t: Tensor): Tensor {
  return mapKernel(t.device, 'a', [t]);
}

/** Elementwise `a` and `b` at broadcast positions: the gradient of mul/div needs the other operand broadcast. */
function zipBroadcast(expr: string, g: Tensor, x: Tensor, name: string, scalar = 0): Tensor {
  return sameShape(g.shape, x.shape)
    ? mapKernel(g.device, expr, [g, x], [scalar])
    : broadcastKernel(g.device, expr, g, x, name, scalar);
}

export function add(a: Tensor, b: Tensor): Tensor {
  return binary('add', 'a + b', a, b, (g) => [g, g], []);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  return binary('sub', 'a - b', a, b, (g) => [g, b.requiresGrad ? mapKernel(g.device, '-a', [g]) : null], []);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  return binary(
    'mul',
    'a * b',
    a,
    b,
    (g) => [
      a.requiresGrad ? zipBroadcast('a * b', g, b, 'mul') : null,
      b.requiresGrad ? zipBroadcast('a * b', g, a, 'mul') : null,
    ],
    [a, b],
  );
}

export function div(a: Tensor, b: Tensor): Tensor {
  return binary(
    'div',
    'a / b',
    a,
    b,
    (g) => {
      const ga = a.requiresGrad ? zipBroadcast('a / b', g, b, 'div') : null;
      let gb: Tensor | null = null;
      if (b.requiresGrad) {
        // d(a/b)/db = -a/b²: g·a at broadcast positions, then divided by b².
        const ga2 = zipBroadcast('a * b', g, a, 'div');
        gb = zipBroadcast('-a / (b * b)', ga2, b, 'div');
        ga2.dispose();
      }
      return [ga, gb];
    },
    [a, b],
  );
}

/** One-input op: forward expr in `a`, backward expr in g (as `a`), x (input, as `b`) and y (output, as `c`). */
function unary(
  name: string,
  forward: string,
  gradExpr: string,
  x: Tensor,
  scalars: number[] = [],
  needs: 'x' | 'y' | 'xy' | 'none' = 'x',
): Tensor {
  const y = mapKernel(x.device, forward, [x], scalars);
  traceAttrs(y, { scalars });
  const saved = needs === 'none' ? [] : needs === 'x' ? [x] : needs === 'y' ? [y] : [x, y];
  return record(y, name, [x], saved, (g) => {
    const inputs = [g, needs.includes('x') ? x : g, needs.includes('y') ? y : g];
    return [mapKernel(x.device, gradExpr, inputs, scalars)];
  });
}

export const neg = (x: Tensor) => unary('neg', '-a', '-a', x, [], 'none');
export const relu = (x: Tensor) => unary('relu', 'max(a, 0.0)', 'select(0.0, a, b > 0.0)', x);
export const exp = (x: Tensor) => unary('exp', 'exp(a)', 'a * c', x, [], 'y');
export const log = (x: Tensor) => unary('log', 'log(a)', 'a / b', x);
export const sqrt = (x: Tensor) => unary('sqrt', 'sqrt(a)', 'a * 0.5 / c', x, [], 'y');
export const sigmoid = (x: Tensor) => unary('sigmoid', 'sigmoid(a)', 'a * c * (1.0 - c)', x, [], 'y');
export const tanh = (x: Tensor) => unary('tanh', 'safe_tanh(a)', 'a * (1.0 - c * c)', x, [], 'y');
/** Exact (erf) GELU, as PaddleSeg's SegFormer uses. */
export const gelu = (x: Tensor) => unary('gelu', 'gelu(a)', 'a * gelu_grad(b)', x);
/** x^p for a scalar p. */
export const powScalar = (x: Tensor, p: number) =>
  unary('pow', 'spow(a, s0)', 'a * s0 * spow(b, s0 - 1.0)', x, [p]);
/** a·x + b. */
export const affine = (x: Tensor, scale: number, shift = 0) =>
  unary('affine', 'a * s0 + s1', 'a * s0', x, [scale, shift], 'none');
export const scale = (x: Tensor, factor: number) => affine(x, factor, 0);
/** Gradient passes where lo < x < hi. */
export const clamp = (x: Tensor, lo: number, hi: number) =>
  unary('clamp', 'clamp(a, s0, s1)', 'select(0.0, a, b > s0 && b < s1)', x, [lo, hi]);

/** cond ? a : b elementwise (same shapes); cond is a 0/1 float tensor. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  if (!sameShape(cond.shape, a.shape) || !sameShape(a.shape, b.shape))
    throw new Error('where: cond, a and b must have the same shape');
  const out = mapKernel(a.device, 'select(c, b, a > 0.5)', [cond, a, b]);
  return record(out, 'where', [a, b], [cond], (g) => [
    a.requiresGrad ? mapKernel(g.device, 'select(0.0, a, b > 0.5)', [g, cond]) : null,
    b.requiresGrad ? mapKernel(g.device, 'select(a, 0.0, b > 0.5)', [g, cond]) : null,
  ]);
}
