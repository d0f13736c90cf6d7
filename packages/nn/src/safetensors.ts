/**
 * The safetensors format (https://github.com/huggingface/safetensors), exactly: an 8-byte
 * little-endian u64 header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}` padded with
 * spaces to a multiple of 8, then the byte buffer (little-endian, offsets relative to its start).
 * Tensors are laid out in the order given. F32, I32, I64 and U8 are read and written; F16 is read
 * only (converted to f32). Reads validate the header and name the file and tensor in every error.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';

export type SafetensorsDType = 'F32' | 'F16' | 'I32' | 'I64' | 'U8';

/** One tensor to write: `data` is f32 for F32, i32 for I32, integers (or BigInt64Array) for I64, bytes for U8. */
export interface SafetensorsEntry {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array | Uint8Array | BigInt64Array | Float64Array | ArrayLike<number>;
}

/**
 * A decoded tensor: F32 and F16 give a Float32Array (F16 converted), I32 an Int32Array, I64 a
 * Float64Array of the integer values (an error beyond ±2^53), U8 a Uint8Array.
 */
export interface DecodedTensor {
  readonly dtype: SafetensorsDType;
  readonly shape: number[];
  readonly data: Float32Array | Int32Array | Float64Array | Uint8Array;
}

export interface SafetensorsFile {
  readonly tensors: Map<string, DecodedTensor>;
  readonly metadata: Record<string, string>;
}

/** The reference implementation's limit on the header size. */
export const MAX_HEADER_BYTES = 100_000_000;

const ITEM_BYTES: Record<SafetensorsDType, number> = { F32: 4, F16: 2, I32: 4, I64: 8, U8: 1 };
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A safetensors file or entry that cannot be read or written; the message names the file and tensor. */
export class SafetensorsError extends Error {}

function err(source: string, message: string, tensor?: string): SafetensorsError {
  return new SafetensorsError(
    `safetensors ${source}: ${tensor !== undefined ? `tensor '${tensor}': ` : ''}${message}`,
  );
}

function isDType(x: unknown): x is SafetensorsDType {
  return typeof x === 'string' && Object.hasOwn(ITEM_BYTES, x);
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Copies `src` bytes into `dst` at `offset`, swapping each `item`-byte word on a big-endian host. */
function putLE(dst: Uint8Array, offset: number, src: Uint8Array, item: number): void {
  if (LITTLE_ENDIAN_HOST || item === 1) {
    dst.set(src, offset);
    return;
  }
  for (let i = 0; i < src.length; i += item)
    for (let b = 0; b < item; b++) dst[offset + i + b] = src[i + item - 1 - b] as number;
}

/** The little-endian bytes of one entry's values (bit-exact for typed arrays: NaN payloads, −0). */
function entryBytes(name: string, e: SafetensorsEntry): Uint8Array {
  const n = elementCount(e.shape);
  if (e.data.length !== n)
    throw err('encode', `${e.data.length} values for shape [${e.shape.join(', ')}] (needs ${n})`, name);
  const asBytes = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  switch (e.dtype) {
    case 'F32':
      return asBytes(
        e.data instanceof Float32Array ? e.data : Float32Array.from(e.data as ArrayLike<number>),
      );
    case 'I32': {
      if (e.data instanceof Int32Array) return asBytes(e.data);
      const src = e.data as ArrayLike<number>;
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i] as number;
        if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31)
          throw err('encode', `value ${v} at ${i} is not an i32`, name);
        out[i] = v;
      }
      return asBytes(out);
    }
    case 'I64': {
      if (e.data instanceof BigInt64Array) return asBytes(e.data);
      const src = e.data as ArrayLike<number>;
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i] as number;
        if (!Number.isSafeInteger(v)) throw err('encode', `value ${v} at ${i} is not a safe integer`, name);
        out[i] = BigInt(v);
      }
      return asBytes(out);
    }
    case 'U8': {
      if (e.data instanceof Uint8Array) return e.data;
      const src = e.data as ArrayLike<number>;
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i] as number;
        if (!Number.isInteger(v) || v < 0 || v > 255)
          throw err('encode', `value ${v} at ${i} is not a u8`, name);
        out[i] = v;
      }
      return out;
    }
    case 'F16':
      throw err('encode', 'F16 is read-only here; write F32', name);
    default:
      throw err('encode', `unknown dtype '${String((e as { dtype: unknown }).dtype)}'`, name);
  }
}

/** Encodes tensors (laid out in iteration order) and optional string metadata. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsEntry>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw err('encode', `__metadata__ value for '${k}' must be a string`);
    header.__metadata__ = { ...metadata };
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, e] of tensors) {
    if (name === '__metadata__') throw err('encode', "'__metadata__' is reserved", name);
    if (!isDType(e.dtype)) throw err('encode', `unknown dtype '${String(e.dtype)}'`, name);
    if (!e.shape.every((d) => Number.isInteger(d) && d >= 0))
      throw err('encode', `shape [${e.shape.join(', ')}] must be non-negative integers`, name);
    const bytes = entryBytes(name, e);
    header[name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  let headerBytes = new TextEncoder().encode(json);
  const pad = (8 - (headerBytes.length % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    headerBytes = new TextEncoder().encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  let i = 0;
  for (const [, e] of tensors) {
    const bytes = parts[i++] as Uint8Array;
    putLE(out, at, bytes, ITEM_BYTES[e.dtype]);
    at += bytes.length;
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Decodes and validates a safetensors buffer; `source` (a file name) prefixes every error. */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsFile {
  if (bytes.length < 8) throw err(source, `${bytes.length} bytes is too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES))
    throw err(source, `header length ${n64} is too big (limit ${MAX_HEADER_BYTES} bytes)`);
  const n = Number(n64);
  if (8 + n > bytes.length)
    throw err(source, `header length ${n} is too big: runs past the end of the ${bytes.length}-byte file`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw err(source, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw err(source, "header must start with '{'");
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw err(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw err(source, 'header must be a JSON object');
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Array<{
    name: string;
    dtype: SafetensorsDType;
    shape: number[];
    begin: number;
    end: number;
  }> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
        throw err(source, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw err(source, `__metadata__ value for '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      throw err(source, 'entry must be an object {dtype, shape, data_offsets}', name);
    const { dtype, shape, data_offsets } = raw as Record<string, unknown>;
    if (!isDType(dtype)) throw err(source, `unsupported dtype ${JSON.stringify(dtype)}`, name);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw err(source, `shape ${JSON.stringify(shape)} must be a list of non-negative integers`, name);
    if (
      !Array.isArray(data_offsets) ||
      data_offsets.length !== 2 ||
      !data_offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    )
      throw err(source, `data_offsets ${JSON.stringify(data_offsets)} must be [begin, end] integers`, name);
    const [begin, end] = data_offsets as [number, number];
    if (begin > end) throw err(source, `data_offsets [${begin}, ${end}] has begin after end`, name);
    if (end > dataLen)
      throw err(
        source,
        `data_offsets [${begin}, ${end}] out of range: the data section has ${dataLen} bytes`,
        name,
      );
    const expected = elementCount(shape as number[]) * ITEM_BYTES[dtype];
    if (end - begin !== expected)
      throw err(
        source,
        `dtype ${dtype} shape [${(shape as number[]).join(', ')}] needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
        name,
      );
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prev: string | undefined;
  for (const e of entries) {
    if (e.begin < covered)
      throw err(
        source,
        `data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev}' (ends at ${covered})`,
        e.name,
      );
    if (e.begin > covered)
      throw err(
        source,
        `data_offsets [${e.begin}, ${e.end}] leave a hole: bytes ${covered}..${e.begin} are unused`,
        e.name,
      );
    covered = e.end;
    prev = e.name;
  }
  if (covered !== dataLen)
    throw err(source, `the data section has ${dataLen} bytes but the tensors cover ${covered}`);

  const tensors = new Map<string, DecodedTensor>();
  for (const e of entries) {
    const item = ITEM_BYTES[e.dtype];
    const raw = new Uint8Array(e.end - e.begin);
    putLE(raw, 0, bytes.subarray(dataStart + e.begin, dataStart + e.end), item);
    const count = raw.length / item;
    let data: DecodedTensor['data'];
    switch (e.dtype) {
      case 'F32':
        data = new Float32Array(raw.buffer);
        break;
      case 'F16': {
        const h = new Uint16Array(raw.buffer);
        data = new Float32Array(count);
        for (let i = 0; i < count; i++) data[i] = halfToFloat(h[i] as number);
        break;
      }
      case 'I32':
        data = new Int32Array(raw.buffer);
        break;
      case 'I64': {
        const b = new BigInt64Array(raw.buffer);
        data = new Float64Array(count);
        for (let i = 0; i < count; i++) {
          const v = b[i] as bigint;
          if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
            throw err(
              source,
              `I64 value ${v} at ${i} is beyond ±2^53 and cannot be read as a number`,
              e.name,
            );
          data[i] = Number(v);
        }
        break;
      }
      case 'U8':
        data = raw;
        break;
    }
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically (see writeFileAtomic). */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafetensorsEntry>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/**
 * Writes `bytes` to `path` atomically: to `path + '.tmp-<pid>'`, flushed, then renamed over `path`
 * (the temporary is removed if anything fails, so no half-written file is left).
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Reads and validates a safetensors file; errors name the file (and the tensor). */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const buf = await readFile(path);
  return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}
