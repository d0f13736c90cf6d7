/**
 * Segmentation evaluation metrics with PaddleSeg's formulas (`paddleseg/utils/metrics.py`, spec c.3):
 * per-class intersect / pred / label pixel counts, then IoU, Acc, Kappa, Dice, precision, recall and
 * the `[EVAL]` log lines.
 */
import { pyFormatFixed } from './log-format.js';

export interface ConfusionCountsJSON {
  numClasses: number;
  ignoreIndex: number;
  intersect: number[];
  predArea: number[];
  labelArea: number[];
}

/**
 * Per-class pixel counts summed over images, as `calculate_area` produces per image.
 * Counts are kept in float64, exact up to 2^53 pixels.
 */
export class ConfusionCounts {
  readonly numClasses: number;
  readonly ignoreIndex: number;
  readonly intersect: Float64Array;
  readonly predArea: Float64Array;
  readonly labelArea: Float64Array;

  constructor(numClasses: number, ignoreIndex = 255) {
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`bad numClasses ${numClasses}`);
    if (!Number.isInteger(ignoreIndex)) throw new RangeError(`bad ignoreIndex ${ignoreIndex}`);
    this.numClasses = numClasses;
    this.ignoreIndex = ignoreIndex;
    this.intersect = new Float64Array(numClasses);
    this.predArea = new Float64Array(numClasses);
    this.labelArea = new Float64Array(numClasses);
  }

  /**
   * Adds one image (or batch) of predicted class ids and labels, same length and pixel order.
   * Pixels labelled ignoreIndex count nowhere. Other labels outside [0, numClasses) still count in
   * the pred area of the predicted class (PaddleSeg masks only ignore_index), but match no class.
   */
  add(pred: ArrayLike<number>, label: ArrayLike<number>): void {
    if (pred.length !== label.length) {
      throw new RangeError(`pred and label sizes differ: ${pred.length} vs ${label.length}`);
    }
    const n = this.numClasses;
    const ignore = this.ignoreIndex;
    const { intersect, predArea, labelArea } = this;
    for (let i = 0; i < pred.length; i++) {
      const l = label[i] as number;
      if (l === ignore) continue;
      const p = pred[i] as number;
      const pIn = Number.isInteger(p) && p >= 0 && p < n;
      if (pIn) predArea[p] = (predArea[p] as number) + 1;
      if (Number.isInteger(l) && l >= 0 && l < n) {
        labelArea[l] = (labelArea[l] as number) + 1;
        if (p === l) intersect[l] = (intersect[l] as number) + 1;
      }
    }
  }

  /** Adds another accumulator's counts (e.g. gathered from other ranks). */
  merge(other: ConfusionCounts): this {
    if (other.numClasses !== this.numClasses || other.ignoreIndex !== this.ignoreIndex) {
      throw new RangeError(
        `cannot merge counts for ${other.numClasses} classes / ignore ${other.ignoreIndex} into ` +
          `${this.numClasses} classes / ignore ${this.ignoreIndex}`,
      );
    }
    for (let c = 0; c < this.numClasses; c++) {
      this.intersect[c] = (this.intersect[c] as number) + (other.intersect[c] as number);
      this.predArea[c] = (this.predArea[c] as number) + (other.predArea[c] as number);
      this.labelArea[c] = (this.labelArea[c] as number) + (other.labelArea[c] as number);
    }
    return this;
  }

  toJSON(): ConfusionCountsJSON {
    return {
      numClasses: this.numClasses,
      ignoreIndex: this.ignoreIndex,
      intersect: Array.from(this.intersect),
      predArea: Array.from(this.predArea),
      labelArea: Array.from(this.labelArea),
    };
  }

  static fromJSON(json: ConfusionCountsJSON): ConfusionCounts {
    const c = new ConfusionCounts(json.numClasses, json.ignoreIndex);
    const fill = (dst: Float64Array, src: unknown, name: string) => {
      if (!Array.isArray(src) || src.length !== c.numClasses) {
        throw new RangeError(`${name}: expected ${c.numClasses} counts`);
      }
      src.forEach((v: unknown, i) => {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
          throw new RangeError(`${name}[${i}]: not a count: ${String(v)}`);
        }
        dst[i] = v;
      });
    };
    fill(c.intersect, json.intersect, 'intersect');
    fill(c.predArea, json.predArea, 'predArea');
    fill(c.labelArea, json.labelArea, 'labelArea');
    return c;
  }
}

export interface SegMetrics {
  miou: number;
  /** ΣI/ΣP; NaN when nothing was counted (numpy 0/0, as PaddleSeg prints). */
  acc: number;
  /** NaN when ΣL = 0 or pe = 1 (e.g. a single class everywhere), as in PaddleSeg. */
  kappa: number;
  mdice: number;
  classIou: number[];
  classPrecision: number[];
  classRecall: number[];
  classDice: number[];
  /** Classes with at least one (non-ignored) label pixel. */
  presentClasses: number[];
  /** Mean IoU over presentClasses; NaN when none is present. */
  miouPresent: number;
}

/**
 * numpy's float64 `add.reduce` (pairwise summation, 8-way unrolled, blocks of 128), so means and
 * sums round exactly as `np.mean` / `np.sum` do; only matters in the last ulp, i.e. on .4f ties.
 */
export function numpySum(a: ArrayLike<number>, start = 0, end = a.length): number {
  const n = end - start;
  if (n < 8) {
    let res = 0;
    for (let i = start; i < end; i++) res += a[i] as number;
    return res;
  }
  if (n <= 128) {
    const at = (k: number) => a[start + k] as number;
    let r0 = at(0);
    let r1 = at(1);
    let r2 = at(2);
    let r3 = at(3);
    let r4 = at(4);
    let r5 = at(5);
    let r6 = at(6);
    let r7 = at(7);
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      r0 += at(i);
      r1 += at(i + 1);
      r2 += at(i + 2);
      r3 += at(i + 3);
      r4 += at(i + 4);
      r5 += at(i + 5);
      r6 += at(i + 6);
      r7 += at(i + 7);
    }
    let res = r0 + r1 + (r2 + r3) + (r4 + r5 + (r6 + r7));
    for (; i < n; i++) res += at(i);
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return numpySum(a, start, start + n2) + numpySum(a, start + n2, end);
}

const numpyMean = (a: ArrayLike<number>): number => numpySum(a) / a.length;

/** PaddleSeg's mean_iou, class_measurement, kappa and dice from summed counts. */
export function computeMetrics(counts: ConfusionCounts): SegMetrics {
  const { intersect: I, predArea: P, labelArea: L, numClasses: n } = counts;
  const classIou: number[] = [];
  const classDice: number[] = [];
  const classPrecision: number[] = [];
  const classRecall: number[] = [];
  const presentClasses: number[] = [];
  const pl = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    const i = I[c] as number;
    const p = P[c] as number;
    const l = L[c] as number;
    const union = p + l - i;
    // An absent class (nothing predicted, nothing labelled) scores IoU 1 in PaddleSeg.
    classIou.push(union === 0 ? 1 : i / union);
    classDice.push(p + l === 0 ? 0 : (2 * i) / (p + l));
    classPrecision.push(p === 0 ? 0 : i / p);
    classRecall.push(l === 0 ? 0 : i / l);
    if (l > 0) presentClasses.push(c);
    pl[c] = p * l;
  }
  const sumI = numpySum(I);
  const sumP = numpySum(P);
  const total = numpySum(L);
  const po = sumI / total;
  const pe = numpySum(pl) / (total * total);
  return {
    miou: numpyMean(classIou),
    acc: sumI / sumP,
    kappa: (po - pe) / (1 - pe),
    mdice: numpyMean(classDice),
    classIou,
    classPrecision,
    classRecall,
    classDice,
    presentClasses,
    miouPresent:
      presentClasses.length === 0 ? Number.NaN : numpyMean(presentClasses.map((c) => classIou[c] as number)),
  };
}

/** numpy's `np.round(x, decimals)`: scale, round half to even (`rint`), unscale. */
export function numpyRound(x: number, decimals: number): number {
  const f = 10 ** decimals;
  const y = x * f;
  let r = Math.round(y);
  // Math.round sends .5 up; rint sends it to even.
  if (r - y === 0.5 && r % 2 !== 0) r -= 1;
  return r / f;
}

/** Shortest round-trip digits of |x| (finite, non-zero) and the decimal exponent of the first digit. */
function shortestDigits(x: number): { digits: string; exp: number } {
  const [mant = '', e = '0'] = Math.abs(x).toExponential().split('e');
  return { digits: mant.replace('.', ''), exp: Number(e) };
}

/** Shortest repr of x in positional notation, split into integer and fraction digits. */
function positionalParts(x: number): { int: string; frac: string } {
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return { int: `${sign}0`, frac: '' };
  const { digits, exp } = shortestDigits(x);
  if (exp >= 0) {
    const int = digits.length > exp + 1 ? digits.slice(0, exp + 1) : digits.padEnd(exp + 1, '0');
    return { int: sign + int, frac: digits.slice(exp + 1) };
  }
  return { int: `${sign}0`, frac: '0'.repeat(-exp - 1) + digits };
}

/** Shortest repr of x in scientific notation: mantissa integer digit, fraction, exponent. */
function scientificParts(x: number): { int: string; frac: string; exp: number } {
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return { int: `${sign}0`, frac: '', exp: 0 };
  const { digits, exp } = shortestDigits(x);
  return { int: sign + digits.slice(0, 1), frac: digits.slice(1), exp };
}

/**
 * `str(arr)` of a 1-D float64 numpy array with default print options (precision 8, floatmode
 * 'maxprec', linewidth 75, threshold 1000 / edgeitems 3): shortest digits, trailing zeros trimmed
 * but padded to a common width, scientific notation when max ≥ 1e8 or min|x| < 1e-4 or
 * max/min > 1e3 over the non-zero values, lines wrapped at 75 columns.
 */
export function numpyArrayStr(values: readonly number[]): string {
  const summarize = values.length > 1000;
  const shown = summarize ? [...values.slice(0, 3), ...values.slice(-3)] : values;
  const finite = shown.filter((v) => Number.isFinite(v));
  const absNonZero = finite.filter((v) => v !== 0).map(Math.abs);
  let expFormat = false;
  if (absNonZero.length > 0) {
    const max = Math.max(...absNonZero);
    const min = Math.min(...absNonZero);
    expFormat = max >= 1e8 || min < 0.0001 || max / min > 1000;
  }
  let fmt: (v: number) => string;
  let padLeft = 0;
  let padRight = 0;
  if (finite.length === 0) {
    fmt = () => '';
  } else if (expFormat) {
    const parts = finite.map(scientificParts);
    const prec = Math.max(...parts.map((p) => p.frac.length));
    const expDigits = Math.max(2, ...parts.map((p) => String(Math.abs(p.exp)).length));
    padLeft = Math.max(...parts.map((p) => p.int.length));
    padRight = expDigits + 2 + prec;
    fmt = (v) => {
      const p = scientificParts(v);
      const e = `${p.exp < 0 ? '-' : '+'}${String(Math.abs(p.exp)).padStart(expDigits, '0')}`;
      return `${p.int.padStart(padLeft)}.${p.frac.padEnd(prec, '0')}e${e}`;
    };
  } else {
    const parts = finite.map(positionalParts);
    padLeft = Math.max(...parts.map((p) => p.int.length));
    padRight = Math.max(...parts.map((p) => p.frac.length));
    fmt = (v) => {
      const p = positionalParts(v);
      return `${p.int.padStart(padLeft)}.${p.frac.padEnd(padRight)}`;
    };
  }
  if (finite.length !== shown.length) {
    const hasNegInf = shown.some((v) => v === Number.NEGATIVE_INFINITY);
    padLeft = Math.max(padLeft, 3 - (padRight + 1), 3 + (hasNegInf ? 1 : 0) - (padRight + 1));
  }
  const word = (v: number): string => {
    if (Number.isNaN(v)) return 'nan'.padStart(padLeft + padRight + 1);
    if (!Number.isFinite(v)) return (v < 0 ? '-inf' : 'inf').padStart(padLeft + padRight + 1);
    return fmt(v);
  };

  // numpy's _formatArray for one axis: hanging indent ' ', words wrap when the line would pass 74.
  const lineWidth = 75 - 1;
  const indent = ' ';
  let s = '';
  let line = indent;
  const extend = (w: string) => {
    if (line.length + w.length > lineWidth && line.length > indent.length) {
      s += `${line.trimEnd()}\n`;
      line = indent;
    }
    line += w;
  };
  const words = summarize
    ? [...values.slice(0, 3).map(word), '...', ...values.slice(-3).map(word)]
    : values.map(word);
  words.forEach((w, i) => {
    extend(w);
    if (i < words.length - 1) line += ' ';
  });
  s += line;
  return `[${s.slice(indent.length)}]`;
}

/**
 * PaddleSeg's evaluation log messages (one string per logger call; the class arrays follow their
 * heading after a newline inside the same message), plus the mIoU over present classes.
 */
export function formatEvalLines(m: SegMetrics, nImages: number): string[] {
  const arr = (xs: number[]) => numpyArrayStr(xs.map((x) => numpyRound(x, 4)));
  return [
    `[EVAL] #Images: ${nImages} mIoU: ${pyFormatFixed(m.miou, 4)} Acc: ${pyFormatFixed(m.acc, 4)} ` +
      `Kappa: ${pyFormatFixed(m.kappa, 4)} Dice: ${pyFormatFixed(m.mdice, 4)}`,
    `[EVAL] Class IoU: \n${arr(m.classIou)}`,
    `[EVAL] Class Precision: \n${arr(m.classPrecision)}`,
    `[EVAL] Class Recall: \n${arr(m.classRecall)}`,
    `[EVAL] mIoU over ${m.presentClasses.length} classes present: ${pyFormatFixed(m.miouPresent, 4)}`,
  ];
}
