/**
 * PaddleSeg 2.8-style console formatting: the `[TRAIN]` line, the logger prefix, ETA strings, a TTY
 * progress bar and the log-window averager (spec c.2).
 */

const F64 = new DataView(new ArrayBuffer(8));

/**
 * Python's `format(x, '.{digits}f')`: rounds the exact binary value half-to-even, keeps the sign of
 * negative zero / values that round to zero, and spells non-finite values `nan`, `inf`, `-inf`.
 * JS `toFixed` differs on exact ties (0.125 → '0.13' vs Python '0.12'), so the digits are computed
 * exactly with BigInt from the IEEE-754 fields.
 */
export function pyFormatFixed(x: number, digits: number): string {
  if (!Number.isInteger(digits) || digits < 0 || digits > 100) throw new RangeError(`bad digits ${digits}`);
  if (Number.isNaN(x)) return 'nan';
  if (x === Number.POSITIVE_INFINITY) return 'inf';
  if (x === Number.NEGATIVE_INFINITY) return '-inf';
  F64.setFloat64(0, x);
  const bits = F64.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  // x = mantissa · 2^exp exactly (subnormals have no implicit leading 1).
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exp = (biased === 0 ? 1 : biased) - 1075;
  const scale = 10n ** BigInt(digits);
  let q: bigint;
  if (exp >= 0) {
    q = (mantissa << BigInt(exp)) * scale;
  } else {
    const num = mantissa * scale;
    const den = 1n << BigInt(-exp);
    q = num / den;
    const twiceRem = (num % den) * 2n;
    if (twiceRem > den || (twiceRem === den && q % 2n === 1n)) q += 1n;
  }
  let s = q.toString();
  if (digits > 0) {
    s = s.padStart(digits + 1, '0');
    s = `${s.slice(0, s.length - digits)}.${s.slice(s.length - digits)}`;
  }
  return negative ? `-${s}` : s;
}

/**
 * PaddleSeg's `calculate_eta`: truncates to whole seconds, clamps negatives to 0, `HH:MM:SS` with
 * hours allowed past 99 (no days field).
 */
export function formatEta(seconds: number): string {
  const total = Number.isFinite(seconds) && seconds > 0 ? Math.trunc(seconds) : 0;
  const h = Math.trunc(total / 3600);
  const m = Math.trunc((total % 3600) / 60);
  const s = total % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(h)}:${two(m)}:${two(s)}`;
}

export interface TrainLineFields {
  epoch: number;
  /** 1-based iteration just finished. */
  iter: number;
  iters: number;
  /** Window-mean loss. */
  loss: number;
  /** LR used by this iteration (read before the scheduler step). */
  lr: number;
  /** Window-mean seconds per iteration (data wait + compute). */
  batchCost: number;
  /** Window-mean data-wait seconds. */
  readerCost: number;
  /** Samples per second on this card over the window. */
  ips: number;
}

/** The PaddleSeg ≤ 2.8 `[TRAIN]` line; ETA = (iters − iter) × batchCost. */
export function formatTrainLine(f: TrainLineFields): string {
  const eta = formatEta(Math.max(0, f.iters - f.iter) * f.batchCost);
  return (
    `[TRAIN] epoch: ${f.epoch}, iter: ${f.iter}/${f.iters}, loss: ${pyFormatFixed(f.loss, 4)}, ` +
    `lr: ${pyFormatFixed(f.lr, 6)}, batch_cost: ${pyFormatFixed(f.batchCost, 4)}, ` +
    `reader_cost: ${pyFormatFixed(f.readerCost, 5)}, ips: ${pyFormatFixed(f.ips, 4)} samples/sec | ETA ${eta}`
  );
}

/** `YYYY-MM-DD HH:MM:SS [LEVEL]\t` in local time, as PaddleSeg ≤ 2.9.1's logger prints. */
export function logPrefix(date: Date = new Date(), level = 'INFO'): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const ymd = `${String(date.getFullYear()).padStart(4, '0')}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
  const hms = `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  return `${ymd} ${hms} [${level}]\t`;
}

/** Mean over the current log window; `mean()` is 0 for an empty window, like PaddleSeg's averagers. */
export class WindowAverage {
  private total = 0;
  private n = 0;

  add(value: number): void {
    this.total += value;
    this.n += 1;
  }

  get sum(): number {
    return this.total;
  }

  get count(): number {
    return this.n;
  }

  mean(): number {
    return this.n === 0 ? 0 : this.total / this.n;
  }

  reset(): void {
    this.total = 0;
    this.n = 0;
  }
}

/** The subset of a Node writable stream the progress bar needs. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): unknown;
}

export interface ProgressBarOptions {
  total: number;
  /** Defaults to process.stderr. */
  stream?: ProgressStream;
  /** Text before the counter, e.g. 'eval'. */
  label?: string;
  /** Bar width in characters (shrunk to fit `stream.columns`). */
  width?: number;
  /** Minimum milliseconds between redraws; the final update always draws. */
  minIntervalMs?: number;
  /** Clock in milliseconds, injectable for tests. */
  now?: () => number;
}

/** A stream that is not a terminal: a bar given it draws nothing (callers opt in with a TTY). */
export const NO_PROGRESS: ProgressStream = { isTTY: false, write: () => true };

/**
 * Single-line `\r` progress bar with count, percent and ETA. Draws nothing unless the stream is a TTY,
 * so redirected logs never fill with carriage-return noise.
 */
export class ProgressBar {
  readonly total: number;
  private readonly stream: ProgressStream;
  private readonly label: string;
  private readonly width: number;
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private readonly start: number;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private lastLength = 0;
  private drawn = false;
  private finished = false;

  constructor(opts: ProgressBarOptions) {
    if (!Number.isInteger(opts.total) || opts.total < 0) throw new RangeError(`bad total ${opts.total}`);
    this.total = opts.total;
    this.stream = opts.stream ?? process.stderr;
    this.label = opts.label ?? '';
    this.width = opts.width ?? 30;
    this.minIntervalMs = opts.minIntervalMs ?? 100;
    this.now = opts.now ?? Date.now;
    this.start = this.now();
  }

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  /** The line for `current` completed steps (exposed for tests and non-TTY callers). */
  render(current: number, suffix = ''): string {
    const cur = Math.max(0, Math.min(current, this.total));
    const frac = this.total === 0 ? 1 : cur / this.total;
    const elapsed = (this.now() - this.start) / 1000;
    const eta = cur > 0 ? formatEta((elapsed / cur) * (this.total - cur)) : '--:--:--';
    const head = `${this.label ? `${this.label} ` : ''}${cur}/${this.total} `;
    const tail = ` ${String(Math.floor(frac * 100)).padStart(3)}% ETA ${eta}${suffix ? ` ${suffix}` : ''}`;
    let width = this.width;
    // Keep the line shorter than the terminal so it never wraps (a wrapped line defeats `\r`).
    if (this.stream.columns !== undefined) {
      width = Math.min(width, this.stream.columns - 1 - head.length - tail.length - 2);
    }
    if (width < 5) return `${head.trimEnd()}${tail}`;
    const filled = Math.floor(frac * width);
    const arrow = filled < width && cur > 0 ? '>' : '';
    const bar = '='.repeat(filled) + arrow + ' '.repeat(width - filled - arrow.length);
    return `${head}[${bar}]${tail}`;
  }

  update(current: number, suffix = ''): void {
    if (!this.enabled || this.finished) return;
    const t = this.now();
    const final = current >= this.total;
    if (!final && t - this.lastDraw < this.minIntervalMs) return;
    this.lastDraw = t;
    const line = this.render(current, suffix);
    // Pad over the previous, possibly longer, line.
    const pad = ' '.repeat(Math.max(0, this.lastLength - line.length));
    this.stream.write(`\r${line}${pad}`);
    this.lastLength = line.length;
    this.drawn = true;
  }

  /** Erases the bar (a log line is about to be printed); the next update redraws it. */
  clear(): void {
    if (!this.enabled || !this.drawn || this.finished) return;
    this.stream.write(`\r${' '.repeat(this.lastLength)}\r`);
    this.lastLength = 0;
    this.lastDraw = Number.NEGATIVE_INFINITY;
  }

  /** Ends the bar's line so following log lines start clean. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.enabled && this.drawn) this.stream.write('\n');
  }
}
