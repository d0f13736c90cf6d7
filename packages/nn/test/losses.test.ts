import assert from 'node:assert/strict';
import { backward, parameter, type Tensor, tensor, tidy } from '@segtrain/tensor';
import { assertClose, checkOp, rand, testDevice } from '@segtrain/tensor/testing';
import { describe, it } from 'vitest';
import {
  bceLoss,
  crossEntropyLoss,
  crossEntropyLossAsync,
  detailAggregateLoss,
  diceLoss,
  lossFromConfig,
  lovaszSoftmaxLoss,
  ohemCrossEntropyLoss,
} from '../src/index.js';

type Loss = (logits: Tensor, labels: Tensor) => Tensor | Promise<Tensor>;

interface LossCase {
  readonly shape: readonly number[];
  readonly logits: Float64Array;
  readonly labels: readonly number[];
  readonly gpu: Loss;
  readonly ref: (logits: Float64Array) => number;
  readonly grad?: boolean;
  readonly forwardTol?: number;
  readonly gradTol?: number;
}

/** The loss through checkOp: forward vs the float64 reference, the logits' gradient vs finite differences. */
function checkLoss(name: string, c: LossCase): Promise<void> {
  const [n = 1, , ...spatial] = c.shape;
  return checkOp({
    name,
    inputs: [
      { shape: c.shape, data: c.logits, grad: c.grad !== false },
      { shape: [n, ...spatial], data: c.labels, dtype: 'i32' },
    ],
    gpu: ([x, y]) => c.gpu(x as Tensor, y as Tensor),
    ref: ([x]) => Float64Array.of(c.ref(x as Float64Array)),
    forwardTol: c.forwardTol ?? 1e-5,
    gradTol: c.gradTol ?? 2e-3,
  });
}

// ---- float64 references ----

const SHAPE = [2, 3, 4, 5] as const;
const [N, C, H, W] = SHAPE;
const HW = H * W;
const P = N * HW;

function labelsWithIgnore(seed: number, ignoreEvery = 7): number[] {
  const r = rand(P, seed, 0, C);
  return Array.from(r, (v, i) => (i % ignoreEvery === 3 ? 255 : Math.floor(v)));
}

function at(n: number, k: number, i: number): number {
  return n * C * HW + k * HW + i;
}

/** Softmax probabilities [N, C, HW] in float64. */
function softmaxRef(x: Float64Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < HW; i++) {
      let m = -Infinity;
      for (let k = 0; k < C; k++) m = Math.max(m, x[at(n, k, i)] ?? 0);
      let s = 0;
      for (let k = 0; k < C; k++) s += Math.exp((x[at(n, k, i)] ?? 0) - m);
      for (let k = 0; k < C; k++) out[at(n, k, i)] = Math.exp((x[at(n, k, i)] ?? 0) - m) / s;
    }
  return out;
}

const valid = (l: number) => l !== 255 && l >= 0 && l < C;

/** Per-pixel w[label]·CE (0 at ignored pixels). */
function pixelCeRef(x: Float64Array, labels: readonly number[], weight?: readonly number[]): Float64Array {
  const prob = softmaxRef(x);
  const out = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    const l = labels[p] ?? 0;
    if (!valid(l)) continue;
    const n = Math.floor(p / HW);
    out[p] = (weight?.[l] ?? 1) * -Math.log(prob[at(n, l, p % HW)] ?? 0);
  }
  return out;
}

function ceRef(labels: readonly number[], weight?: readonly number[], avgNonIgnore = true) {
  return (x: Float64Array) => {
    const loss = pixelCeRef(x, labels, weight);
    let num = 0;
    let den = 0;
    for (let p = 0; p < P; p++) {
      num += loss[p] ?? 0;
      const l = labels[p] ?? 0;
      den += valid(l) ? (weight?.[l] ?? 1) : avgNonIgnore || weight ? 0 : 1;
    }
    return num / P / (den / P + 1e-8);
  };
}

function ceTopKRef(labels: readonly number[], topK: number, weight?: readonly number[]) {
  return (x: Float64Array) => {
    const loss = pixelCeRef(x, labels, weight);
    const coef = labels.map((l) => (valid(l) ? (weight?.[l] ?? 1) : (weight?.[0] ?? 1)));
    const k = Math.trunc(topK * P);
    const sorted = Array.from(loss).sort((a, b) => b - a);
    const t = sorted[k - 1] ?? 0;
    const greater = loss.filter((v) => v > t).length;
    const tied = loss.filter((v) => v === t).length;
    const share = (k - greater) / tied;
    let num = 0;
    let den = 0;
    for (let p = 0; p < P; p++) {
      const keep = (loss[p] ?? 0) > t ? 1 : loss[p] === t ? share : 0;
      num += keep * (loss[p] ?? 0);
      den += keep * (coef[p] ?? 0);
    }
    return num / k / (den / k + 1e-8);
  };
}

function trueProbRef(x: Float64Array, labels: readonly number[]): Float64Array {
  const prob = softmaxRef(x);
  return Float64Array.from(labels, (l, p) => (valid(l) ? (prob[at(Math.floor(p / HW), l, p % HW)] ?? 0) : 2));
}

function ohemRef(labels: readonly number[], thresh: number, minKept: number) {
  return (x: Float64Array) => {
    const p = trueProbRef(x, labels);
    const ce = pixelCeRef(x, labels);
    const nValid = labels.filter(valid).length;
    let kept = labels.map((l) => (valid(l) ? 1 : 0));
    if (minKept > 0 && minKept < nValid) {
      const sorted = Array.from(p).sort((a, b) => a - b);
      const kth = sorted[minKept - 1] ?? 0;
      const threshold = Math.max(kth, thresh);
      kept = Array.from(p, (v) => (v < threshold ? 1 : 0));
    }
    let num = 0;
    let cnt = 0;
    for (let i = 0; i < P; i++) {
      num += (ce[i] ?? 0) * (kept[i] ?? 0);
      cnt += kept[i] ?? 0;
    }
    return num / P / (cnt / P + 1e-5);
  };
}

function diceRef(labels: readonly number[], weight?: readonly number[], smooth = 1) {
  return (x: Float64Array) => {
    const prob = softmaxRef(x);
    let total = 0;
    for (let k = 0; k < C; k++) {
      let perClass = 0;
      for (let n = 0; n < N; n++) {
        let inter = 0;
        let card = 0;
        for (let i = 0; i < HW; i++) {
          const l = labels[n * HW + i] ?? 0;
          if (!valid(l)) continue;
          const pr = prob[at(n, k, i)] ?? 0;
          const t = l === k ? 1 : 0;
          inter += pr * t;
          card += pr + t;
        }
        perClass += 1 - (2 * inter + smooth) / (card + smooth + 1e-8);
      }
      total += (weight?.[k] ?? 1) * (perClass / N);
    }
    return total / C;
  };
}

function bceElem(x: number, y: number, w: number, pw: number): number {
  const lw = 1 + (pw - 1) * y;
  return w * ((1 - y) * x + lw * (Math.log(1 + Math.exp(-Math.abs(x))) + Math.max(-x, 0)));
}

/** BCELoss with C channels (one-hot) or one channel (label as target). */
function bceRef(
  labels: readonly number[],
  channels: number,
  weight: readonly number[] | 'dynamic' | null,
  posWeight: number | 'dynamic' | null,
) {
  return (x: Float64Array) => {
    const target = (n: number, k: number, i: number) => {
      const l = labels[n * HW + i] ?? 0;
      if (channels === 1) return l;
      return l === k ? 1 : 0;
    };
    let pos = 0;
    let neg = 0;
    for (let n = 0; n < N; n++)
      for (let k = 0; k < channels; k++)
        for (let i = 0; i < HW; i++) {
          const t = target(n, k, i);
          if (t === 1) pos++;
          if (t === 0) neg++;
        }
    const sumNum = pos + neg + 1e-10;
    const pw = posWeight === 'dynamic' ? (2 * neg) / sumNum : (posWeight ?? 1);
    let num = 0;
    let maskSum = 0;
    for (let n = 0; n < N; n++)
      for (let i = 0; i < HW; i++) {
        const l = labels[n * HW + i] ?? 0;
        if (l === 255) continue;
        maskSum += 1;
        for (let k = 0; k < channels; k++) {
          const t = target(n, k, i);
          const w =
            weight === 'dynamic'
              ? t === 1
                ? (2 * neg) / sumNum
                : (2 * pos) / sumNum
              : weight
                ? (weight[k] ?? 1)
                : 1;
          num += bceElem(x[n * channels * HW + k * HW + i] ?? 0, t, w, pw);
        }
      }
    return num / (N * channels * HW) / (maskSum / P + 1e-10);
  };
}

function lovaszGradRef(fg: number[]): number[] {
  const gts = fg.reduce((a, b) => a + b, 0);
  let cf = 0;
  let cb = 0;
  const j = fg.map((f) => {
    cf += f;
    cb += 1 - f;
    return 1 - (gts - cf) / (gts + cb);
  });
  for (let i = j.length - 1; i > 0; i--) j[i] = (j[i] ?? 0) - (j[i - 1] ?? 0);
  return j;
}

function lovaszRef(labels: readonly number[], classes: 'present' | 'all' | number[]) {
  return (x: Float64Array) => {
    const prob = softmaxRef(x);
    const pixels = labels.map((l, p) => ({ l, p })).filter(({ l }) => l !== 255);
    const toSum = classes === 'present' || classes === 'all' ? [0, 1, 2] : classes;
    const losses: number[] = [];
    const present: boolean[] = [];
    for (const k of toSum) {
      const items = pixels.map(({ l, p }) => {
        const fg = l === k ? 1 : 0;
        return { fg, e: Math.abs(fg - (prob[at(Math.floor(p / HW), k, p % HW)] ?? 0)) };
      });
      present.push(items.some((it) => it.fg === 1));
      items.sort((a, b) => b.e - a.e);
      const g = lovaszGradRef(items.map((it) => it.fg));
      losses.push(items.reduce((s, it, r) => s + it.e * (g[r] ?? 0), 0));
    }
    if (toSum.length === 1) return losses[0] ?? 0;
    const used = losses.filter((_, i) => classes !== 'present' || present[i]);
    return used.reduce((a, b) => a + b, 0) / used.length;
  };
}

/** STDC detail target and loss in float64 on a [N, 1, H, W] logit. */
function detailTargetRef(labels: readonly number[]): number[] {
  const lap = [-1, -1, -1, -1, 8, -1, -1, -1, -1];
  const level = (s: number) => {
    const ho = Math.floor((H - 1) / s) + 1;
    const wo = Math.floor((W - 1) / s) + 1;
    const out: number[] = [];
    for (let n = 0; n < N; n++)
      for (let i = 0; i < H; i++)
        for (let j = 0; j < W; j++) {
          const si = Math.floor((i * ho) / H);
          const sj = Math.floor((j * wo) / W);
          let v = 0;
          for (let a = 0; a < 3; a++)
            for (let b = 0; b < 3; b++) {
              const y = si * s + a - 1;
              const xx = sj * s + b - 1;
              if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
              v += (lap[a * 3 + b] ?? 0) * (labels[n * HW + y * W + xx] ?? 0);
            }
          out.push(Math.max(v, 0) > 0.1 ? 1 : 0);
        }
    return out;
  };
  const [t1, t2, t4] = [level(1), level(2), level(4)];
  return t1.map((v, i) => (0.6 * v + 0.3 * (t2[i] ?? 0) + 0.1 * (t4[i] ?? 0) > 0.1000001 ? 1 : 0));
}

/** Bilinear resize with align_corners=True of [N, 1, h, w] to [N, 1, H, W]. */
function resizeAlignCornersRef(x: Float64Array, h: number, w: number): Float64Array {
  const out = new Float64Array(N * HW);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < H; i++)
      for (let j = 0; j < W; j++) {
        const sy = H > 1 ? (i * (h - 1)) / (H - 1) : 0;
        const sx = W > 1 ? (j * (w - 1)) / (W - 1) : 0;
        const y0 = Math.floor(sy);
        const x0 = Math.floor(sx);
        const y1 = Math.min(y0 + 1, h - 1);
        const x1 = Math.min(x0 + 1, w - 1);
        const fy = sy - y0;
        const fx = sx - x0;
        const v = (yy: number, xx: number) => x[n * h * w + yy * w + xx] ?? 0;
        out[n * HW + i * W + j] =
          (1 - fy) * ((1 - fx) * v(y0, x0) + fx * v(y0, x1)) + fy * ((1 - fx) * v(y1, x0) + fx * v(y1, x1));
      }
  return out;
}

function detailRef(labels: readonly number[], from?: readonly [number, number]) {
  const t = detailTargetRef(labels);
  return (x0: Float64Array) => {
    const x = from ? resizeAlignCornersRef(x0, from[0], from[1]) : x0;
    let bce = 0;
    for (let i = 0; i < x.length; i++) bce += bceElem(x[i] ?? 0, t[i] ?? 0, 1, 1);
    bce /= x.length;
    let dice = 0;
    for (let n = 0; n < N; n++) {
      let inter = 0;
      let ps = 0;
      let ts = 0;
      for (let i = 0; i < HW; i++) {
        const p = 1 / (1 + Math.exp(-(x[n * HW + i] ?? 0)));
        inter += p * (t[n * HW + i] ?? 0);
        ps += p;
        ts += t[n * HW + i] ?? 0;
      }
      dice += 1 - (2 * inter + 1) / (ps + ts + 1);
    }
    return bce + dice / N;
  };
}

const logits = rand(N * C * HW, 11, -2, 2);

describe('CrossEntropyLoss', () => {
  const labels = labelsWithIgnore(5);
  it('defaults, with ignored pixels', () =>
    checkLoss('ce', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => crossEntropyLoss(x, y),
      ref: ceRef(labels),
    }));
  it('class weights', () =>
    checkLoss('ce-weight', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => crossEntropyLoss(x, y, { weight: [0.5, 2, 1.3] }),
      ref: ceRef(labels, [0.5, 2, 1.3]),
    }));
  it('avg_non_ignore false', () =>
    checkLoss('ce-avg-all', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => crossEntropyLoss(x, y, { avg_non_ignore: false }),
      ref: ceRef(labels, undefined, false),
    }));
  it('top_k_percent_pixels 0.3 with weights', () =>
    checkLoss('ce-topk', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => crossEntropyLossAsync(x, y, { top_k_percent_pixels: 0.3, weight: [0.5, 2, 1.3] }),
      ref: ceTopKRef(labels, 0.3, [0.5, 2, 1.3]),
    }));
  it('top_k_percent_pixels 0.95: the threshold is 0 and ignored pixels tie there', () =>
    checkLoss('ce-topk-ties', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => crossEntropyLossAsync(x, y, { top_k_percent_pixels: 0.95, weight: [0.5, 2, 1.3] }),
      ref: ceTopKRef(labels, 0.95, [0.5, 2, 1.3]),
    }));
});

/** Logits whose true-class softmax probability is exactly-ish `p` per pixel (other classes share 1 − p). */
function craftedLogits(probs: readonly number[], labels: readonly number[]): Float64Array {
  const x = new Float64Array(N * C * HW);
  for (let p = 0; p < P; p++) {
    const n = Math.floor(p / HW);
    const l = valid(labels[p] ?? 0) ? (labels[p] ?? 0) : 0;
    const q = probs[p] ?? 0.5;
    for (let k = 0; k < C; k++) x[at(n, k, p % HW)] = k === l ? Math.log(q) : Math.log((1 - q) / (C - 1));
  }
  return x;
}

describe('OhemCrossEntropyLoss', () => {
  const labels = labelsWithIgnore(9, 6);
  const nValid = labels.filter(valid).length;
  // Distinct, well separated probabilities 0.02 .. 0.98 in a scrambled order.
  const probs = Array.from({ length: P }, (_, i) => 0.02 + (((i * 17) % P) / P) * 0.96);
  const crafted = craftedLogits(probs, labels);
  it('k-th probability above thresh: threshold = k-th value, strict <', () => {
    const sorted = labels.map((l, i) => (valid(l) ? (probs[i] ?? 0) : 2)).sort((a, b) => a - b);
    assert.ok((sorted[29] ?? 0) > 0.5, 'crafted: the 30th probability is above thresh 0.5');
    return checkLoss('ohem-kth', {
      shape: SHAPE,
      logits: crafted,
      labels,
      gpu: (x, y) => ohemCrossEntropyLoss(x, y, { thresh: 0.5, min_kept: 30 }),
      ref: ohemRef(labels, 0.5, 30),
    });
  });
  it('k-th probability below thresh: threshold = thresh', () =>
    checkLoss('ohem-thresh', {
      shape: SHAPE,
      logits: crafted,
      labels,
      gpu: (x, y) => ohemCrossEntropyLoss(x, y, { thresh: 0.7, min_kept: 5 }),
      ref: ohemRef(labels, 0.7, 5),
    }));
  it('min_kept ≥ #valid keeps every valid pixel', async () => {
    await checkLoss('ohem-all', {
      shape: SHAPE,
      logits: crafted,
      labels,
      gpu: (x, y) => ohemCrossEntropyLoss(x, y, { thresh: 0.3, min_kept: nValid }),
      ref: ohemRef(labels, 0.3, nValid),
    });
    // and the same as min_kept > #valid
    const device = await testDevice();
    const x = tensor(device, crafted, SHAPE);
    const y = tensor(device, labels, [N, H, W], 'i32');
    const a = await (await ohemCrossEntropyLoss(x, y, { thresh: 0.3, min_kept: nValid })).item();
    const b = await (await ohemCrossEntropyLoss(x, y, { thresh: 0.3, min_kept: 10000 })).item();
    assert.equal(a, b);
    // min_kept = #valid − 1 does filter (threshold = max(0.3, second largest p)).
    const c = await (await ohemCrossEntropyLoss(x, y, { thresh: 0.3, min_kept: nValid - 1 })).item();
    assertClose([c], [ohemRef(labels, 0.3, nValid - 1)(crafted)], 1e-5, 'ohem #valid-1');
    assert.notEqual(c, a);
    tidy(() => undefined);
  });
  it('ties at the threshold are all excluded (forward)', () => {
    // Pixels 0..5 share one probability; with min_kept pointing inside the tie, none is kept.
    const tiedProbs = probs.map((v, i) => (i < 12 ? 0.9 : v));
    const tiedLabels = labels.map((l, i) => (i < 12 ? 1 : l));
    const x = craftedLogits(tiedProbs, tiedLabels);
    const sorted = tiedLabels.map((l, i) => (valid(l) ? (tiedProbs[i] ?? 0) : 2)).sort((a, b) => a - b);
    const kIdx = sorted.indexOf(0.9) + 2;
    return checkLoss('ohem-ties', {
      shape: SHAPE,
      logits: x,
      labels: tiedLabels,
      gpu: (a, b) => ohemCrossEntropyLoss(a, b, { thresh: 0.7, min_kept: kIdx + 1 }),
      ref: ohemRef(tiedLabels, 0.7, kIdx + 1),
      grad: false,
    });
  });
  it('random logits, default thresh', () => {
    const l2 = labelsWithIgnore(3);
    return checkLoss('ohem-random', {
      shape: SHAPE,
      logits,
      labels: l2,
      gpu: (x, y) => ohemCrossEntropyLoss(x, y, { min_kept: 12 }),
      ref: ohemRef(l2, 0.7, 12),
    });
  });
});

describe('DiceLoss', () => {
  const labels = labelsWithIgnore(21);
  it('defaults', () =>
    checkLoss('dice', { shape: SHAPE, logits, labels, gpu: (x, y) => diceLoss(x, y), ref: diceRef(labels) }));
  it('weights and smooth', () =>
    checkLoss('dice-w', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => diceLoss(x, y, { weight: [1, 0.2, 3], smooth: 0.5 }),
      ref: diceRef(labels, [1, 0.2, 3], 0.5),
    }));
});

describe('BCELoss', () => {
  const labels = labelsWithIgnore(31);
  it('one-hot over C channels, per-channel weight and pos_weight', () =>
    checkLoss('bce-onehot', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => bceLoss(x, y, { weight: [1, 2, 0.5], pos_weight: 3 }),
      ref: bceRef(labels, 3, [1, 2, 0.5], 3),
    }));
  it('single channel, dynamic weight and pos_weight', () => {
    const bin = labels.map((l) => (l === 255 ? 255 : l % 2));
    const x1 = rand(N * HW, 41, -2, 2);
    return checkLoss('bce-single', {
      shape: [N, 1, H, W],
      logits: x1,
      labels: bin,
      gpu: (x, y) => bceLoss(x, y, { weight: 'dynamic', pos_weight: 'dynamic' }),
      ref: bceRef(bin, 1, 'dynamic', 'dynamic'),
    });
  });
});

describe('LovaszSoftmaxLoss', () => {
  const labels = labelsWithIgnore(51).map((l) => (l === 2 ? 1 : l)); // class 2 absent
  it("classes 'present' (class 2 absent)", () =>
    checkLoss('lovasz-present', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => lovaszSoftmaxLoss(x, y),
      ref: lovaszRef(labels, 'present'),
    }));
  it("classes 'all'", () =>
    checkLoss('lovasz-all', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => lovaszSoftmaxLoss(x, y, { classes: 'all' }),
      ref: lovaszRef(labels, 'all'),
    }));
  it('a class list', () =>
    checkLoss('lovasz-list', {
      shape: SHAPE,
      logits,
      labels,
      gpu: (x, y) => lovaszSoftmaxLoss(x, y, { classes: [0, 2] }),
      ref: lovaszRef(labels, [0, 2]),
    }));
});

describe('DetailAggregateLoss', () => {
  const labels = Array.from(rand(P, 61, 0, 1), (v, i) => (i % 11 === 4 ? 255 : v < 0.6 ? 0 : 1));
  it('boundary target and BCE + dice on one channel', () =>
    checkLoss('detail', {
      shape: [N, 1, H, W],
      logits: rand(N * HW, 63, -2, 2),
      labels,
      gpu: (x, y) => detailAggregateLoss(x, y),
      ref: detailRef(labels),
    }));
  it('a smaller logit is resized (bilinear, align_corners) to the label size', async () => {
    const device = await testDevice();
    const small = rand(N * 2 * 3, 65, -2, 2);
    const x = parameter(device, small, [N, 1, 2, 3], 'detail-small');
    const y = tensor(device, labels, [N, H, W], 'i32');
    const out = detailAggregateLoss(x, y);
    const ref = detailRef(labels, [2, 3]);
    assertClose([await out.item()], [ref(small)], 1e-5, 'detail resized forward');
    backward(out);
    const g = await (x.grad as Tensor).data();
    const v = Float64Array.from(small);
    const num = v.map((s0, k) => {
      v[k] = s0 + 1e-6;
      const plus = ref(v);
      v[k] = s0 - 1e-6;
      const minus = ref(v);
      v[k] = s0;
      return (plus - minus) / 2e-6;
    });
    assertClose(g, num, 2e-3, 'detail resized gradient');
    for (const t of [x, y]) t.dispose();
    tidy(() => undefined);
  });
});

describe('edge cases', () => {
  it('all pixels ignored: Lovász gives 0, CE 0; a weight/class mismatch is reported', async () => {
    const device = await testDevice();
    const x = tensor(device, logits, SHAPE);
    const y = tensor(device, new Array<number>(P).fill(255), [N, H, W], 'i32');
    assert.equal(await (await lovaszSoftmaxLoss(x, y)).item(), 0);
    assert.equal(await crossEntropyLoss(x, y).item(), 0);
    await assert.rejects(
      crossEntropyLossAsync(x, y, { weight: [1, 2] }),
      /The number of weights = 2 must be the same as the number of classes = 3\./,
    );
    x.dispose();
    y.dispose();
    tidy(() => undefined);
  });
  it('no tensors leak from a tidy step over every loss', async () => {
    const { liveTensorCount, tidyAsync } = await import('@segtrain/tensor');
    const device = await testDevice();
    const labels = labelsWithIgnore(81);
    const x = parameter(device, logits, SHAPE, 'leak');
    const y = tensor(device, labels, [N, H, W], 'i32');
    const fn = lossFromConfig({
      types: [
        { type: 'CrossEntropyLoss', top_k_percent_pixels: 0.5, weight: [1, 2, 3] },
        { type: 'OhemCrossEntropyLoss', min_kept: 7 },
        { type: 'DiceLoss' },
        { type: 'LovaszSoftmaxLoss' },
        { type: 'BCELoss', weight: 'dynamic', pos_weight: 'dynamic' },
      ],
      coef: [1, 1, 1, 1, 1],
    });
    const step = () =>
      tidyAsync(async () => {
        const { total } = await fn([x, x, x, x, x], y);
        backward(total);
        return (await total.item()) as number;
      });
    const clearGrad = (t: Tensor) => {
      t.grad?.dispose();
      t.grad = null;
    };
    await step(); // warm-up: cached constants are created once
    clearGrad(x);
    const before = liveTensorCount();
    const value = await step();
    clearGrad(x);
    assert.ok(Number.isFinite(value));
    assert.equal(liveTensorCount(), before);
    x.dispose();
    y.dispose();
  });
});

describe('lossFromConfig / MixedLoss', () => {
  const labels = labelsWithIgnore(71);
  it('Σ coef_i·loss_i with a MixedLoss and OHEM, and its gradient', async () => {
    const logits2 = rand(N * C * HW, 73, -2, 2);
    const fn = lossFromConfig({
      types: [
        {
          type: 'MixedLoss',
          losses: [{ type: 'CrossEntropyLoss' }, { type: 'DiceLoss' }],
          coef: [0.8, 0.2],
        },
        { type: 'OhemCrossEntropyLoss', thresh: 0.7, min_kept: 10 },
      ],
      coef: [1, 0.4],
    });
    const ce = ceRef(labels);
    const dice = diceRef(labels);
    const ohem = ohemRef(labels, 0.7, 10);
    const ref = (a: Float64Array, b: Float64Array) => 0.8 * ce(a) + 0.2 * dice(a) + 0.4 * ohem(b);
    const device = await testDevice();
    const xa = parameter(device, logits, SHAPE, 'a');
    const xb = parameter(device, logits2, SHAPE, 'b');
    const y = tensor(device, labels, [N, H, W], 'i32');
    const { total, terms } = await fn([xa, xb], y);
    assert.equal(terms.length, 2);
    assertClose([await total.item()], [ref(logits, logits2)], 1e-5, 'total');
    assertClose([await (terms[1] as Tensor).item()], [0.4 * ohem(logits2)], 1e-5, 'ohem term');
    backward(total);
    const ga = await (xa.grad as Tensor).data();
    const num = new Float64Array(logits.length);
    const v = Float64Array.from(logits);
    for (let k = 0; k < v.length; k++) {
      const s = v[k] ?? 0;
      v[k] = s + 1e-6;
      const plus = ref(v, logits2);
      v[k] = s - 1e-6;
      const minus = ref(v, logits2);
      v[k] = s;
      num[k] = (plus - minus) / 2e-6;
    }
    assertClose(ga, num, 2e-3, 'mixed gradient');
    await assert.rejects(
      fn([xa], y),
      /The length of logits_list should equal to the types of loss config: 1 != 2\./,
    );
    for (const t of [xa, xb, y]) t.dispose();
    tidy(() => undefined);
  });
  it('rejects unknown types and keys', async () => {
    const { buildLoss } = await import('../src/index.js');
    assert.throws(() => buildLoss({ type: 'NoSuchLoss' }), /not supported/);
    assert.throws(() => buildLoss({ type: 'DiceLoss', foo: 1 }), /unexpected keyword argument 'foo'/);
  });
});
