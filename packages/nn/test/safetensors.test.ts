import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it, onTestFinished } from 'vitest';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type SafetensorsEntry,
  writeSafetensors,
} from '../src/safetensors.js';

/** A file built by hand from the format spec: u64 LE header length, JSON header, data bytes. */
function build(header: unknown, data: Uint8Array, headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const bytesOf = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

describe('safetensors decode of a hand-built buffer', () => {
  it('reads F32, F16, I32, I64, U8 and metadata', () => {
    const data = new Uint8Array(4 * 2 + 2 * 6 + 4 + 8 * 2 + 3);
    const dv = new DataView(data.buffer);
    dv.setFloat32(0, 1.5, true);
    dv.setFloat32(4, -0.25, true);
    for (const [i, h] of [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00].entries())
      dv.setUint16(8 + 2 * i, h, true);
    dv.setInt32(20, -7, true);
    dv.setBigInt64(24, -(2n ** 40n), true);
    dv.setBigInt64(32, 123n, true);
    data.set([0, 128, 255], 40);
    const file = build(
      {
        __metadata__: { format: 'pt', note: 'hand' },
        w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        h: { dtype: 'F16', shape: [2, 3], data_offsets: [8, 20] },
        i: { dtype: 'I32', shape: [], data_offsets: [20, 24] },
        l: { dtype: 'I64', shape: [2, 1], data_offsets: [24, 40] },
        u: { dtype: 'U8', shape: [3], data_offsets: [40, 43] },
      },
      data,
    );
    const { tensors, metadata } = decodeSafetensors(file);
    assert.deepEqual(metadata, { format: 'pt', note: 'hand' });
    assert.deepEqual([...tensors.keys()], ['w', 'h', 'i', 'l', 'u']);
    assert.deepEqual(tensors.get('w'), { dtype: 'F32', shape: [2], data: Float32Array.of(1.5, -0.25) });
    assert.deepEqual(tensors.get('h')?.shape, [2, 3]);
    assert.deepEqual(
      [...(tensors.get('h')?.data ?? [])],
      [1, -2, 0.5, 65504, 2 ** -24, Number.POSITIVE_INFINITY],
    );
    assert.deepEqual(tensors.get('i'), { dtype: 'I32', shape: [], data: Int32Array.of(-7) });
    assert.deepEqual(tensors.get('l'), {
      dtype: 'I64',
      shape: [2, 1],
      data: Float64Array.of(-(2 ** 40), 123),
    });
    assert.deepEqual(tensors.get('u'), { dtype: 'U8', shape: [3], data: Uint8Array.of(0, 128, 255) });
  });

  it('writes the layout the format specifies (header padded with spaces to 8 bytes, data in order)', () => {
    const bytes = encodeSafetensors(
      new Map<string, SafetensorsEntry>([
        ['b', { dtype: 'F32', shape: [1], data: Float32Array.of(2) }],
        ['a', { dtype: 'U8', shape: [2], data: Uint8Array.of(9, 8) }],
      ]),
      { k: 'v' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.equal(
      text.trimEnd(),
      '{"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}',
    );
    assert.match(text, /^[^ ]* *$/);
    assert.deepEqual([...bytes.subarray(8 + n)], [0, 0, 0, 64, 9, 8]);
  });
});

describe('safetensors round trip', () => {
  it('is bit-exact, NaN payloads and −0 included', () => {
    const f = new Float32Array(6);
    const u = new Uint32Array(f.buffer);
    u.set([0x7fc00001, 0xffffffff, 0x80000000, 0x00000001, 0x7f800000, 0x3f800000]);
    const tensors = new Map<string, SafetensorsEntry>([
      ['conv.weight', { dtype: 'F32', shape: [2, 3], data: f }],
      ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
      ['idx', { dtype: 'I32', shape: [3], data: Int32Array.of(-(2 ** 31), 0, 2 ** 31 - 1) }],
      ['big', { dtype: 'I64', shape: [3], data: [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, -1] }],
      ['mask', { dtype: 'U8', shape: [2, 2], data: Uint8Array.of(1, 2, 3, 255) }],
    ]);
    const bytes = encodeSafetensors(tensors, { iter: '34500' });
    const back = decodeSafetensors(bytes);
    assert.deepEqual(back.metadata, { iter: '34500' });
    assert.deepEqual([...back.tensors.keys()], [...tensors.keys()]);
    for (const [name, t] of tensors) {
      const b = back.tensors.get(name);
      assert.ok(b, name);
      assert.equal(b.dtype, t.dtype);
      assert.deepEqual(b.shape, t.shape);
    }
    assert.deepEqual(
      [
        ...new Uint32Array(
          (back.tensors.get('conv.weight')?.data as Float32Array)?.buffer ?? new ArrayBuffer(0),
        ),
      ],
      [...u],
    );
    assert.deepEqual(
      [...(back.tensors.get('big')?.data ?? [])],
      [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, -1],
    );
    assert.deepEqual(encodeSafetensors(back.tensors as Map<string, SafetensorsEntry>, back.metadata), bytes);
  });

  it('writes atomically through a temporary file that is gone afterwards', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'st-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'model.safetensors');
    const tensors = new Map<string, SafetensorsEntry>([
      ['x', { dtype: 'F32', shape: [2], data: Float32Array.of(-0, 3) }],
    ]);
    await writeSafetensors(path, tensors, { a: 'b' });
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
    const back = await readSafetensors(path);
    assert.deepEqual(bytesOf(back.tensors.get('x')?.data as Float32Array), bytesOf(Float32Array.of(-0, 3)));
    // A failing write leaves neither a temporary nor a half-written file.
    await assert.rejects(
      writeSafetensors(path, new Map([['bad', { dtype: 'F16', shape: [1], data: [1] }]])),
      /F16 is read-only/,
    );
    await assert.rejects(writeSafetensors(join(dir, 'missing', 'm.safetensors'), tensors));
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
  });
});

describe('safetensors validation', () => {
  const four = new Uint8Array(4);
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['a file shorter than 8 bytes', new Uint8Array(5), /too short/],
    ['a header longer than the limit', build({}, four, 2n ** 40n), /header length \d+ is too big \(limit/],
    [
      'a header running past the end',
      build({}, four, 1000n),
      /header length 1000 is too big: runs past the end/,
    ],
    [
      'a header that is not JSON',
      (() => {
        const b = build({}, new Uint8Array(0));
        b[8] = 0x20;
        return b;
      })(),
      /must start with|not valid JSON/,
    ],
    [
      'an unknown dtype',
      build({ x: { dtype: 'Q8', shape: [4], data_offsets: [0, 4] } }, four),
      /tensor 'x': unsupported dtype "Q8"/,
    ],
    [
      'a bad shape',
      build({ x: { dtype: 'U8', shape: [-4], data_offsets: [0, 4] } }, four),
      /tensor 'x': shape \[-4\]/,
    ],
    [
      'bad offsets',
      build({ x: { dtype: 'U8', shape: [4], data_offsets: [0] } }, four),
      /tensor 'x': data_offsets \[0\]/,
    ],
    [
      'offsets out of range',
      build({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, four),
      /tensor 'x': data_offsets \[0, 8\] out of range: the data section has 4 bytes/,
    ],
    [
      'begin after end',
      build({ x: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }, four),
      /tensor 'x': .*begin after end/,
    ],
    [
      'a dtype/shape size mismatch',
      build({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, four),
      /tensor 'x': dtype F32 shape \[2\] needs 8 bytes but data_offsets \[0, 4\] span 4/,
    ],
    [
      'overlapping tensors',
      build(
        {
          a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
          b: { dtype: 'U8', shape: [2], data_offsets: [2, 4] },
        },
        four,
      ),
      /tensor 'b': data_offsets \[2, 4\] overlap tensor 'a'/,
    ],
    [
      'a hole in the data',
      build({ a: { dtype: 'U8', shape: [2], data_offsets: [2, 4] } }, four),
      /tensor 'a': .*hole/,
    ],
    [
      'trailing bytes',
      build({ a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, four),
      /data section has 4 bytes but the tensors cover 2/,
    ],
    [
      'non-string metadata',
      build({ __metadata__: { n: 1 } }, new Uint8Array(0)),
      /__metadata__ value for 'n'/,
    ],
    [
      'an I64 beyond 2^53',
      (() => {
        const d = new Uint8Array(8);
        new DataView(d.buffer).setBigInt64(0, 2n ** 60n, true);
        return build({ l: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, d);
      })(),
      /tensor 'l': I64 value/,
    ],
  ];
  for (const [what, bytes, pattern] of cases) {
    it(`rejects ${what}`, () => {
      assert.throws(
        () => decodeSafetensors(bytes, 'x.safetensors'),
        (e: Error) => {
          assert.match(e.message, /^safetensors x\.safetensors: /);
          assert.match(e.message, pattern);
          return true;
        },
      );
    });
  }

  const dirP = mkdtemp(join(tmpdir(), 'st-bad-'));
  afterAll(async () => rm(await dirP, { recursive: true, force: true }));
  it('names the file when reading from disk', async () => {
    const path = join(await dirP, 'broken.safetensors');
    await writeFile(
      path,
      build({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
    );
    await assert.rejects(readSafetensors(path), (e: Error) => {
      assert.ok(e.message.includes(path), e.message);
      assert.match(e.message, /tensor 'w'/);
      return true;
    });
  });

  it('rejects bad input on encode, naming the tensor', () => {
    assert.throws(
      () => encodeSafetensors(new Map([['w', { dtype: 'F32', shape: [3], data: [1, 2] }]])),
      /tensor 'w': 2 values for shape \[3\]/,
    );
    assert.throws(
      () => encodeSafetensors(new Map([['u', { dtype: 'U8', shape: [1], data: [256] }]])),
      /tensor 'u': value 256/,
    );
  });
});
