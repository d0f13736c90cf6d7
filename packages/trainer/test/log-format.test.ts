import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import {
  formatEta,
  formatTrainLine,
  logPrefix,
  ProgressBar,
  type ProgressStream,
  pyFormatFixed,
  WindowAverage,
} from '../src/log-format.js';

describe('pyFormatFixed (Python format .Nf)', () => {
  it('matches Python on exact binary ties (half to even), where toFixed rounds up', () => {
    const cases: Array<[number, number, string]> = [
      [0.125, 2, '0.12'],
      [0.375, 2, '0.38'],
      [2.5, 0, '2'],
      [3.5, 0, '4'],
      [0.03125, 4, '0.0312'],
      [0.09375, 4, '0.0938'],
    ];
    for (const [x, d, want] of cases) assert.equal(pyFormatFixed(x, d), want, `${x} .${d}f`);
    assert.equal((0.03125).toFixed(4), '0.0313'); // the JS behaviour being corrected
  });

  it('matches Python on ordinary values, signs, huge and non-finite numbers', () => {
    const cases: Array<[number, number, string]> = [
      [2.675, 2, '2.67'], // binary value is below the tie
      [0.00005491, 6, '0.000055'],
      [0.234475, 4, '0.2345'],
      [17.0575, 4, '17.0575'],
      [123456789.98765, 3, '123456789.988'],
      [-0, 4, '-0.0000'],
      [-0.00001, 4, '-0.0000'],
      [1.5e-323, 4, '0.0000'],
      [1e21, 2, '1000000000000000000000.00'],
      [Number.NaN, 4, 'nan'],
      [Number.POSITIVE_INFINITY, 4, 'inf'],
      [Number.NEGATIVE_INFINITY, 4, '-inf'],
    ];
    for (const [x, d, want] of cases) assert.equal(pyFormatFixed(x, d), want, `${x} .${d}f`);
  });

  it('agrees with toFixed away from ties on many random values', () => {
    let seed = 7;
    for (let k = 0; k < 2000; k++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      const x = (seed / 2 ** 32) * 10 ** ((k % 9) - 4);
      const d = k % 7;
      assert.equal(pyFormatFixed(x, d), x.toFixed(d), `${x} .${d}f`);
    }
  });
});

describe('formatEta', () => {
  it('truncates to seconds, pads to two digits, lets hours pass 99, clamps negatives', () => {
    assert.equal(formatEta(0), '00:00:00');
    assert.equal(formatEta(59.999), '00:00:59');
    assert.equal(formatEta(3661), '01:01:01');
    assert.equal(formatEta(37513.655), '10:25:13');
    assert.equal(formatEta(100 * 3600 + 5), '100:00:05');
    assert.equal(formatEta(-3), '00:00:00');
    assert.equal(formatEta(Number.NaN), '00:00:00');
  });
});

/** Paddle's LinearWarmup + PolynomialDecay for 1-based iteration i (spec c.2 formulas). */
function paddleLr(i: number, base: number, power: number, warmup = 0, start = 0, iters = 160000): number {
  const e = i - 1;
  if (e < warmup) return start + ((base - start) * e) / warmup;
  const d = iters - warmup;
  const s = Math.min(e - warmup, d);
  return base * (1 - s / d) ** power;
}

describe('formatTrainLine', () => {
  it('reproduces the spec’s 2.8 log excerpt', () => {
    assert.equal(
      formatTrainLine({
        epoch: 1,
        iter: 10,
        iters: 160000,
        loss: 2.9012,
        lr: paddleLr(10, 0.005, 0.9, 1000, 1e-5),
        batchCost: 0.234475,
        readerCost: 0.01234,
        ips: 17.0575,
      }),
      '[TRAIN] epoch: 1, iter: 10/160000, loss: 2.9012, lr: 0.000055, batch_cost: 0.2345, ' +
        'reader_cost: 0.01234, ips: 17.0575 samples/sec | ETA 10:25:13',
    );
  });

  it('prints the spec’s worked LR values with .6f', () => {
    const at = [1, 10, 1000, 1001, 80000];
    const rows: Array<[(i: number) => number, string[]]> = [
      [
        (i) => paddleLr(i, 0.005, 0.9, 1000, 1e-5),
        ['0.000010', '0.000055', '0.004995', '0.005000', '0.002695'],
      ],
      [(i) => paddleLr(i, 0.01, 0.9), ['0.010000', '0.009999', '0.009944', '0.009944', '0.005359']],
      [(i) => paddleLr(i, 6e-5, 1), ['0.000060', '0.000060', '0.000060', '0.000060', '0.000030']],
    ];
    for (const [lr, want] of rows) {
      const got = at.map((i) => {
        const line = formatTrainLine({
          epoch: 1,
          iter: i,
          iters: 160000,
          loss: 1,
          lr: lr(i),
          batchCost: 0,
          readerCost: 0,
          ips: 0,
        });
        return /lr: ([0-9.]+),/.exec(line)?.[1];
      });
      assert.deepEqual(got, want);
    }
  });

  it('ETA is zero on the last iteration and uses the unrounded batch cost', () => {
    const base = { epoch: 3, iters: 1000, loss: 0.5, lr: 0.01, readerCost: 0.000004, ips: 8 };
    assert.match(
      formatTrainLine({ ...base, iter: 1000, batchCost: 0.5 }),
      /reader_cost: 0\.00000, .*\| ETA 00:00:00$/,
    );
    // 100 × 0.99996 = 99.996 s → 00:01:39, although batch_cost prints as 1.0000.
    assert.match(
      formatTrainLine({ ...base, iter: 900, batchCost: 0.99996 }),
      /batch_cost: 1\.0000, .* \| ETA 00:01:39$/,
    );
  });
});

describe('logPrefix', () => {
  it('formats local time as YYYY-MM-DD HH:MM:SS [INFO]<TAB>', () => {
    assert.equal(logPrefix(new Date(2024, 0, 2, 3, 4, 5)), '2024-01-02 03:04:05 [INFO]\t');
    assert.equal(logPrefix(new Date(2024, 11, 31, 23, 59, 59), 'WARNING'), '2024-12-31 23:59:59 [WARNING]\t');
    assert.match(logPrefix(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[INFO\]\t$/);
  });
});

describe('WindowAverage', () => {
  it('averages the window and resets', () => {
    const w = new WindowAverage();
    assert.equal(w.mean(), 0);
    w.add(1);
    w.add(2);
    w.add(4.5);
    assert.equal(w.mean(), 2.5);
    assert.equal(w.count, 3);
    assert.equal(w.sum, 7.5);
    w.reset();
    assert.equal(w.count, 0);
    assert.equal(w.mean(), 0);
  });
});

class FakeStream implements ProgressStream {
  writes: string[] = [];
  constructor(
    public isTTY: boolean,
    public columns?: number,
  ) {}
  write(chunk: string): boolean {
    this.writes.push(chunk);
    return true;
  }
}

describe('ProgressBar', () => {
  it('draws \\r lines with count, percent and ETA on a TTY, then ends the line', () => {
    let t = 0;
    const stream = new FakeStream(true);
    const bar = new ProgressBar({
      total: 4,
      stream,
      width: 8,
      label: 'eval',
      minIntervalMs: 0,
      now: () => t,
    });
    t = 2000;
    bar.update(1);
    assert.equal(stream.writes.at(-1), '\reval 1/4 [==>     ]  25% ETA 00:00:06');
    t = 4000;
    bar.update(2, 'batch_cost: 2.0000');
    assert.equal(stream.writes.at(-1), '\reval 2/4 [====>   ]  50% ETA 00:00:04 batch_cost: 2.0000');
    t = 8000;
    bar.update(4);
    // Shorter than the previous line, so it is padded to overwrite the old tail.
    assert.equal(stream.writes.at(-1), `\reval 4/4 [========] 100% ETA 00:00:00${' '.repeat(19)}`);
    bar.finish();
    bar.finish();
    assert.equal(stream.writes.at(-1), '\n');
    assert.equal(stream.writes.length, 4);
    bar.update(4);
    assert.equal(stream.writes.length, 4);
  });

  it('writes nothing to a non-TTY stream', () => {
    const stream = new FakeStream(false);
    const bar = new ProgressBar({ total: 3, stream, minIntervalMs: 0 });
    bar.update(1);
    bar.update(3);
    bar.finish();
    assert.deepEqual(stream.writes, []);
    assert.equal(bar.enabled, false);
  });

  it('throttles redraws but always draws the final step', () => {
    let t = 0;
    const stream = new FakeStream(true);
    const bar = new ProgressBar({ total: 100, stream, minIntervalMs: 100, now: () => t });
    for (let i = 1; i <= 100; i++) {
      t += 10;
      bar.update(i);
    }
    // Draws at t = 10, 110, …, 910, then the final step at t = 1000 despite the interval.
    assert.equal(stream.writes.length, 11);
    assert.match(stream.writes.at(-1) ?? '', /100\/100 .* 100% ETA 00:00:00/);
  });

  it('shrinks the bar to fit the terminal width', () => {
    const stream = new FakeStream(true, 40);
    const bar = new ProgressBar({ total: 10, stream, width: 50, minIntervalMs: 0, now: () => 0 });
    bar.update(5);
    const line = (stream.writes[0] ?? '').slice(1);
    assert.ok(line.length < 40, line);
    assert.match(line, /^5\/10 \[=+> *\] {2}50% ETA 00:00:00$/);
    const narrow = new ProgressBar({ total: 10, stream: new FakeStream(true, 20), now: () => 0 });
    assert.equal(narrow.render(5), '5/10  50% ETA 00:00:00');
  });
});
