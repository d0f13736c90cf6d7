import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { buildLrSchedule, type LrSchedule, learningRateAt } from '../src/schedules.js';

/** LR used by 1-based iteration i, printed as PaddleSeg's log line does. */
const logged = (s: LrSchedule, i: number) => learningRateAt(s, i - 1).toFixed(6);

function close(actual: number, expected: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= 1e-12 * Math.max(1, Math.abs(expected)),
    `${what}: ${actual} vs ${expected}`,
  );
}

describe('learningRateAt: spec c.2 worked values', () => {
  const iters = 160000;
  const cases: Array<[string, LrSchedule, string[]]> = [
    [
      'PP-LiteSeg',
      buildLrSchedule(
        {
          type: 'PolynomialDecay',
          learning_rate: 0.005,
          power: 0.9,
          end_lr: 0,
          warmup_iters: 1000,
          warmup_start_lr: 1.0e-5,
        },
        iters,
      ),
      ['0.000010', '0.000055', '0.004995', '0.005000', '0.002695'],
    ],
    [
      'OCRNet',
      buildLrSchedule({ type: 'PolynomialDecay', learning_rate: 0.01, power: 0.9, end_lr: 0 }, iters),
      ['0.010000', '0.009999', '0.009944', '0.009944', '0.005359'],
    ],
    [
      'SegFormer',
      buildLrSchedule({ type: 'PolynomialDecay', learning_rate: 6e-5, power: 1, end_lr: 0 }, iters),
      ['0.000060', '0.000060', '0.000060', '0.000060', '0.000030'],
    ],
  ];
  for (const [name, schedule, row] of cases) {
    it(name, () => {
      assert.deepEqual(
        [1, 10, 1000, 1001, 80000].map((i) => logged(schedule, i)),
        row,
      );
    });
  }
  it('PP-LiteSeg builds LinearWarmup over PolynomialDecay with decay_steps = iters − warmup', () => {
    const s = cases[0]?.[1];
    assert.equal(s?.type, 'LinearWarmup');
    if (s?.type !== 'LinearWarmup' || typeof s.learning_rate === 'number') throw new Error('bad build');
    assert.equal(s.warmup_steps, 1000);
    assert.equal(s.start_lr, 1e-5);
    assert.equal(s.end_lr, 0.005);
    assert.deepEqual(s.learning_rate, {
      type: 'PolynomialDecay',
      learning_rate: 0.005,
      power: 0.9,
      end_lr: 0,
      decay_steps: 159000,
    });
  });
  it('warmup keys are required together', () => {
    assert.throws(
      () => buildLrSchedule({ type: 'PolynomialDecay', learning_rate: 0.01, warmup_iters: 10 }, 100),
      /warmup_iters and warmup_start_lr/,
    );
  });
});

describe('learningRateAt: hand-computed values', () => {
  it('PolynomialDecay: power, default end_lr 1e-4, clamping and cycle', () => {
    const p: LrSchedule = { type: 'PolynomialDecay', learning_rate: 1, decay_steps: 4, end_lr: 0, power: 2 };
    close(learningRateAt(p, 0), 1, 'step 0');
    close(learningRateAt(p, 1), 0.5625, 'step 1');
    close(learningRateAt(p, 4), 0, 'step 4');
    close(learningRateAt(p, 10), 0, 'step 10 (clamped)');
    const d: LrSchedule = { type: 'PolynomialDecay', learning_rate: 1, decay_steps: 2 };
    close(learningRateAt(d, 1), 0.50005, 'default end_lr 1e-4, power 1');
    const c: LrSchedule = {
      type: 'PolynomialDecay',
      learning_rate: 1,
      decay_steps: 4,
      end_lr: 0,
      cycle: true,
    };
    close(learningRateAt(c, 0), 1, 'cycle step 0');
    close(learningRateAt(c, 4), 0, 'cycle step 4');
    close(learningRateAt(c, 5), 0.375, 'cycle step 5 (decay_steps 8)');
    close(learningRateAt(c, 8), 0, 'cycle step 8');
    close(learningRateAt(c, 9), 0.25, 'cycle step 9 (decay_steps 12)');
  });
  it('PiecewiseDecay', () => {
    const s: LrSchedule = { type: 'PiecewiseDecay', boundaries: [3, 6], values: [0.1, 0.05, 0.01] };
    assert.deepEqual(
      [0, 2, 3, 5, 6, 100].map((e) => learningRateAt(s, e)),
      [0.1, 0.1, 0.05, 0.05, 0.01, 0.01],
    );
    assert.throws(
      () => learningRateAt({ type: 'PiecewiseDecay', boundaries: [3], values: [1] }, 0),
      /PiecewiseDecay/,
    );
  });
  it('MultiStepDecay', () => {
    const s: LrSchedule = { type: 'MultiStepDecay', learning_rate: 0.5, milestones: [2, 5], gamma: 0.1 };
    const want = [0.5, 0.5, 0.05, 0.05, 0.05, 0.005, 0.005];
    for (const [e, w] of want.entries()) close(learningRateAt(s, e), w, `step ${e}`);
    assert.throws(() => learningRateAt({ ...s, gamma: 1 }, 0), /gamma/);
    assert.throws(() => learningRateAt({ ...s, milestones: [5, 2] }, 0), /milestones/);
  });
  it('StepDecay', () => {
    const s: LrSchedule = { type: 'StepDecay', learning_rate: 1, step_size: 3, gamma: 0.5 };
    assert.deepEqual(
      [0, 2, 3, 5, 6, 9].map((e) => learningRateAt(s, e)),
      [1, 1, 0.5, 0.5, 0.25, 0.125],
    );
    close(
      learningRateAt({ type: 'StepDecay', learning_rate: 1, step_size: 2 }, 4),
      0.01,
      'default gamma 0.1',
    );
  });
  it('ExponentialDecay', () => {
    const s: LrSchedule = { type: 'ExponentialDecay', learning_rate: 2, gamma: 0.5 };
    assert.deepEqual(
      [0, 1, 3].map((e) => learningRateAt(s, e)),
      [2, 1, 0.25],
    );
  });
  it('CosineAnnealingDecay (closed form)', () => {
    const s: LrSchedule = { type: 'CosineAnnealingDecay', learning_rate: 1, T_max: 4, eta_min: 0.2 };
    close(learningRateAt(s, 0), 1, 'step 0');
    close(learningRateAt(s, 1), 0.2 + 0.4 * (1 + Math.SQRT1_2), 'step 1');
    close(learningRateAt(s, 2), 0.6, 'step 2');
    close(learningRateAt(s, 4), 0.2, 'step 4');
    close(learningRateAt(s, 8), 1, 'step 8');
    close(learningRateAt({ type: 'CosineAnnealingDecay', learning_rate: 1, T_max: 2 }, 1), 0.5, 'eta_min 0');
  });
  it('LinearWarmup over a constant and over an inner schedule', () => {
    const k: LrSchedule = {
      type: 'LinearWarmup',
      learning_rate: 0.1,
      warmup_steps: 4,
      start_lr: 0,
      end_lr: 0.1,
    };
    close(learningRateAt(k, 0), 0, 'step 0');
    close(learningRateAt(k, 2), 0.05, 'step 2');
    close(learningRateAt(k, 4), 0.1, 'step 4');
    close(learningRateAt(k, 100), 0.1, 'step 100');
    const w: LrSchedule = {
      type: 'LinearWarmup',
      learning_rate: { type: 'StepDecay', learning_rate: 1, step_size: 3, gamma: 0.5 },
      warmup_steps: 2,
      start_lr: 0,
      end_lr: 1,
    };
    assert.deepEqual(
      [0, 1, 2, 4, 5].map((e) => learningRateAt(w, e)),
      [0, 0.5, 1, 1, 0.5],
    );
  });
  it('rejects a negative or fractional step', () => {
    assert.throws(() => learningRateAt(0.1, -1), /non-negative integer/);
    assert.throws(() => learningRateAt(0.1, 1.5), /non-negative integer/);
  });
});
