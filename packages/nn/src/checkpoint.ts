/**
 * Module checkpoints as safetensors files: every state-dict entry (parameters and BN statistics,
 * Paddle's structured names) as F32, plus optional string metadata.
 */
import { type HostTensor, type LoadReport, type Module, StateDictError } from './module.js';
import { readSafetensors, type SafetensorsEntry, SafetensorsError, writeSafetensors } from './safetensors.js';

/** Writes `values` (a state dict, or optimizer `stateValues()`) as an F32 safetensors file, atomically. */
export async function saveStateFile(
  path: string,
  values: ReadonlyMap<string, HostTensor>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, v] of values) tensors.set(name, { dtype: 'F32', shape: v.shape, data: v.data });
  await writeSafetensors(path, tensors, metadata);
}

/** Reads an F32 safetensors file back as host tensors (other dtypes are an error naming the key). */
export async function loadStateFile(
  path: string,
): Promise<{ values: Map<string, HostTensor>; metadata: Record<string, string> }> {
  const file = await readSafetensors(path);
  const values = new Map<string, HostTensor>();
  for (const [name, t] of file.tensors) {
    if (!(t.data instanceof Float32Array))
      throw new SafetensorsError(
        `safetensors ${path}: tensor '${name}': dtype ${t.dtype} cannot be loaded as float32 state`,
      );
    values.set(name, { shape: t.shape, data: t.data });
  }
  return { values, metadata: file.metadata };
}

/** Saves a module's state dict (bit-exact float32) to `path`. */
export async function saveModule(
  module: Module,
  path: string,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  await saveStateFile(path, await module.stateDictValues(), metadata);
}

/**
 * Loads a module's state dict from `path`. A shape mismatch is an error naming the key; with
 * `strict`, missing or unexpected keys are errors too, else they are reported.
 */
export async function loadModule(
  module: Module,
  path: string,
  options: { strict?: boolean } = {},
): Promise<LoadReport & { metadata: Record<string, string> }> {
  const { values, metadata } = await loadStateFile(path);
  try {
    return { ...module.loadStateDict(values, options), metadata };
  } catch (error) {
    if (error instanceof StateDictError) throw new StateDictError(`${path}: ${error.message}`);
    throw error;
  }
}
