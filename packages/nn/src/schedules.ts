/**
 * Paddle's learning-rate schedulers as pure functions of the 0-based step (`last_epoch`). The LR used
 * by 1-based training iteration `i` is `learningRateAt(schedule, i - 1)`: PaddleSeg reads the LR
 * before stepping the scheduler (spec c.2). Option names follow Paddle/PaddleSeg (snake_case), so a
 * resolved `lr_scheduler` block can be passed in directly (see `buildLrSchedule`).
 */

export interface PolynomialDecay {
  readonly type: 'PolynomialDecay';
  readonly learning_rate: number;
  readonly decay_steps: number;
  /** Paddle's default is 1e-4. */
  readonly end_lr?: number;
  /** Paddle's default is 1.0. */
  readonly power?: number;
  readonly cycle?: boolean;
}

export interface PiecewiseDecay {
  readonly type: 'PiecewiseDecay';
  readonly boundaries: readonly number[];
  readonly values: readonly number[];
}

export interface MultiStepDecay {
  readonly type: 'MultiStepDecay';
  readonly learning_rate: number;
  readonly milestones: readonly number[];
  /** Paddle's default is 0.1. */
  readonly gamma?: number;
}

export interface StepDecay {
  readonly type: 'StepDecay';
  readonly learning_rate: number;
  readonly step_size: number;
  /** Paddle's default is 0.1. */
  readonly gamma?: number;
}

export interface ExponentialDecay {
  readonly type: 'ExponentialDecay';
  readonly learning_rate: number;
  readonly gamma: number;
}

export interface CosineAnnealingDecay {
  readonly type: 'CosineAnnealingDecay';
  readonly learning_rate: number;
  readonly T_max: number;
  /** Paddle's default is 0. */
  readonly eta_min?: number;
}

export interface LinearWarmup {
  readonly type: 'LinearWarmup';
  /** A constant, or the schedule that runs (at step e − warmup_steps) once warm-up is over. */
  readonly learning_rate: number | LrSchedule;
  readonly warmup_steps: number;
  readonly start_lr: number;
  readonly end_lr: number;
}

export type LrSchedule =
  | PolynomialDecay
  | PiecewiseDecay
  | MultiStepDecay
  | StepDecay
  | ExponentialDecay
  | CosineAnnealingDecay
  | LinearWarmup;

function fail(type: string, message: string): never {
  throw new Error(`${type}: ${message}`);
}

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0)
    throw new Error(`learningRateAt: step must be a non-negative integer, got ${step}`);
}

function checkInt(type: string, name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min)
    fail(type, `${name} must be an integer >= ${min}, got ${value}`);
}

/** The learning rate at 0-based scheduler step `step` (Paddle's `last_epoch`), in float64 as Paddle computes it. */
export function learningRateAt(schedule: number | LrSchedule, step: number): number {
  checkStep(step);
  if (typeof schedule === 'number') return schedule;
  switch (schedule.type) {
    case 'PolynomialDecay': {
      const { learning_rate: base, decay_steps, end_lr = 1e-4, power = 1.0, cycle = false } = schedule;
      checkInt('PolynomialDecay', 'decay_steps', decay_steps, 1);
      let epoch = step;
      let steps = decay_steps;
      if (cycle) {
        const div = step === 0 ? 1 : Math.ceil(step / decay_steps);
        steps = decay_steps * div;
      } else {
        epoch = Math.min(step, decay_steps);
      }
      return (base - end_lr) * (1 - epoch / steps) ** power + end_lr;
    }
    case 'PiecewiseDecay': {
      const { boundaries, values } = schedule;
      if (values.length !== boundaries.length + 1)
        fail(
          'PiecewiseDecay',
          `needs len(values) = len(boundaries) + 1, got ${values.length} values for ${boundaries.length} boundaries`,
        );
      for (let i = 0; i < boundaries.length; i++)
        if (step < (boundaries[i] as number)) return values[i] as number;
      return values[values.length - 1] as number;
    }
    case 'MultiStepDecay': {
      const { learning_rate: base, milestones, gamma = 0.1 } = schedule;
      if (!(gamma < 1)) fail('MultiStepDecay', `gamma should be < 1.0, got ${gamma}`);
      for (let i = 1; i < milestones.length; i++)
        if (!((milestones[i - 1] as number) < (milestones[i] as number)))
          fail('MultiStepDecay', `milestones must be increasing, got [${milestones.join(', ')}]`);
      for (let i = 0; i < milestones.length; i++)
        if (step < (milestones[i] as number)) return base * gamma ** i;
      return base * gamma ** milestones.length;
    }
    case 'StepDecay': {
      const { learning_rate: base, step_size, gamma = 0.1 } = schedule;
      checkInt('StepDecay', 'step_size', step_size, 1);
      if (!(gamma < 1)) fail('StepDecay', `gamma should be < 1.0, got ${gamma}`);
      return base * gamma ** Math.floor(step / step_size);
    }
    case 'ExponentialDecay':
      return schedule.learning_rate * schedule.gamma ** step;
    case 'CosineAnnealingDecay': {
      const { learning_rate: base, T_max, eta_min = 0 } = schedule;
      checkInt('CosineAnnealingDecay', 'T_max', T_max, 1);
      // Paddle's closed form (_get_closed_form_lr).
      return eta_min + ((base - eta_min) * (1 + Math.cos((Math.PI * step) / T_max))) / 2;
    }
    case 'LinearWarmup': {
      const { learning_rate, warmup_steps, start_lr, end_lr } = schedule;
      checkInt('LinearWarmup', 'warmup_steps', warmup_steps, 1);
      if (step < warmup_steps) return ((end_lr - start_lr) * step) / warmup_steps + start_lr;
      return learningRateAt(learning_rate, step - warmup_steps);
    }
    default:
      throw new Error(`learningRateAt: unknown schedule type '${(schedule as { type: unknown }).type}'`);
  }
}

/** A resolved PaddleSeg `lr_scheduler` block: a schedule plus the optional warm-up keys. */
export type LrSchedulerConfig = (
  | LrSchedule
  | (Omit<PolynomialDecay, 'decay_steps'> & { readonly decay_steps?: number })
) & {
  readonly warmup_iters?: number;
  readonly warmup_start_lr?: number;
};

/**
 * PaddleSeg's scheduler build (spec a.6): `warmup_iters`/`warmup_start_lr` are required together;
 * PolynomialDecay's `decay_steps` defaults to max(iters − warmup_iters, 1); with warm-up the schedule
 * is wrapped in LinearWarmup(inner, warmup_iters, warmup_start_lr, end_lr = learning_rate).
 */
export function buildLrSchedule(config: LrSchedulerConfig, iters: number): LrSchedule {
  const { warmup_iters, warmup_start_lr, ...rest } = config;
  const hasIters = warmup_iters !== undefined && warmup_iters !== null;
  const hasStart = warmup_start_lr !== undefined && warmup_start_lr !== null;
  if (hasIters !== hasStart)
    throw new Error(
      'When using warmup, please set both warmup_iters and warmup_start_lr (got only one of them)',
    );
  const warmup = hasIters && (warmup_iters as number) > 0 ? (warmup_iters as number) : 0;
  let inner: LrSchedule;
  if (rest.type === 'PolynomialDecay') {
    inner = { ...rest, decay_steps: rest.decay_steps ?? Math.max(iters - warmup, 1) };
  } else {
    inner = rest as LrSchedule;
  }
  if (!hasIters) return inner;
  if (!('learning_rate' in inner) || typeof inner.learning_rate !== 'number')
    throw new Error(`warmup needs a ${inner.type} with a numeric learning_rate`);
  return {
    type: 'LinearWarmup',
    learning_rate: inner,
    warmup_steps: warmup_iters as number,
    start_lr: warmup_start_lr as number,
    end_lr: inner.learning_rate,
  };
}
