import type { TransformConfig } from '@segtrain/config';
import type { RandomSource, Sample, Transform } from '../types.js';
import { buildTransform } from './transforms.js';

export { buildTransform } from './transforms.js';

/** Builds the pipeline from resolved transform configs, in config order (PaddleSeg's `Compose`). */
export function buildTransforms(configs: readonly TransformConfig[]): Transform[] {
  return configs.map(buildTransform);
}

/**
 * Runs the pipeline on one sample with its own random stream. Transforms never modify the input
 * sample's arrays (each returns new ones), so a cached decoded sample can be reused.
 */
export function applyTransforms(
  sample: Sample,
  transforms: readonly Transform[],
  random: RandomSource,
): Sample {
  let s = sample;
  for (const t of transforms) s = t.apply(s, random);
  return s;
}
