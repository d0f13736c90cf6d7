// Float64 CPU references for the ops a traced model forward records, and their vector-Jacobian
// products, used by tools/f64-audit.mjs. Each op takes its inputs as Float64Arrays with their shapes
// and the attributes `traceOps` recorded; `forward` returns the output, `backward` one gradient per
// input (null where the op has none).

export const size = (s) => s.reduce((a, b) => a * b, 1);
export const strides = (s) => s.map((_, i) => size(s.slice(i + 1)));

// Visits every (output position, input position, weight position) of a convolution.
function eachConvTap(g, visit) {
  const cinPg = g.cin / g.groups;
  const coutPg = g.cout / g.groups;
  for (let n = 0; n < g.n; n++)
    for (let co = 0; co < g.cout; co++) {
      const group = Math.floor(co / coutPg);
      for (let oy = 0; oy < g.hout; oy++)
        for (let ox = 0; ox < g.wout; ox++) {
          const o = ((n * g.cout + co) * g.hout + oy) * g.wout + ox;
          for (let ci = 0; ci < cinPg; ci++) {
            const cin = group * cinPg + ci;
            for (let ky = 0; ky < g.kh; ky++) {
              const iy = oy * g.sh + ky * g.dh - g.pt;
              if (iy < 0 || iy >= g.h) continue;
              for (let kx = 0; kx < g.kw; kx++) {
                const ix = ox * g.sw + kx * g.dw - g.pl;
                if (ix < 0 || ix >= g.w) continue;
                visit(
                  o,
                  ((n * g.cin + cin) * g.h + iy) * g.w + ix,
                  ((co * cinPg + ci) * g.kh + ky) * g.kw + kx,
                );
              }
            }
          }
        }
    }
}

function conv(x, w, b, g) {
  const out = new Float64Array(g.n * g.cout * g.hout * g.wout);
  eachConvTap(g, (o, i, k) => {
    out[o] += x[i] * w[k];
  });
  if (b) {
    const plane = g.hout * g.wout;
    for (let o = 0; o < out.length; o++) out[o] += b[Math.floor(o / plane) % g.cout];
  }
  return out;
}

function convBackward(x, w, hasBias, grad, g) {
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  eachConvTap(g, (o, i, k) => {
    dx[i] += w[k] * grad[o];
    dw[k] += x[i] * grad[o];
  });
  let db = null;
  if (hasBias) {
    db = new Float64Array(g.cout);
    const plane = g.hout * g.wout;
    for (let o = 0; o < grad.length; o++) db[Math.floor(o / plane) % g.cout] += grad[o];
  }
  return [dx, dw, db];
}

// Per-channel mean and biased variance (two passes) of an [N, C, ...] tensor.
function channelStats(x, s) {
  const [n, c] = s;
  const hw = size(s) / (n * c);
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    for (let i = 0; i < n; i++) for (let p = 0; p < hw; p++) sum += x[(i * c + ch) * hw + p];
    mean[ch] = sum / (n * hw);
    let sq = 0;
    for (let i = 0; i < n; i++) for (let p = 0; p < hw; p++) sq += (x[(i * c + ch) * hw + p] - mean[ch]) ** 2;
    variance[ch] = sq / (n * hw);
  }
  return { mean, variance };
}

// The statistics a BatchNorm uses: the batch's in training (one value per channel: none, the
// output is the input), the running ones in eval.
function bnStatistics(x, s, a, running) {
  const count = size(s) / s[1];
  if (a.training && count === 1) return null;
  return a.training ? channelStats(x, s) : { mean: running.mean, variance: running.variance };
}

function batchNorm(x, s, w, b, a, running) {
  const stats = bnStatistics(x, s, a, running);
  if (!stats) return Float64Array.from(x);
  const c = s[1];
  const hw = size(s) / (s[0] * c);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / hw) % c;
    const v = ((x[i] - stats.mean[ch]) / Math.sqrt(stats.variance[ch] + a.eps)) * w[ch] + b[ch];
    out[i] = a.activation === 'relu' ? Math.max(v, 0) : v;
  }
  return out;
}

function batchNormBackward(x, s, w, out, grad, a, running) {
  const stats = bnStatistics(x, s, a, running);
  const c = s[1];
  if (!stats) return [Float64Array.from(grad), new Float64Array(c), new Float64Array(c)];
  const hw = size(s) / (s[0] * c);
  const count = size(s) / c;
  const gm = a.activation === 'relu' ? grad.map((v, i) => (out[i] > 0 ? v : 0)) : grad;
  const xhat = new Float64Array(x.length);
  const dBias = new Float64Array(c);
  const dWeight = new Float64Array(c);
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / hw) % c;
    xhat[i] = (x[i] - stats.mean[ch]) / Math.sqrt(stats.variance[ch] + a.eps);
    dBias[ch] += gm[i];
    dWeight[ch] += gm[i] * xhat[i];
  }
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / hw) % c;
    const inv = 1 / Math.sqrt(stats.variance[ch] + a.eps);
    const centred = a.training ? gm[i] - dBias[ch] / count - (xhat[i] * dWeight[ch]) / count : gm[i];
    dx[i] = w[ch] * inv * centred;
  }
  return [dx, dWeight, dBias];
}

// Source taps of one output coordinate of a bilinear resize (Paddle's half-pixel or align-corners).
function resizeTap(dst, inS, outS, alignCorners) {
  const src = alignCorners
    ? outS > 1
      ? (dst * (inS - 1)) / (outS - 1)
      : 0
    : Math.max((dst + 0.5) * (inS / outS) - 0.5, 0);
  const i0 = Math.min(Math.floor(src), inS - 1);
  return [i0, Math.min(i0 + 1, inS - 1), src - i0];
}

// Visits each (output index, input index, weight) pair of a bilinear resize.
function eachResizeTap(s, [oh, ow], alignCorners, visit) {
  const [h, w] = s.slice(-2);
  const planes = size(s) / (h * w);
  for (let p = 0; p < planes; p++)
    for (let y = 0; y < oh; y++) {
      const [y0, y1, ly] = resizeTap(y, h, oh, alignCorners);
      for (let xx = 0; xx < ow; xx++) {
        const [x0, x1, lx] = resizeTap(xx, w, ow, alignCorners);
        const o = (p * oh + y) * ow + xx;
        const at = (yy, xv) => (p * h + yy) * w + xv;
        visit(o, at(y0, x0), (1 - lx) * (1 - ly));
        visit(o, at(y0, x1), lx * (1 - ly));
        visit(o, at(y1, x0), (1 - lx) * ly);
        visit(o, at(y1, x1), lx * ly);
      }
    }
}

function resize(x, s, outSize, alignCorners) {
  const out = new Float64Array((size(s) / (s.at(-2) * s.at(-1))) * outSize[0] * outSize[1]);
  eachResizeTap(s, outSize, alignCorners, (o, i, weight) => {
    out[o] += x[i] * weight;
  });
  return out;
}

function resizeBackward(s, outSize, alignCorners, grad) {
  const dx = new Float64Array(size(s));
  eachResizeTap(s, outSize, alignCorners, (o, i, weight) => {
    dx[i] += grad[o] * weight;
  });
  return dx;
}

function transpose(x, s, perm) {
  const os = perm.map((p) => s[p]);
  const is = strides(s);
  const out = new Float64Array(x.length);
  const ostr = strides(os);
  for (let i = 0; i < out.length; i++) {
    let src = 0;
    for (let d = 0; d < os.length; d++) src += (Math.floor(i / ostr[d]) % os[d]) * is[perm[d]];
    out[i] = x[src];
  }
  return out;
}

const inversePerm = (perm) => perm.map((_, i) => perm.indexOf(i));

// Visits every softmax row of an axis as (offset of its first element, stride between elements).
function eachSoftmaxRow(s, axis, visit) {
  const inner = size(s.slice(axis + 1));
  const outer = size(s.slice(0, axis));
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) visit(o * s[axis] * inner + i, inner);
}

function softmax(x, s, axis) {
  const out = new Float64Array(x.length);
  const d = s[axis];
  eachSoftmaxRow(s, axis, (start, step) => {
    let m = -Infinity;
    for (let k = 0; k < d; k++) m = Math.max(m, x[start + k * step]);
    let z = 0;
    for (let k = 0; k < d; k++) z += Math.exp(x[start + k * step] - m);
    for (let k = 0; k < d; k++) out[start + k * step] = Math.exp(x[start + k * step] - m) / z;
  });
  return out;
}

function softmaxBackward(y, s, axis, grad) {
  const dx = new Float64Array(y.length);
  const d = s[axis];
  eachSoftmaxRow(s, axis, (start, step) => {
    let dot = 0;
    for (let k = 0; k < d; k++) dot += grad[start + k * step] * y[start + k * step];
    for (let k = 0; k < d; k++) dx[start + k * step] = y[start + k * step] * (grad[start + k * step] - dot);
  });
  return dx;
}

// [b?, M, K] · [b?, K, N] with a rank-2 (or batch-1) operand shared by every batch.
function matmulDims(as, bs) {
  const [m, k] = as.slice(-2);
  const n = bs.at(-1);
  const batchA = as.length === 3 ? as[0] : 1;
  const batchB = bs.length === 3 ? bs[0] : 1;
  return { m, k, n, batch: Math.max(batchA, batchB), sharedA: batchA === 1, sharedB: batchB === 1 };
}

function matmul(a, as, b, bs) {
  const { m, k, n, batch, sharedA, sharedB } = matmulDims(as, bs);
  const out = new Float64Array(batch * m * n);
  for (let q = 0; q < batch; q++) {
    const ao = sharedA ? 0 : q * m * k;
    const bo = sharedB ? 0 : q * k * n;
    for (let i = 0; i < m; i++)
      for (let t = 0; t < k; t++) {
        const av = a[ao + i * k + t];
        for (let j = 0; j < n; j++) out[(q * m + i) * n + j] += av * b[bo + t * n + j];
      }
  }
  return out;
}

function matmulBackward(a, as, b, bs, grad) {
  const { m, k, n, batch, sharedA, sharedB } = matmulDims(as, bs);
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  for (let q = 0; q < batch; q++) {
    const ao = sharedA ? 0 : q * m * k;
    const bo = sharedB ? 0 : q * k * n;
    for (let i = 0; i < m; i++)
      for (let t = 0; t < k; t++)
        for (let j = 0; j < n; j++) {
          const gv = grad[(q * m + i) * n + j];
          da[ao + i * k + t] += gv * b[bo + t * n + j];
          db[bo + t * n + j] += gv * a[ao + i * k + t];
        }
  }
  return [da, db];
}

// Visits each part of a concatenation as (part index, offset in the part, offset in the result).
function eachConcatRun(shapes, axis, visit) {
  const outer = size(shapes[0].slice(0, axis));
  const inner = size(shapes[0].slice(axis + 1));
  const total = shapes.reduce((sum, s) => sum + s[axis], 0);
  let off = 0;
  shapes.forEach((s, part) => {
    const run = s[axis] * inner;
    for (let o = 0; o < outer; o++) visit(part, o * run, (o * total + off) * inner, run);
    off += s[axis];
  });
}

// Dropout's per-element scale (0 or 1/(1 − p)), read back from the float32 input and output: the
// mask is random, so a float64 replay reuses the one the forward drew. Channel dropout drops whole
// planes (dims from 2 on), drop-path whole samples (dims from 1 on), so a plane's scale comes from
// any of its nonzero inputs.
export function dropoutScale(x32, out32, s, planeFrom = 2) {
  const plane = size(s.slice(planeFrom));
  const scale = new Float64Array(x32.length);
  for (let start = 0; start < x32.length; start += plane) {
    let factor = 0;
    for (let i = start; i < start + plane; i++)
      if (x32[i] !== 0) {
        factor = out32[i] / x32[i];
        break;
      }
    scale.fill(factor, start, start + plane);
  }
  return scale;
}

/** Op types with a reference here; a traced op of another type is listed as not audited. */
export const REFERENCE_OPS = new Set([
  'conv2d',
  'batchNorm2d',
  'relu',
  'add',
  'affine',
  'resizeBilinear',
  'reshape',
  'transpose',
  'softmax',
  'matmul',
  'concat',
  'dropout2d',
]);

/**
 * The float64 output of one traced op. `ins` are its inputs (float64), `s` their shapes, `extra`
 * what the op needs beyond its inputs: `running` statistics (BatchNorm in eval), the dropout
 * `scale`.
 */
export function forward(op, ins, s, a, extra = {}) {
  switch (op) {
    case 'conv2d':
      return conv(ins[0], ins[1], ins[2], a.geometry);
    case 'batchNorm2d':
      return batchNorm(ins[0], s[0], ins[1], ins[2], a, extra.running);
    case 'relu':
      return ins[0].map((v) => Math.max(v, 0));
    case 'add':
      return ins[0].map((v, i) => v + ins[1][i]);
    case 'affine':
      return ins[0].map((v) => v * a.scalars[0] + a.scalars[1]);
    case 'resizeBilinear':
      return resize(ins[0], s[0], a.size, a.alignCorners);
    case 'reshape':
      return Float64Array.from(ins[0]);
    case 'transpose':
      return transpose(ins[0], s[0], a.perm);
    case 'softmax':
      return softmax(ins[0], s[0], a.axis);
    case 'matmul':
      return matmul(ins[0], s[0], ins[1], s[1]);
    case 'concat': {
      const out = new Float64Array(ins.reduce((n, x) => n + x.length, 0));
      eachConcatRun(s, a.axis, (part, from, to, run) => out.set(ins[part].subarray(from, from + run), to));
      return out;
    }
    case 'dropout2d':
      return ins[0].map((v, i) => v * extra.scale[i]);
    default:
      throw new Error(`f64-reference: no forward for ${op}`);
  }
}

/** The float64 gradients of one traced op's inputs, given its output and the output's gradient. */
export function backward(op, ins, s, a, out, grad, extra = {}) {
  switch (op) {
    case 'conv2d':
      return convBackward(ins[0], ins[1], ins.length > 2, grad, a.geometry);
    case 'batchNorm2d':
      return batchNormBackward(ins[0], s[0], ins[1], out, grad, a, extra.running);
    case 'relu':
      return [grad.map((v, i) => (ins[0][i] > 0 ? v : 0))];
    case 'add':
      return [Float64Array.from(grad), Float64Array.from(grad)];
    case 'affine':
      return [grad.map((v) => v * a.scalars[0])];
    case 'resizeBilinear':
      return [resizeBackward(s[0], a.size, a.alignCorners, grad)];
    case 'reshape':
      return [Float64Array.from(grad)];
    case 'transpose':
      return [
        transpose(
          grad,
          a.perm.map((p) => s[0][p]),
          inversePerm(a.perm),
        ),
      ];
    case 'softmax':
      return [softmaxBackward(out, s[0], a.axis, grad)];
    case 'matmul':
      return matmulBackward(ins[0], s[0], ins[1], s[1], grad);
    case 'concat': {
      const parts = ins.map((x) => new Float64Array(x.length));
      eachConcatRun(s, a.axis, (part, from, to, run) => parts[part].set(grad.subarray(to, to + run), from));
      return parts;
    }
    case 'dropout2d':
      return [grad.map((v, i) => v * extra.scale[i])];
    default:
      throw new Error(`f64-reference: no backward for ${op}`);
  }
}
