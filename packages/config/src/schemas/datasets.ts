import { z } from 'zod';
import { component, ignoreIndex, positiveInt, unionOf } from './common.js';
import { transformConfig } from './transforms.js';

const transforms = z.array(transformConfig).default([]);
const mode = z.enum(['train', 'val', 'test']).default('train');
// Popped by PaddleSeg's train.py from train_dataset before building (develop).
const shuffle = z.boolean().optional();

export const datasetSchemas = {
  Cityscapes: component('Cityscapes', {
    dataset_root: z.string().min(1),
    transforms,
    mode,
    edge: z.boolean().default(false),
    shuffle,
  }),
  Dataset: component('Dataset', {
    dataset_root: z.string().min(1),
    transforms,
    num_classes: positiveInt,
    mode,
    img_channels: z.union([z.literal(1), z.literal(3)]).default(3),
    train_path: z.string().nullable().default(null),
    val_path: z.string().nullable().default(null),
    test_path: z.string().nullable().default(null),
    separator: z.string().min(1).default(' '),
    ignore_index: ignoreIndex.default(255),
    edge: z.boolean().default(false),
    shuffle,
  }).superRefine((d, ctx) => {
    const listKey = `${d.mode}_path` as const;
    if (!d[listKey]) {
      ctx.addIssue({
        code: 'custom',
        path: [listKey],
        message: `a Dataset in mode '${d.mode}' needs ${listKey} (a list file of "image label" lines)`,
      });
    }
  }),
  PascalVOC: component('PascalVOC', {
    dataset_root: z.string().min(1),
    transforms,
    mode: z.enum(['train', 'trainval', 'trainaug', 'val']).default('train'),
    edge: z.boolean().default(false),
    shuffle,
  }),
  ADE20K: component('ADE20K', {
    dataset_root: z.string().min(1),
    transforms,
    mode: z.enum(['train', 'val']).default('train'),
    edge: z.boolean().default(false),
    shuffle,
  }),
};

/** Class constants PaddleSeg's dataset classes define (NUM_CLASSES, IMG_CHANNELS, IGNORE_INDEX). */
export const DATASET_CONSTANTS: Readonly<
  Record<string, { numClasses: number; imgChannels: number; ignoreIndex: number }>
> = {
  Cityscapes: { numClasses: 19, imgChannels: 3, ignoreIndex: 255 },
  PascalVOC: { numClasses: 21, imgChannels: 3, ignoreIndex: 255 },
  ADE20K: { numClasses: 150, imgChannels: 3, ignoreIndex: 255 },
};

export const datasetConfig = unionOf(datasetSchemas);
export type DatasetConfig = z.output<typeof datasetConfig>;
