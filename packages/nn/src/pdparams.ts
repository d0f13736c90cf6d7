/**
 * PaddlePaddle's `.pdparams` / `.pdopt` files: what `paddle.save(state_dict)` writes, a Python
 * pickle (protocol 2, 3 or 4) of a dict from name to numpy array, plus Paddle's bookkeeping keys
 * (`StructuredToParameterName@@`, and `UnpackBigParamInfor@@` for tensors split at 1 GiB).
 *
 * The reader is a restricted unpickler: it knows the opcodes such files use and builds numpy arrays
 * from their `_reconstruct` + BUILD state itself. It imports and calls nothing: any global other than
 * the handful numpy arrays, dtypes and dicts need is an error naming it, so a crafted file cannot run
 * code. The writer emits protocol 4 (Paddle's default) with numpy 1's module names, which numpy 2
 * also reads.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

/** A pickle that is not a Paddle state dict, or uses something this reader refuses; names the file. */
export class PdparamsError extends Error {}

export type PdDType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'bool';

/** One array: float types as Float32Array (float64/float16 converted), integers and bools as Float64Array. */
export interface PdArray {
  readonly dtype: PdDType;
  readonly shape: number[];
  readonly data: Float32Array | Float64Array;
}

export interface PdparamsFile {
  readonly tensors: Map<string, PdArray>;
  /** Paddle's structured name → internal parameter name table (`StructuredToParameterName@@`), if present. */
  readonly nameTable: Map<string, string>;
  /** Top-level entries that are not arrays (e.g. `.pdopt`'s `LR_Scheduler`), by key, as plain values. */
  readonly other: Map<string, unknown>;
}

const NAME_TABLE_KEY = 'StructuredToParameterName@@';
const BIG_PARAM_KEY = 'UnpackBigParamInfor@@';

// numpy dtype strings → our dtype and item size (little-endian or byte-order-free only).
const DTYPES: Record<string, [PdDType, number]> = {
  f4: ['float32', 4],
  f8: ['float64', 8],
  f2: ['float16', 2],
  i1: ['int8', 1],
  i2: ['int16', 2],
  i4: ['int32', 4],
  i8: ['int64', 8],
  u1: ['uint8', 1],
  b1: ['bool', 1],
};

// The values the unpickler builds. Globals are markers; only known ones exist.
class Global {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get kind(): string {
    const mod = this.module.replace(/^numpy\._core\./, 'numpy.core.').replace(/^__builtin__$/, 'builtins');
    return `${mod}.${this.name}`;
  }
}
class DType {
  byteOrder = '<';
  constructor(readonly code: string) {}
}
class PendingArray {
  array: PdArray | null = null;
}
/** A Python bytes value (kept apart from str, which is a JS string). */
class Bytes {
  constructor(readonly bytes: Uint8Array) {}
}

/** The globals a Paddle state dict may reference, and what each is allowed to build. */
const ALLOWED = new Set([
  'numpy.core.multiarray._reconstruct',
  'numpy.ndarray',
  'numpy.dtype',
  'numpy.core.multiarray.scalar',
  '_codecs.encode',
  'builtins.bytes',
  'builtins.tuple',
  'builtins.eval',
  'collections.OrderedDict',
]);

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Decodes numpy raw bytes (C or Fortran order) into our array. */
function makeArray(
  source: string,
  shape: number[],
  dtype: DType,
  fortran: boolean,
  raw: Uint8Array,
): PdArray {
  const known = DTYPES[dtype.code];
  if (!known) throw new PdparamsError(`${source}: arrays of numpy dtype '${dtype.code}' are not supported`);
  if (dtype.byteOrder === '>')
    throw new PdparamsError(`${source}: big-endian arrays ('>${dtype.code}') are not supported`);
  const [type, item] = known;
  const count = shape.reduce((a, b) => a * b, 1);
  if (raw.length !== count * item)
    throw new PdparamsError(
      `${source}: an array of shape [${shape.join(', ')}] and dtype ${type} needs ${count * item} bytes, the file has ${raw.length}`,
    );
  // Copy: the bytes sit at arbitrary offsets in the file.
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const float = type === 'float32' || type === 'float64' || type === 'float16';
  const flat = float ? new Float32Array(count) : new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * item;
    switch (type) {
      case 'float32':
        flat[i] = view.getFloat32(at, true);
        break;
      case 'float64':
        flat[i] = view.getFloat64(at, true);
        break;
      case 'float16':
        flat[i] = halfToFloat(view.getUint16(at, true));
        break;
      case 'int8':
        flat[i] = view.getInt8(at);
        break;
      case 'int16':
        flat[i] = view.getInt16(at, true);
        break;
      case 'int32':
        flat[i] = view.getInt32(at, true);
        break;
      case 'int64': {
        const v = view.getBigInt64(at, true);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
          throw new PdparamsError(`${source}: an int64 value ${v} exceeds what a double holds exactly`);
        flat[i] = Number(v);
        break;
      }
      default:
        flat[i] = view.getUint8(at);
    }
  }
  if (!fortran || shape.length < 2) return { dtype: type, shape, data: flat };
  // Column-major → row-major.
  const data = float ? new Float32Array(count) : new Float64Array(count);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  for (let c = 0; c < count; c++) {
    let f = 0;
    let stride = 1;
    for (let d = 0; d < rank; d++) {
      f += (index[d] ?? 0) * stride;
      stride *= shape[d] ?? 1;
    }
    data[c] = flat[f] ?? 0;
    for (let d = rank - 1; d >= 0; d--) {
      index[d] = (index[d] ?? 0) + 1;
      if ((index[d] ?? 0) < (shape[d] ?? 1)) break;
      index[d] = 0;
    }
  }
  return { dtype: type, shape, data };
}

/** Unpickles `bytes` into plain values: dicts as Map, lists as arrays, tuples as frozen arrays. */
export function unpickle(bytes: Uint8Array, source = '<buffer>'): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  const fail = (message: string): never => {
    throw new PdparamsError(`${source}: ${message} (at byte ${pos})`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.length) fail('the pickle ends early: the file is truncated');
  };
  const u8 = () => {
    need(1);
    return bytes[pos++] as number;
  };
  const u16 = () => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('a length beyond 2^53');
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('an unterminated text line');
    const text = decoder.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const pop = () => {
    if (stack.length === 0 || stack.length <= (marks[marks.length - 1] ?? -1)) fail('the stack is empty');
    return stack.pop();
  };
  const popMark = () => {
    const at = marks.pop();
    if (at === undefined) fail('no MARK to pop to');
    return stack.splice(at as number);
  };
  const top = () => stack[stack.length - 1];
  const global = (module: string, name: string) => {
    const g = new Global(module, name);
    if (!ALLOWED.has(g.kind))
      fail(
        `refusing the pickle global ${module}.${name}: a Paddle state dict holds only numpy arrays, and this reader imports nothing else`,
      );
    stack.push(g);
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) fail('SETITEM(S) on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2)
      (target as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const asBytes = (v: unknown): Uint8Array => {
    if (v instanceof Bytes) return v.bytes;
    return fail('expected bytes');
  };
  const reduce = (fn: unknown, args: unknown) => {
    if (!(fn instanceof Global) || !Array.isArray(args))
      return fail('REDUCE of something that is not an allowed global');
    switch (fn.kind) {
      case 'numpy.core.multiarray._reconstruct':
        return new PendingArray();
      case 'numpy.dtype': {
        const code = args[0];
        if (typeof code !== 'string') return fail('numpy.dtype without a type code');
        return new DType(code);
      }
      case 'numpy.core.multiarray.scalar': {
        const [dtype, raw] = args;
        if (!(dtype instanceof DType)) return fail('numpy scalar without a dtype');
        const arr = makeArray(source, [], dtype, false, asBytes(raw));
        return arr.data[0];
      }
      case '_codecs.encode': {
        // Protocol 2 stores bytes as latin-1 text: each code point is one byte.
        const [text, encoding] = args;
        if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1'))
          return fail('_codecs.encode other than latin1 text');
        const out = new Uint8Array(text.length);
        for (let i = 0; i < text.length; i++) {
          const c = text.charCodeAt(i);
          if (c > 255) return fail('latin1 text with a code point above 255');
          out[i] = c;
        }
        return new Bytes(out);
      }
      case 'builtins.bytes':
        if (args.length === 0) return new Bytes(new Uint8Array(0));
        return fail('builtins.bytes with arguments');
      case 'builtins.tuple':
        // Paddle 2.1's `(name, ndarray)` tensors.
        if (args.length === 1 && Array.isArray(args[0])) return Object.freeze([...(args[0] as unknown[])]);
        return fail('builtins.tuple with unexpected arguments');
      case 'builtins.eval': {
        // Paddle's LoDTensor reduction: eval('data', {'data': array}) — evaluated here as a lookup only.
        const [code, scope] = args;
        if (code === 'data' && scope instanceof Map && scope.has('data')) return scope.get('data');
        return fail("builtins.eval other than Paddle's eval('data', {'data': array})");
      }
      case 'collections.OrderedDict':
        if (args.length === 0) return new Map();
        return fail('collections.OrderedDict with arguments');
      default:
        return fail(`REDUCE of ${fn.kind}`);
    }
  };
  const build = (target: unknown, state: unknown) => {
    if (target instanceof DType) {
      if (Array.isArray(state) && typeof state[1] === 'string') target.byteOrder = state[1];
      return;
    }
    if (target instanceof PendingArray) {
      if (!Array.isArray(state) || state.length !== 5)
        fail('an ndarray state that is not (version, shape, dtype, fortran, data)');
      const [, shape, dtype, fortran, raw] = state as unknown[];
      if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number'))
        fail('an ndarray shape that is not a tuple of ints');
      if (!(dtype instanceof DType)) fail('an ndarray without a dtype');
      target.array = makeArray(source, shape as number[], dtype as DType, fortran === true, asBytes(raw));
      return;
    }
    fail('BUILD on something other than a numpy array or dtype');
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 4) fail('pickle protocol 5 or later: paddle.save writes 2 to 4');
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: {
        // STOP
        const result = pop();
        return finish(result);
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(Object.freeze([]));
        break;
      case 0x74: // TUPLE
        stack.push(Object.freeze(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(Object.freeze([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(Object.freeze([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(Object.freeze([pop(), b, c]));
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list) || Object.isFrozen(list)) fail('APPEND to something that is not a list');
        (list as unknown[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list) || Object.isFrozen(list)) fail('APPENDS to something that is not a list');
        (list as unknown[]).push(...items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const key = op === 0x68 ? u8() : u32();
        if (!memo.has(key)) fail(`memo entry ${key} is missing`);
        stack.push(memo.get(key));
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = line();
        global(module, line());
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without two strings');
        global(module as string, name as string);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        build(top(), state);
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const n = u8();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
        if (n > 0 && ((b[n - 1] as number) & 0x80) !== 0) v -= 1n << BigInt(8 * n);
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(decoder.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(decoder.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(decoder.decode(take(u64())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(new Bytes(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(new Bytes(take(u32())));
        break;
      case 0x8e: // BINBYTES8
        stack.push(new Bytes(take(u64())));
        break;
      default:
        fail(`pickle opcode 0x${op.toString(16).padStart(2, '0')} is not one a Paddle state dict uses`);
    }
  }

  // Arrays replace their placeholders everywhere; bytes become Uint8Array.
  function finish(value: unknown): unknown {
    if (value instanceof PendingArray) {
      if (!value.array) fail('an ndarray that was never BUILT');
      return value.array;
    }
    if (value instanceof Bytes) return value.bytes;
    if (value instanceof Map) {
      const out = new Map<unknown, unknown>();
      for (const [k, v] of value) out.set(finish(k), finish(v));
      return out;
    }
    if (Array.isArray(value)) return value.map(finish);
    if (value instanceof Global || value instanceof DType) fail('a pickle whose result holds a type object');
    return value;
  }
}

function isPdArray(v: unknown): v is PdArray {
  return typeof v === 'object' && v !== null && 'dtype' in v && 'shape' in v && 'data' in v;
}

/** Decodes a `.pdparams`/`.pdopt` pickle into its arrays (names as saved), the name table and other entries. */
export function decodePdparams(bytes: Uint8Array, source = '<buffer>'): PdparamsFile {
  const root = unpickle(bytes, source);
  if (!(root instanceof Map))
    throw new PdparamsError(
      `${source}: the pickle holds a ${typeof root}, not a dict of arrays (paddle.save(state_dict))`,
    );
  const tensors = new Map<string, PdArray>();
  const nameTable = new Map<string, string>();
  const other = new Map<string, unknown>();
  for (const [key, value] of root) {
    if (typeof key !== 'string') throw new PdparamsError(`${source}: a state-dict key that is not a string`);
    if (key === NAME_TABLE_KEY && value instanceof Map) {
      for (const [k, v] of value) if (typeof k === 'string' && typeof v === 'string') nameTable.set(k, v);
      continue;
    }
    // Paddle 2.1's tensors: (name, array).
    const array = Array.isArray(value) && value.length === 2 && isPdArray(value[1]) ? value[1] : value;
    if (isPdArray(array)) tensors.set(key, array);
    else other.set(key, value);
  }
  const big = other.get(BIG_PARAM_KEY);
  if (big instanceof Map) {
    other.delete(BIG_PARAM_KEY);
    for (const [key, info] of big) {
      const shape = info instanceof Map ? info.get('OriginShape') : undefined;
      const slices = info instanceof Map ? info.get('slices') : undefined;
      if (typeof key !== 'string' || !Array.isArray(shape) || !Array.isArray(slices))
        throw new PdparamsError(`${source}: ${BIG_PARAM_KEY} entry '${String(key)}' is malformed`);
      const parts = slices.map((s) => {
        const part = tensors.get(String(s));
        if (!part) throw new PdparamsError(`${source}: slice '${String(s)}' of '${key}' is missing`);
        tensors.delete(String(s));
        return part;
      });
      const total = parts.reduce((a, p) => a + p.data.length, 0);
      const first = parts[0];
      const data = first?.data instanceof Float32Array ? new Float32Array(total) : new Float64Array(total);
      let at = 0;
      for (const p of parts) {
        data.set(p.data, at);
        at += p.data.length;
      }
      tensors.set(key, { dtype: first?.dtype ?? 'float32', shape: shape as number[], data });
    }
  }
  return { tensors, nameTable, other };
}

// ---------------------------------------------------------------------------------------------
// Writing: protocol 4, as paddle.save does by default.

class PickleWriter {
  private chunks: Uint8Array[] = [];
  private size = 0;
  private memoCount = 0;
  private readonly encoder = new TextEncoder();

  raw(bytes: Uint8Array | number[]): void {
    const b = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    this.chunks.push(b);
    this.size += b.length;
  }
  u32(op: number, n: number): void {
    const b = new Uint8Array(5);
    b[0] = op;
    new DataView(b.buffer).setUint32(1, n, true);
    this.raw(b);
  }
  u64(op: number, n: number): void {
    const b = new Uint8Array(9);
    b[0] = op;
    new DataView(b.buffer).setBigUint64(1, BigInt(n), true);
    this.raw(b);
  }
  str(text: string): void {
    const utf8 = this.encoder.encode(text);
    if (utf8.length < 256) this.raw([0x8c, utf8.length]);
    else this.u32(0x58, utf8.length);
    this.raw(utf8);
  }
  bytes(data: Uint8Array): void {
    if (data.length < 256) this.raw([0x43, data.length]);
    else if (data.length < 2 ** 32) this.u32(0x42, data.length);
    else this.u64(0x8e, data.length);
    this.raw(data);
  }
  int(v: number): void {
    if (v >= 0 && v < 256) this.raw([0x4b, v]);
    else if (v >= 0 && v < 65536) this.raw([0x4d, v & 0xff, v >> 8]);
    else {
      const b = new Uint8Array(5);
      b[0] = 0x4a;
      new DataView(b.buffer).setInt32(1, v, true);
      this.raw(b);
    }
  }
  /** MEMOIZE; returns the memo index. */
  memoize(): number {
    this.raw([0x94]);
    return this.memoCount++;
  }
  get(index: number): void {
    if (index < 256) this.raw([0x68, index]);
    else this.u32(0x6a, index);
  }
  result(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/**
 * Encodes float32 arrays as `paddle.save` would write a state dict (protocol 4; numpy 1 module
 * names, which numpy 2 reads too): `paddle.load` and `pickle.load` read it back as ndarrays.
 * `nameTable` (structured name → Paddle's internal parameter name) is written as Paddle's
 * `StructuredToParameterName@@` entry.
 */
export function encodePdparams(
  tensors: ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>,
  options: { readonly nameTable?: ReadonlyMap<string, string> } = {},
): Uint8Array {
  const w = new PickleWriter();
  w.raw([0x80, 4, 0x7d]); // PROTO 4, EMPTY_DICT
  w.memoize();
  let reconstruct = -1;
  let ndarray = -1;
  let dtype = -1;
  const entries = [...tensors];
  for (let start = 0; start < entries.length || start === 0; start += 1000) {
    const batch = entries.slice(start, start + 1000);
    if (batch.length === 0) break;
    w.raw([0x28]); // MARK
    for (const [name, t] of batch) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      if (count !== t.data.length)
        throw new PdparamsError(
          `'${name}': shape [${t.shape.join(', ')}] needs ${count} values, has ${t.data.length}`,
        );
      w.str(name);
      if (reconstruct < 0) {
        w.str('numpy.core.multiarray');
        w.str('_reconstruct');
        w.raw([0x93]);
        reconstruct = w.memoize();
        w.str('numpy');
        w.str('ndarray');
        w.raw([0x93]);
        ndarray = w.memoize();
      } else {
        w.get(reconstruct);
        w.get(ndarray);
      }
      w.int(0);
      w.raw([0x85]); // (0,)
      w.bytes(Uint8Array.of(0x62)); // b'b'
      w.raw([0x87, 0x52]); // TUPLE3, REDUCE: _reconstruct(ndarray, (0,), b'b')
      w.raw([0x28]); // MARK: state
      w.int(1);
      if (t.shape.length === 0) w.raw([0x29]);
      else {
        w.raw([0x28]);
        for (const d of t.shape) w.int(d);
        w.raw([0x74]);
      }
      if (dtype < 0) {
        w.str('numpy');
        w.str('dtype');
        w.raw([0x93]);
        w.str('f4');
        w.raw([0x89, 0x88, 0x87, 0x52]); // False, True, TUPLE3, REDUCE
        w.raw([0x28]);
        w.int(3);
        w.str('<');
        w.raw([0x4e, 0x4e, 0x4e]);
        w.int(-1);
        w.int(-1);
        w.int(0);
        w.raw([0x74, 0x62]); // TUPLE, BUILD
        dtype = w.memoize();
      } else w.get(dtype);
      w.raw([0x89]); // not Fortran
      const le = new Uint8Array(count * 4);
      const view = new DataView(le.buffer);
      for (let i = 0; i < count; i++) view.setFloat32(i * 4, t.data[i] ?? 0, true);
      w.bytes(le);
      w.raw([0x74, 0x62]); // TUPLE, BUILD
    }
    w.raw([0x75]); // SETITEMS
  }
  if (options.nameTable) {
    w.raw([0x28]); // MARK
    w.str(NAME_TABLE_KEY);
    w.raw([0x7d, 0x28]); // EMPTY_DICT, MARK
    for (const [structured, internal] of options.nameTable) {
      w.str(structured);
      w.str(internal);
    }
    w.raw([0x75, 0x75]); // SETITEMS (table), SETITEMS (root)
  }
  w.raw([0x2e]); // STOP
  return w.result();
}

// ---------------------------------------------------------------------------------------------
// Archives: PaddleSeg's released weights are `<name>.tar.gz` holding `<dir>/model.pdparams`.

/** The members of an uncompressed tar archive (ustar/GNU: regular files only), by path. */
export function untar(tar: Uint8Array, source = '<tar>'): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const text = (at: number, len: number) => {
    const field = tar.subarray(at, at + len);
    const end = field.indexOf(0);
    return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
  };
  let pos = 0;
  let longName: string | null = null;
  while (pos + 512 <= tar.length) {
    if (tar.subarray(pos, pos + 512).every((b) => b === 0)) break;
    const size = Number.parseInt(text(pos + 124, 12).trim() || '0', 8);
    if (!Number.isFinite(size)) throw new PdparamsError(`${source}: a tar header with a bad size`);
    const type = String.fromCharCode(tar[pos + 156] ?? 0);
    const prefix = text(pos + 345, 155);
    let name = longName ?? (prefix ? `${prefix}/${text(pos, 100)}` : text(pos, 100));
    longName = null;
    const body = tar.subarray(pos + 512, pos + 512 + size);
    if (body.length < size) throw new PdparamsError(`${source}: the archive is truncated in '${name}'`);
    if (type === 'L') longName = new TextDecoder().decode(body).replace(/\0.*$/s, '');
    else if (type === '0' || type === '\0') {
      name = name.replace(/^\.\//, '');
      files.set(name, body);
    }
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Whether `path` names an archive that may hold a `model.pdparams`. */
export function isWeightsArchive(path: string): boolean {
  return /\.(tar\.gz|tgz|tar)$/i.test(path);
}

/** The `model.pdparams` inside a (gzipped) tar archive, as PaddleSeg's downloader finds it. */
export function pdparamsFromArchive(archive: Uint8Array, source: string): Uint8Array {
  const gz = archive[0] === 0x1f && archive[1] === 0x8b;
  const files = untar(gz ? new Uint8Array(gunzipSync(archive)) : archive, source);
  const names = [...files.keys()].filter((n) => n === 'model.pdparams' || n.endsWith('/model.pdparams'));
  if (names.length === 0) {
    const others = [...files.keys()].filter((n) => n.endsWith('.pdparams'));
    if (others.length === 1) return files.get(others[0] as string) as Uint8Array;
    throw new PdparamsError(
      `${source}: no model.pdparams in the archive (it holds ${[...files.keys()].slice(0, 5).join(', ') || 'no files'})`,
    );
  }
  names.sort((a, b) => a.length - b.length);
  return files.get(names[0] as string) as Uint8Array;
}

/** Reads a `.pdparams` file, or the `model.pdparams` of a `.tar.gz`/`.tgz`/`.tar` archive. */
export async function readPdparams(path: string): Promise<PdparamsFile> {
  const buf = await readFile(path);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const pickle = isWeightsArchive(path) ? pdparamsFromArchive(bytes, path) : bytes;
  return decodePdparams(pickle, path);
}
