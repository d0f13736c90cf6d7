import {
  backboneSchemas,
  datasetSchemas,
  lossSchemas,
  modelSchemas,
  optimizerSchemas,
  SCHEDULER_TYPES,
  transformSchemas,
} from './schemas/index.js';

/** Every component `type` segtrain knows, by the slot it fills (PaddleSeg's registries). */
export const COMPONENT_TYPES: Readonly<Record<string, readonly string[]>> = {
  model: Object.keys(modelSchemas),
  backbone: Object.keys(backboneSchemas),
  dataset: Object.keys(datasetSchemas),
  transform: Object.keys(transformSchemas),
  loss: Object.keys(lossSchemas),
  optimizer: Object.keys(optimizerSchemas),
  lr_scheduler: SCHEDULER_TYPES,
};

/** The slot whose known types are exactly (or include all of) `options`. */
export function slotOfOptions(options: readonly unknown[]): string {
  for (const [slot, names] of Object.entries(COMPONENT_TYPES)) {
    if (options.length > 0 && options.every((o) => names.includes(String(o)))) return slot;
  }
  return 'component';
}

/** Slots (other than `except`) that know a type name, for a "did you mean" hint. */
export function slotsKnowing(name: string, except: string): string[] {
  return Object.entries(COMPONENT_TYPES)
    .filter(([slot, names]) => slot !== except && names.includes(name))
    .map(([slot]) => slot);
}
