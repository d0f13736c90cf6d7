/**
 * Module checkpoints: every state-dict entry (parameters and BN statistics, Paddle's structured
 * names) as float32, in safetensors (segtrain's own, with string metadata) or PaddlePaddle's
 * `.pdparams` (read from a file or a `.tar.gz` archive; written as paddle.save would).
 */
import { type HostTensor, type LoadReport, type Module, StateDictError } from './module.js';
import { encodePdparams, isWeightsArchive, PdparamsError, readPdparams } from './pdparams.js';
import {
  readSafetensors,
  type SafetensorsEntry,
  SafetensorsError,
  writeFileAtomic,
  writeSafetensors,
} from './safetensors.js';

/** Whether a weights path is PaddlePaddle's format (`.pdparams`, `.pdopt`, or an archive of them). */
export function isPaddleWeights(path: string): boolean {
  return /\.(pdparams|pdopt)$/i.test(path) || isWeightsArchive(path);
}

/**
 * Writes `values` (a state dict, or optimizer `stateValues()`) atomically: as F32 safetensors, or
 * as a `.pdparams` pickle when the path ends so (metadata is not kept there).
 */
export async function saveStateFile(
  path: string,
  values: ReadonlyMap<string, HostTensor>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  if (/\.(pdparams|pdopt)$/i.test(path)) {
    await writeFileAtomic(path, encodePdparams(values));
    return;
  }
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, v] of values) tensors.set(name, { dtype: 'F32', shape: v.shape, data: v.data });
  await writeSafetensors(path, tensors, metadata);
}

/** A weights file's arrays (any dtype), its string metadata and Paddle's name table, whatever its format. */
export interface WeightsFile {
  readonly tensors: ReadonlyMap<
    string,
    {
      readonly dtype: string;
      readonly shape: number[];
      readonly data: Float32Array | Float64Array | Int32Array | Uint8Array;
    }
  >;
  readonly metadata: Record<string, string>;
  /** `StructuredToParameterName@@` of a .pdparams (empty otherwise). */
  readonly nameTable: ReadonlyMap<string, string>;
}

/** Reads safetensors, `.pdparams`/`.pdopt`, or the `model.pdparams` of a PaddleSeg archive. */
export async function readWeights(path: string): Promise<WeightsFile> {
  if (isPaddleWeights(path)) {
    const file = await readPdparams(path);
    return { tensors: file.tensors, metadata: {}, nameTable: file.nameTable };
  }
  const file = await readSafetensors(path);
  return { tensors: file.tensors, metadata: file.metadata, nameTable: new Map() };
}

/**
 * Reads a weights file back as float32 host tensors: safetensors (F32 only), or `.pdparams`
 * (float64/float16 arrays converted; Paddle's name table returned apart, non-array entries left
 * out). Any other dtype is an error naming the key.
 */
export async function loadStateFile(path: string): Promise<{
  values: Map<string, HostTensor>;
  metadata: Record<string, string>;
  nameTable: ReadonlyMap<string, string>;
}> {
  const file = await readWeights(path);
  const paddle = isPaddleWeights(path);
  const values = new Map<string, HostTensor>();
  for (const [name, t] of file.tensors) {
    if (!(t.data instanceof Float32Array))
      throw paddle
        ? new PdparamsError(`${path}: array '${name}': dtype ${t.dtype} cannot be loaded as float32 state`)
        : new SafetensorsError(
            `safetensors ${path}: tensor '${name}': dtype ${t.dtype} cannot be loaded as float32 state`,
          );
    values.set(name, { shape: t.shape, data: t.data });
  }
  return { values, metadata: file.metadata, nameTable: file.nameTable };
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
): Promise<LoadReport & { metadata: Record<string, string>; nameTable: ReadonlyMap<string, string> }> {
  const { values, metadata, nameTable } = await loadStateFile(path);
  try {
    return { ...module.loadStateDict(values, options), metadata, nameTable };
  } catch (error) {
    if (error instanceof StateDictError) throw new StateDictError(`${path}: ${error.message}`);
    throw error;
  }
}
