import { z } from 'zod';
import { sizePair } from './common.js';

/** Keyword arguments of PaddleSeg's evaluate(); unknown keys are an error there too (TypeError). */
export const testConfig = z
  .strictObject({
    aug_eval: z.boolean().default(false),
    scales: z.union([z.number().positive(), z.array(z.number().positive()).min(1)]).default(1.0),
    flip_horizontal: z.boolean().default(false),
    flip_vertical: z.boolean().default(false),
    is_slide: z.boolean().default(false),
    crop_size: sizePair.nullable().default(null),
    stride: sizePair.nullable().default(null),
    auc_roc: z.boolean().default(false),
    use_multilabel: z.boolean().default(false),
  })
  .superRefine((t, ctx) => {
    if (!t.is_slide) return;
    for (const key of ['crop_size', 'stride'] as const) {
      if (!t[key])
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: 'is_slide needs crop_size and stride ([w, h])',
        });
    }
  });
export type TestConfig = z.output<typeof testConfig>;
