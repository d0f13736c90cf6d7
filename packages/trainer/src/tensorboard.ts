/**
 * Minimal TensorBoard event-file writer (scalars only) and a reader for tests: TFRecord framing
 * around hand-encoded `tensorflow.Event` protobufs, no dependencies.
 */
import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) ----

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    crc = (CRC_TABLE[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC, so that CRCs of data containing CRCs stay well distributed. */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: uint64 LE length, masked CRC of the length bytes, data, masked CRC of data. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 16);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

// ---- protobuf encoding (only the wire types Event needs) ----

class ProtoWriter {
  private readonly chunks: number[] = [];

  private varint(v: bigint): void {
    // int64 fields carry negatives as their 64-bit two's complement (10 bytes).
    let u = BigInt.asUintN(64, v);
    while (u >= 0x80n) {
      this.chunks.push(Number(u & 0x7fn) | 0x80);
      u >>= 7n;
    }
    this.chunks.push(Number(u));
  }

  private tag(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }

  int64(field: number, v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`int64 field ${field}: not a safe integer: ${v}`);
    this.tag(field, 0);
    this.varint(BigInt(v));
    return this;
  }

  double(field: number, v: number): this {
    this.tag(field, 1);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.chunks.push(...b);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.chunks.push(...b);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(BigInt(data.length));
    for (const x of data) this.chunks.push(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

// Field numbers from tensorflow/core/util/event.proto and framework/summary.proto.
const EVENT_WALL_TIME = 1;
const EVENT_STEP = 2;
const EVENT_FILE_VERSION = 3;
const EVENT_SUMMARY = 5;
const SUMMARY_VALUE = 1;
const VALUE_TAG = 1;
const VALUE_SIMPLE_VALUE = 2;

export interface ScalarValue {
  tag: string;
  /** Stored as float32, as TensorBoard's simple_value is. */
  simpleValue: number;
}

export interface TfEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  summary?: ScalarValue[];
}

export function encodeEvent(e: TfEvent): Uint8Array {
  const w = new ProtoWriter().double(EVENT_WALL_TIME, e.wallTime);
  if (e.step !== 0) w.int64(EVENT_STEP, e.step);
  if (e.fileVersion !== undefined) w.string(EVENT_FILE_VERSION, e.fileVersion);
  if (e.summary !== undefined) {
    const s = new ProtoWriter();
    for (const v of e.summary) {
      s.bytes(
        SUMMARY_VALUE,
        new ProtoWriter().string(VALUE_TAG, v.tag).float(VALUE_SIMPLE_VALUE, v.simpleValue).finish(),
      );
    }
    w.bytes(EVENT_SUMMARY, s.finish());
  }
  return w.finish();
}

export interface EventWriterOptions {
  /** Appended to the file name, e.g. to keep two writers started in the same second apart. */
  filenameSuffix?: string;
  /** Clock in milliseconds since the epoch (tests). */
  now?: () => number;
}

/**
 * Appends scalar events to `<dir>/events.out.tfevents.<unix seconds>.<hostname>`. Each record goes
 * to the OS with one write on a kept append-mode fd, so a crash loses at most the record being
 * written; `flush()` also fsyncs.
 */
export class EventWriter {
  readonly path: string;
  private fd: number | undefined;
  private readonly now: () => number;

  constructor(dir: string, opts: EventWriterOptions = {}) {
    this.now = opts.now ?? Date.now;
    mkdirSync(dir, { recursive: true });
    // TensorFlow's `%010d` seconds; TensorBoard only requires 'tfevents' in the name.
    const seconds = String(Math.floor(this.now() / 1000)).padStart(10, '0');
    this.path = join(dir, `events.out.tfevents.${seconds}.${hostname()}${opts.filenameSuffix ?? ''}`);
    this.fd = openSync(this.path, 'a');
    this.write({ wallTime: this.now() / 1000, step: 0, fileVersion: 'brain.Event:2' });
  }

  private write(e: TfEvent): void {
    if (this.fd === undefined) throw new Error(`EventWriter for ${this.path} is closed`);
    const rec = frameRecord(encodeEvent(e));
    let off = 0;
    while (off < rec.length) off += writeSync(this.fd, rec, off, rec.length - off);
  }

  scalar(tag: string, value: number, step: number): void {
    this.write({ wallTime: this.now() / 1000, step, summary: [{ tag, simpleValue: value }] });
  }

  flush(): void {
    if (this.fd !== undefined) fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      fdatasyncSync(this.fd);
    } finally {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

// ---- reading (tests, tools) ----

class ProtoReader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('varint too long');
    }
  }

  take(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) throw new Error('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Next field as [field number, wire type]. */
  key(): [number, number] {
    const k = Number(this.varint());
    return [k >>> 3, k & 7];
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.take(8);
    else if (wire === 2) this.take(Number(this.varint()));
    else if (wire === 5) this.take(4);
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

function decodeValue(buf: Uint8Array): ScalarValue | undefined {
  const r = new ProtoReader(buf);
  let tag = '';
  let simpleValue: number | undefined;
  while (!r.done) {
    const [field, wire] = r.key();
    if (field === VALUE_TAG && wire === 2) tag = new TextDecoder().decode(r.take(Number(r.varint())));
    else if (field === VALUE_SIMPLE_VALUE && wire === 5) simpleValue = view(r.take(4)).getFloat32(0, true);
    else r.skip(wire);
  }
  return simpleValue === undefined ? undefined : { tag, simpleValue };
}

export function decodeEvent(buf: Uint8Array): TfEvent {
  const r = new ProtoReader(buf);
  const e: TfEvent = { wallTime: 0, step: 0 };
  while (!r.done) {
    const [field, wire] = r.key();
    if (field === EVENT_WALL_TIME && wire === 1) e.wallTime = view(r.take(8)).getFloat64(0, true);
    else if (field === EVENT_STEP && wire === 0) e.step = Number(BigInt.asIntN(64, r.varint()));
    else if (field === EVENT_FILE_VERSION && wire === 2) {
      e.fileVersion = new TextDecoder().decode(r.take(Number(r.varint())));
    } else if (field === EVENT_SUMMARY && wire === 2) {
      const s = new ProtoReader(r.take(Number(r.varint())));
      e.summary ??= [];
      while (!s.done) {
        const [f, w] = s.key();
        if (f === SUMMARY_VALUE && w === 2) {
          const v = decodeValue(s.take(Number(s.varint())));
          if (v !== undefined) e.summary.push(v);
        } else s.skip(w);
      }
    } else r.skip(wire);
  }
  return e;
}

/** Parses an event file, verifying both CRCs of every record; throws on corruption or truncation. */
export function readEvents(path: string): TfEvent[] {
  const buf = new Uint8Array(readFileSync(path));
  const events: TfEvent[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 12 > buf.length) throw new Error(`truncated record header at byte ${off}`);
    const head = view(buf.subarray(off, off + 12));
    if (maskedCrc32c(buf.subarray(off, off + 8)) !== head.getUint32(8, true)) {
      throw new Error(`length CRC mismatch at byte ${off}`);
    }
    const len = Number(head.getBigUint64(0, true));
    const end = off + 12 + len + 4;
    if (end > buf.length) throw new Error(`truncated record at byte ${off}`);
    const data = buf.subarray(off + 12, off + 12 + len);
    if (maskedCrc32c(data) !== view(buf.subarray(end - 4, end)).getUint32(0, true)) {
      throw new Error(`data CRC mismatch in record at byte ${off}`);
    }
    events.push(decodeEvent(data));
    off = end;
  }
  return events;
}
