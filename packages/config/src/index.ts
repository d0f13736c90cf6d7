import { loadMergedTree } from './inherit.js';
import { type PlainMap, toPlain } from './node.js';
import { applyOverrides, type ConfigOverrides } from './overrides.js';
import { type ResolvedConfig, resolveTree } from './resolve.js';

export { COMPONENT_TYPES } from './component-types.js';
export { ConfigError, type Origin } from './errors.js';
export type { PlainMap, PlainValue } from './node.js';
export { type ConfigOverrides, parseOptValue } from './overrides.js';
export { printableConfig } from './print.js';
export { parsePythonLiteral } from './python-literal.js';
export type { ConfigSource, ResolvedConfig, SegConfig } from './resolve.js';
export type {
  BackboneConfig,
  DatasetConfig,
  InnerSchedulerConfig,
  LossConfig,
  LossListConfig,
  LrSchedulerConfig,
  ModelConfig,
  OptimizerConfig,
  SimpleLossConfig,
  TestConfig,
  TransformConfig,
} from './schemas/index.js';
export { DATASET_CONSTANTS } from './schemas/index.js';
export { resolvePlainScalar } from './yaml11.js';

/** The merged dict after `_base_` inheritance and CLI overrides, before normalisation and validation. */
export function loadRawMerged(path: string, overrides: ConfigOverrides = {}): PlainMap {
  const { root } = loadMergedTree(path);
  return toPlain(applyOverrides(root, overrides)) as PlainMap;
}

/** Loads, merges, overrides, normalises and validates a PaddleSeg-style config; throws ConfigError. */
export function loadConfig(path: string, overrides: ConfigOverrides = {}): ResolvedConfig {
  const { root, files } = loadMergedTree(path);
  const [file = path] = files;
  return resolveTree(applyOverrides(root, overrides), file, files);
}
