// Op-by-op float64 audit of a model's forward: every op of one traced forward is recomputed in
// float64 on the CPU from the same float32 inputs, and its relative error printed (worst first, and
// per op type). An op whose error stands out from others of its kind is where precision is lost.
//   node tools/f64-audit.mjs [config] [N C H W] [train|eval]   (needs `pnpm build`)
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const load = (p) => import(join(root, p));
const { loadConfig } = await load('packages/config/dist/index.js');
const { buildModel, withoutPretrained } = await load('packages/models/dist/index.js');
const T = await load('packages/tensor/dist/index.js');

const args = process.argv.slice(2);
const config = args[0] ?? 'configs/ocrnet/ocrnet_hrnetw18_cityscapes_1024x512_160k.yml';
const shape = args.length >= 5 ? args.slice(1, 5).map(Number) : [2, 3, 128, 256];
const mode = args[5] ?? 'train';

const size = (s) => s.reduce((a, b) => a * b, 1);
const strides = (s) => s.map((_, i) => size(s.slice(i + 1)));

function conv(x, w, b, g) {
  const out = new Float64Array(g.n * g.cout * g.hout * g.wout);
  const cinPg = g.cin / g.groups;
  const coutPg = g.cout / g.groups;
  for (let n = 0; n < g.n; n++)
    for (let co = 0; co < g.cout; co++) {
      const grp = Math.floor(co / coutPg);
      for (let oy = 0; oy < g.hout; oy++)
        for (let ox = 0; ox < g.wout; ox++) {
          let acc = b ? b[co] : 0;
          for (let ci = 0; ci < cinPg; ci++) {
            const cin = grp * cinPg + ci;
            for (let ky = 0; ky < g.kh; ky++) {
              const iy = oy * g.sh + ky * g.dh - g.pt;
              if (iy < 0 || iy >= g.h) continue;
              for (let kx = 0; kx < g.kw; kx++) {
                const ix = ox * g.sw + kx * g.dw - g.pl;
                if (ix < 0 || ix >= g.w) continue;
                acc +=
                  x[((n * g.cin + cin) * g.h + iy) * g.w + ix] *
                  w[((co * cinPg + ci) * g.kh + ky) * g.kw + kx];
              }
            }
          }
          out[((n * g.cout + co) * g.hout + oy) * g.wout + ox] = acc;
        }
    }
  return out;
}

function batchNorm(x, s, w, b, eps, training, rm, rv) {
  const [n, c] = s;
  const hw = size(s) / (n * c);
  const out = new Float64Array(x.length);
  for (let ch = 0; ch < c; ch++) {
    let mean = rm?.[ch] ?? 0;
    let variance = rv?.[ch] ?? 1;
    if (training) {
      let sum = 0;
      for (let i = 0; i < n; i++) for (let p = 0; p < hw; p++) sum += x[(i * c + ch) * hw + p];
      mean = sum / (n * hw);
      let sq = 0;
      for (let i = 0; i < n; i++) for (let p = 0; p < hw; p++) sq += (x[(i * c + ch) * hw + p] - mean) ** 2;
      variance = sq / (n * hw);
    }
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < n; i++)
      for (let p = 0; p < hw; p++) {
        const at = (i * c + ch) * hw + p;
        out[at] = (x[at] - mean) * inv * w[ch] + b[ch];
      }
  }
  return out;
}

function resize(x, s, [oh, ow], alignCorners) {
  const [h, w] = s.slice(-2);
  const planes = size(s) / (h * w);
  const out = new Float64Array(planes * oh * ow);
  const tap = (dst, inS, outS) => {
    const src = alignCorners
      ? outS > 1
        ? (dst * (inS - 1)) / (outS - 1)
        : 0
      : Math.max((dst + 0.5) * (inS / outS) - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inS - 1);
    return [i0, Math.min(i0 + 1, inS - 1), src - i0];
  };
  for (let p = 0; p < planes; p++)
    for (let y = 0; y < oh; y++) {
      const [y0, y1, ly] = tap(y, h, oh);
      for (let xx = 0; xx < ow; xx++) {
        const [x0, x1, lx] = tap(xx, w, ow);
        const at = (yy, xv) => x[(p * h + yy) * w + xv];
        const top = at(y0, x0) * (1 - lx) + at(y0, x1) * lx;
        const bottom = at(y1, x0) * (1 - lx) + at(y1, x1) * lx;
        out[(p * oh + y) * ow + xx] = top * (1 - ly) + bottom * ly;
      }
    }
  return out;
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

function softmax(x, s, axis) {
  const inner = size(s.slice(axis + 1));
  const d = s[axis];
  const outer = size(s.slice(0, axis));
  const out = new Float64Array(x.length);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      let m = -Infinity;
      for (let k = 0; k < d; k++) m = Math.max(m, x[(o * d + k) * inner + i]);
      let z = 0;
      for (let k = 0; k < d; k++) z += Math.exp(x[(o * d + k) * inner + i] - m);
      for (let k = 0; k < d; k++) out[(o * d + k) * inner + i] = Math.exp(x[(o * d + k) * inner + i] - m) / z;
    }
  return out;
}

function matmul(a, as, b, bs) {
  const [m, k] = as.slice(-2);
  const n = bs.at(-1);
  const batch = Math.max(as.length === 3 ? as[0] : 1, bs.length === 3 ? bs[0] : 1);
  const out = new Float64Array(batch * m * n);
  for (let q = 0; q < batch; q++) {
    const ao = as.length === 3 && as[0] > 1 ? q * m * k : 0;
    const bo = bs.length === 3 && bs[0] > 1 ? q * k * n : 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let t = 0; t < k; t++) acc += a[ao + i * k + t] * b[bo + t * n + j];
        out[(q * m + i) * n + j] = acc;
      }
  }
  return out;
}

function concat(parts, axis) {
  const s0 = parts[0].shape;
  const outer = size(s0.slice(0, axis));
  const inner = size(s0.slice(axis + 1));
  const total = parts.reduce((a, p) => a + p.shape[axis], 0);
  const out = new Float64Array(outer * total * inner);
  let off = 0;
  for (const p of parts) {
    const d = p.shape[axis];
    for (let o = 0; o < outer; o++)
      for (let k = 0; k < d * inner; k++) out[(o * total + off) * inner + k] = p.data[o * d * inner + k];
    off += d;
  }
  return out;
}

const device = await T.getDevice();
const block = { num_classes: 19, ...withoutPretrained(loadConfig(join(root, config)).model) };
T.manualSeed(1);
const model = buildModel(device, block);
if (mode === 'train') model.train();
else model.eval();
let seed = 7;
const x = T.tensor(
  device,
  Float32Array.from({ length: size(shape) }, () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return (seed / 2 ** 32) * 2 - 1;
  }),
  shape,
);
const { ops } = T.noGrad(() => T.traceOps(() => model.forward(x)));
const host = new Map();
const data = async (t) => {
  if (!host.has(t)) host.set(t, Float64Array.from(await t.data()));
  return host.get(t);
};
const rows = [];
const skipped = new Map();
for (const [index, op] of ops.entries()) {
  const ins = await Promise.all(op.inputs.map(data));
  const s = op.inputs.map((t) => [...t.shape]);
  const a = op.attrs;
  let ref;
  switch (op.op) {
    case 'conv2d':
      ref = conv(ins[0], ins[1], ins[2], a.geometry);
      break;
    case 'batchNorm2d':
      ref = batchNorm(
        ins[0],
        s[0],
        ins[1],
        ins[2],
        a.eps,
        a.training,
        a.training ? null : await data(a.runningMean),
        a.training ? null : await data(a.runningVar),
      );
      if (a.activation === 'relu') ref = ref.map((v) => Math.max(v, 0));
      break;
    case 'relu':
      ref = ins[0].map((v) => Math.max(v, 0));
      break;
    case 'add':
      ref = ins[0].map((v, i) => v + ins[1][i]);
      break;
    case 'affine':
      ref = ins[0].map((v) => v * a.scalars[0] + a.scalars[1]);
      break;
    case 'resizeBilinear':
      ref = resize(ins[0], s[0], a.size, a.alignCorners);
      break;
    case 'reshape':
      ref = ins[0];
      break;
    case 'transpose':
      ref = transpose(ins[0], s[0], a.perm);
      break;
    case 'softmax':
      ref = softmax(ins[0], s[0], a.axis);
      break;
    case 'matmul':
      ref = matmul(ins[0], s[0], ins[1], s[1]);
      break;
    case 'concat':
      ref = concat(
        op.inputs.map((t, i) => ({ shape: t.shape, data: ins[i] })),
        a.axis,
      );
      break;
    default:
      // No float64 reference here (or random, as dropout): listed below.
      skipped.set(op.op, (skipped.get(op.op) ?? 0) + 1);
      continue;
  }
  const got = await data(op.output);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  rows.push({ index, op: op.op, shape: op.output.shape.join('x'), rel: worst / (scale || 1), attrs: a });
}
const byType = new Map();
for (const r of rows) byType.set(r.op, [...(byType.get(r.op) ?? []), r.rel]);
console.log(`${config} ${shape.join('x')} ${mode}: ${rows.length} ops audited`);
if (skipped.size)
  console.log(
    `  not audited (no reference here): ${[...skipped].map(([op, n]) => `${op} ×${n}`).join(', ')}`,
  );
for (const [op, rels] of byType) {
  const sorted = [...rels].sort((p, q) => p - q);
  console.log(
    `  ${op.padEnd(16)} n=${String(rels.length).padStart(3)} median ${sorted[Math.floor(sorted.length / 2)].toExponential(2)} max ${sorted.at(-1).toExponential(2)}`,
  );
}
console.log('worst ops (max |f32 − f64| / max |f64|):');
for (const r of [...rows].sort((p, q) => q.rel - p.rel).slice(0, 12)) {
  const g = r.attrs.geometry;
  const extra = g ? ` k${g.kh} s${g.sh} pad ${g.pt},${g.pl} in ${g.h}x${g.w}` : '';
  console.log(`  #${r.index} ${r.op} ${r.shape}${extra}: ${r.rel.toExponential(2)}`);
}
process.exit(0);
