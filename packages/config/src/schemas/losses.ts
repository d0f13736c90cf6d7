import { z } from 'zod';
import { component, positiveInt, unionOf } from './common.js';

const ignore = z.int().optional();
const classWeights = z.array(z.number().min(0)).nullable().default(null);

const simpleLossSchemas = {
  CrossEntropyLoss: component('CrossEntropyLoss', {
    weight: z
      .union([z.array(z.number().min(0)), z.literal('dynamic')])
      .nullable()
      .default(null),
    ignore_index: ignore,
    top_k_percent_pixels: z.number().gt(0).max(1).default(1.0),
    data_format: z.enum(['NCHW', 'NHWC']).default('NCHW'),
    avg_non_ignore: z.boolean().default(true),
  }),
  OhemCrossEntropyLoss: component('OhemCrossEntropyLoss', {
    thresh: z.number().gt(0).max(1).default(0.7),
    min_kept: positiveInt.default(10000),
    ignore_index: ignore,
  }),
  DetailAggregateLoss: component('DetailAggregateLoss', { ignore_index: ignore }),
  DiceLoss: component('DiceLoss', {
    weight: classWeights,
    ignore_index: ignore,
    smooth: z.number().min(0).default(1.0),
  }),
  BCELoss: component('BCELoss', {
    weight: z
      .union([z.array(z.number().min(0)), z.literal('dynamic')])
      .nullable()
      .default(null),
    pos_weight: z
      .union([z.number(), z.literal('dynamic')])
      .nullable()
      .default(null),
    ignore_index: ignore,
    edge_label: z.boolean().default(false),
  }),
  LovaszSoftmaxLoss: component('LovaszSoftmaxLoss', {
    ignore_index: ignore,
    classes: z.union([z.literal('present'), z.literal('all'), z.array(z.int().min(0))]).default('present'),
  }),
};
const simpleLossConfig = unionOf(simpleLossSchemas);

export const lossSchemas = {
  ...simpleLossSchemas,
  MixedLoss: component('MixedLoss', {
    losses: z.array(simpleLossConfig).min(1),
    coef: z.array(z.number()).min(1),
  }).superRefine((m, ctx) => {
    if (m.losses.length !== m.coef.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['coef'],
        message: `MixedLoss needs one coef per loss: ${m.losses.length} losses, ${m.coef.length} coefs`,
      });
    }
  }),
};
export const lossConfig = unionOf(lossSchemas);
export type LossConfig = z.output<typeof lossConfig>;
export type SimpleLossConfig = z.output<typeof simpleLossConfig>;

/** The `loss` block: the i-th loss applies to the i-th model output, weighted by coef[i]. */
export const lossListConfig = z.strictObject({
  types: z.array(lossConfig).min(1),
  coef: z.array(z.number()).min(1),
});
export type LossListConfig = z.output<typeof lossListConfig>;
