import { z } from 'zod';
import { component, positiveInt, probability, sizeOrPair, sizePair, unionOf } from './common.js';

const imPad = z.union([z.number(), z.array(z.number())]).default(127.5);
const labelPad = z.int().default(255);
const interp = z.enum(['NEAREST', 'LINEAR', 'CUBIC', 'AREA', 'LANCZOS4', 'RANDOM']).default('LINEAR');

export const transformSchemas = {
  ResizeStepScaling: component('ResizeStepScaling', {
    min_scale_factor: z.number().positive().default(0.75),
    max_scale_factor: z.number().positive().default(1.25),
    scale_step_size: z.number().min(0).default(0.25),
  }).refine((t) => t.min_scale_factor <= t.max_scale_factor, {
    message: 'min_scale_factor must not be greater than max_scale_factor',
    path: ['min_scale_factor'],
  }),
  RandomPaddingCrop: component('RandomPaddingCrop', {
    crop_size: sizePair.default([512, 512]),
    im_padding_value: imPad,
    label_padding_value: labelPad,
    category_max_ratio: z.number().gt(0).max(1).default(1.0),
    ignore_index: z.int().default(255),
    loop_times: positiveInt.default(10),
  }),
  RandomCenterCrop: component('RandomCenterCrop', {
    retain_ratio: z.tuple([probability, probability]).default([0.5, 0.5]),
  }),
  RandomHorizontalFlip: component('RandomHorizontalFlip', { prob: probability.default(0.5) }),
  RandomVerticalFlip: component('RandomVerticalFlip', { prob: probability.default(0.1) }),
  RandomDistort: component('RandomDistort', {
    brightness_range: z.number().min(0).default(0.5),
    brightness_prob: probability.default(0.5),
    contrast_range: z.number().min(0).default(0.5),
    contrast_prob: probability.default(0.5),
    saturation_range: z.number().min(0).default(0.5),
    saturation_prob: probability.default(0.5),
    hue_range: z.number().min(0).default(18),
    hue_prob: probability.default(0.5),
    sharpness_range: z.number().min(0).default(0.5),
    sharpness_prob: probability.default(0),
  }),
  RandomRotation: component('RandomRotation', {
    max_rotation: z.number().min(0).default(15),
    im_padding_value: imPad,
    label_padding_value: labelPad,
  }),
  RandomBlur: component('RandomBlur', {
    prob: probability.default(0.1),
    blur_type: z.enum(['gaussian', 'median', 'blur', 'random']).default('gaussian'),
  }),
  RandomNoise: component('RandomNoise', {
    prob: probability.default(0.5),
    max_sigma: z.number().min(0).default(10.0),
  }),
  RandomScaleAspect: component('RandomScaleAspect', {
    min_scale: z.number().min(0).max(1).default(0.5),
    aspect_ratio: z.number().min(0).default(0.33),
  }),
  Normalize: component('Normalize', {
    mean: z.array(z.number()).min(1).default([0.5]),
    std: z.array(z.number().positive()).min(1).default([0.5]),
  }),
  Resize: component('Resize', {
    target_size: sizeOrPair.default([512, 512]),
    keep_ratio: z.boolean().default(false),
    size_divisor: positiveInt.nullable().default(null),
    interp,
  }),
  ResizeByShort: component('ResizeByShort', { short_size: positiveInt }),
  ResizeByLong: component('ResizeByLong', { long_size: positiveInt }),
  LimitLong: component('LimitLong', {
    max_long: positiveInt.nullable().default(null),
    min_long: positiveInt.nullable().default(null),
  }),
  ResizeRangeScaling: component('ResizeRangeScaling', {
    min_value: positiveInt.default(400),
    max_value: positiveInt.default(600),
  }),
  Padding: component('Padding', {
    target_size: sizeOrPair,
    im_padding_value: imPad,
    label_padding_value: labelPad,
  }),
  PaddingByAspectRatio: component('PaddingByAspectRatio', {
    aspect_ratio: z.number().positive().default(1),
    im_padding_value: imPad,
    label_padding_value: labelPad,
  }),
  ScalePadding: component('ScalePadding', {
    target_size: sizeOrPair.default([512, 512]),
    im_padding_value: imPad,
    label_padding_value: labelPad,
  }),
};

export const transformConfig = unionOf(transformSchemas);
export type TransformConfig = z.output<(typeof transformSchemas)[keyof typeof transformSchemas]>;
