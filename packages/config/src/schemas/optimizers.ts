import { z } from 'zod';
import { component, unionOf } from './common.js';

const gradClip = z.discriminatedUnion('name', [
  z.strictObject({
    name: z.literal('ClipGradByValue'),
    max: z.number(),
    min: z.number().nullable().default(null),
  }),
  z.strictObject({ name: z.literal('ClipGradByNorm'), clip_norm: z.number().positive() }),
  z.strictObject({
    name: z.literal('ClipGradByGlobalNorm'),
    clip_norm: z.number().positive(),
    group_name: z.string().default('default_group'),
  }),
]);

/** A parameter joins the first group whose `name` is a substring of its structured name. */
const customGroup = z.strictObject({
  name: z.string().min(1),
  lr_mult: z.number().min(0).default(1),
  weight_decay_mult: z.number().min(0).default(1),
});

const common = {
  weight_decay: z.number().min(0).nullable().default(null),
  grad_clip_cfg: gradClip.nullable().default(null),
  custom_cfg: z.array(customGroup).nullable().default(null),
};
const adamFields = {
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  epsilon: z.number().positive().default(1e-8),
  lazy_mode: z.boolean().default(false),
};

export const optimizerSchemas = {
  SGD: component('SGD', common),
  Momentum: component('Momentum', {
    ...common,
    momentum: z.number().min(0).default(0.9),
    use_nesterov: z.boolean().default(false),
  }),
  Adam: component('Adam', { ...common, ...adamFields }),
  AdamW: component('AdamW', { ...common, ...adamFields, weight_decay: z.number().min(0).default(0.01) }),
};
export const optimizerConfig = unionOf(optimizerSchemas);
export type OptimizerConfig = z.output<typeof optimizerConfig>;
