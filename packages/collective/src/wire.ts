/**
 * Every data message carries a 32-byte header: what operation it belongs to (group, sequence
 * number, kind, dtype, reduction, element count, root) and where in it (algorithm step, element
 * offset). The receiver compares it with what it expects, so ranks that disagree get an error
 * naming both sides instead of a wrong sum or a hang.
 */
export type OpKind = 'allReduce' | 'broadcast' | 'allGather' | 'reduceScatter' | 'barrier';
export type ReduceOp = 'sum' | 'mean' | 'max' | 'min';
export type Collectable = Float32Array | Float64Array | Int32Array;
export type DType = 'f32' | 'f64' | 'i32';

/** A data message, the abort that spreads an error, or a rank's goodbye before close(). */
export type MessageKind = 'data' | 'abort' | 'bye';

export interface Header {
  readonly kind: MessageKind;
  readonly group: number;
  readonly seq: number;
  readonly op: OpKind;
  readonly dtype: DType;
  readonly reduce: ReduceOp | 'none';
  readonly count: number;
  readonly root: number;
  readonly step: number;
  readonly offset: number;
}

export const HEADER_BYTES = 32;
const MAGIC = 0x31434753; // 'SGC1'
const KINDS: readonly MessageKind[] = ['data', 'abort', 'bye'];
const OPS: readonly OpKind[] = ['allReduce', 'broadcast', 'allGather', 'reduceScatter', 'barrier'];
const DTYPES: readonly DType[] = ['f32', 'f64', 'i32'];
const REDUCES: readonly (ReduceOp | 'none')[] = ['none', 'sum', 'mean', 'max', 'min'];

export function dtypeOf(buf: Collectable): DType {
  if (buf instanceof Float32Array) return 'f32';
  if (buf instanceof Float64Array) return 'f64';
  return 'i32';
}

export function encodeHeader(h: Header): Buffer {
  const out = Buffer.alloc(HEADER_BYTES);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(h.group >>> 0, 4);
  out.writeUInt32LE(h.seq >>> 0, 8);
  out.writeUInt8(KINDS.indexOf(h.kind), 12);
  out.writeUInt8(OPS.indexOf(h.op), 13);
  out.writeUInt8(DTYPES.indexOf(h.dtype), 14);
  out.writeUInt8(REDUCES.indexOf(h.reduce), 15);
  out.writeUInt32LE(h.count >>> 0, 16);
  out.writeUInt32LE(h.root >>> 0, 20);
  out.writeUInt32LE(h.step >>> 0, 24);
  out.writeUInt32LE(h.offset >>> 0, 28);
  return out;
}

/** The header of a received frame, or null when it is not one of ours. */
export function decodeHeader(frame: Uint8Array): Header | null {
  if (frame.byteLength !== HEADER_BYTES) return null;
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.readUInt32LE(0) !== MAGIC) return null;
  const kind = KINDS[b.readUInt8(12)];
  const op = OPS[b.readUInt8(13)];
  const dtype = DTYPES[b.readUInt8(14)];
  const reduce = REDUCES[b.readUInt8(15)];
  if (!kind || !op || !dtype || !reduce) return null;
  return {
    kind,
    group: b.readUInt32LE(4),
    seq: b.readUInt32LE(8),
    op,
    dtype,
    reduce,
    count: b.readUInt32LE(16),
    root: b.readUInt32LE(20),
    step: b.readUInt32LE(24),
    offset: b.readUInt32LE(28),
  };
}

/** `allReduce #12 (sum, 1000 × f32)`: how errors name an operation. */
export function describeOp(h: Pick<Header, 'seq' | 'op' | 'dtype' | 'reduce' | 'count' | 'root'>): string {
  const what =
    h.op === 'broadcast'
      ? `root ${h.root}, ${h.count} × ${h.dtype}`
      : h.reduce === 'none'
        ? `${h.count} × ${h.dtype}`
        : `${h.reduce}, ${h.count} × ${h.dtype}`;
  return `${h.op} #${h.seq} (${what})`;
}

/** A 32-bit id of a job token: messages from another job's group are refused. */
export function groupId(token: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) {
    h ^= token.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A copy of `count` elements from `start` as bytes to send: ZeroMQ may read them after send() resolves. */
export function bytesOf(buf: Collectable, start: number, count: number): Buffer {
  const bpe = buf.BYTES_PER_ELEMENT;
  return Buffer.from(buf.buffer.slice(buf.byteOffset + start * bpe, buf.byteOffset + (start + count) * bpe));
}

/**
 * The bytes of `count` elements from `start`, not copied: only for sends the peers must have
 * received before the operation can end (a ring's reduce-scatter), so the caller never changes them
 * while ZeroMQ still reads them.
 */
export function bytesInPlace(buf: Collectable, start: number, count: number): Buffer {
  const bpe = buf.BYTES_PER_ELEMENT;
  return Buffer.from(buf.buffer, buf.byteOffset + start * bpe, count * bpe);
}

/** A received payload as elements of `buf`'s type (copied when ZeroMQ's bytes are misaligned). */
export function viewAs(buf: Collectable, payload: Uint8Array): Collectable {
  const bpe = buf.BYTES_PER_ELEMENT;
  const aligned = payload.byteOffset % bpe === 0 ? payload : new Uint8Array(payload);
  const n = aligned.byteLength / bpe;
  if (buf instanceof Float32Array) return new Float32Array(aligned.buffer, aligned.byteOffset, n);
  if (buf instanceof Float64Array) return new Float64Array(aligned.buffer, aligned.byteOffset, n);
  return new Int32Array(aligned.buffer, aligned.byteOffset, n);
}

/** dst[start + i] = reduce(dst[start + i], src[i]); `mean` sums here and divides once at the end. */
export function reduceInto(dst: Collectable, start: number, src: Collectable, op: ReduceOp): void {
  const n = src.length;
  // The gradient case, with the element type known to the compiler (about 3× the generic loop).
  if (op !== 'max' && op !== 'min' && dst instanceof Float32Array && src instanceof Float32Array) {
    addFloat32(dst, start, src);
    return;
  }
  if (op === 'max')
    for (let i = 0; i < n; i++) dst[start + i] = Math.max(dst[start + i] as number, src[i] as number);
  else if (op === 'min')
    for (let i = 0; i < n; i++) dst[start + i] = Math.min(dst[start + i] as number, src[i] as number);
  else if (dst instanceof Int32Array)
    for (let i = 0; i < n; i++) dst[start + i] = ((dst[start + i] as number) + (src[i] as number)) | 0;
  else for (let i = 0; i < n; i++) dst[start + i] = (dst[start + i] as number) + (src[i] as number);
}

function addFloat32(dst: Float32Array, start: number, src: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[start + i] = (dst[start + i] as number) + (src[i] as number);
}

/** The last step of `mean`: the sum divided by the world size (float buffers only). */
export function divideRange(buf: Collectable, start: number, count: number, by: number): void {
  for (let i = start; i < start + count; i++) buf[i] = (buf[i] as number) / by;
}
