import type { PlainMap } from './node.js';
import type { ResolvedConfig } from './resolve.js';

const ORDER = [
  'batch_size',
  'iters',
  'train_dataset',
  'val_dataset',
  'optimizer',
  'lr_scheduler',
  'loss',
  'model',
];

/** The resolved config as a plain dict in PaddleSeg's print order; unused keys follow. */
export function printableConfig(config: ResolvedConfig): PlainMap {
  const { source: _source, extra, ...rest } = config;
  const values = rest as unknown as PlainMap;
  const out: PlainMap = {};
  for (const key of ORDER) if (values[key] !== undefined && values[key] !== null) out[key] = values[key];
  for (const [key, value] of Object.entries(values)) if (!(key in out) && value !== null) out[key] = value;
  for (const [key, value] of Object.entries(extra)) out[key] = value;
  return out;
}
