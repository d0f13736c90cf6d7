import { z } from 'zod';
import { component, nonNegativeInt, positiveInt, unionOf } from './common.js';

const lr = z.number().min(0);
const base = { last_epoch: z.int().optional(), verbose: z.boolean().optional() };

/** Paddle's `paddle.optimizer.lr` classes the configs use, with Paddle's defaults. */
export const schedulerSchemas = {
  PolynomialDecay: component('PolynomialDecay', {
    ...base,
    learning_rate: lr,
    decay_steps: positiveInt,
    end_lr: lr.default(0.0001),
    power: z.number().default(1.0),
    cycle: z.boolean().default(false),
  }),
  PiecewiseDecay: component('PiecewiseDecay', {
    ...base,
    boundaries: z.array(nonNegativeInt).min(1),
    values: z.array(lr).min(2),
  }).superRefine((s, ctx) => {
    if (s.values.length !== s.boundaries.length + 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `needs one more value than boundaries (${s.boundaries.length + 1}), has ${s.values.length}`,
      });
    }
  }),
  MultiStepDecay: component('MultiStepDecay', {
    ...base,
    learning_rate: lr,
    milestones: z.array(nonNegativeInt).min(1),
    gamma: z.number().gt(0).lt(1).default(0.1),
  }),
  StepDecay: component('StepDecay', {
    ...base,
    learning_rate: lr,
    step_size: positiveInt,
    gamma: z.number().gt(0).lt(1).default(0.1),
  }),
  ExponentialDecay: component('ExponentialDecay', {
    ...base,
    learning_rate: lr,
    gamma: z.number().gt(0).max(1),
  }),
  CosineAnnealingDecay: component('CosineAnnealingDecay', {
    ...base,
    learning_rate: lr,
    T_max: positiveInt,
    eta_min: lr.default(0),
  }),
};
const innerScheduler = unionOf(schedulerSchemas);

export const linearWarmupSchema = component('LinearWarmup', {
  ...base,
  learning_rate: z.union([lr, innerScheduler]),
  warmup_steps: positiveInt,
  start_lr: lr,
  end_lr: lr,
});

export const lrSchedulerConfig = unionOf({ ...schedulerSchemas, LinearWarmup: linearWarmupSchema });
export type LrSchedulerConfig = z.output<typeof lrSchedulerConfig>;
export type InnerSchedulerConfig = z.output<typeof innerScheduler>;
export const SCHEDULER_TYPES = [...Object.keys(schedulerSchemas), 'LinearWarmup'];
