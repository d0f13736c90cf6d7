import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import {
  crc32c,
  decodeEvent,
  EventWriter,
  encodeEvent,
  frameRecord,
  maskedCrc32c,
  readEvents,
} from '../src/tensorboard.js';

const root = mkdtempSync(join(tmpdir(), 'segtrain-tb-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `run${dirCount++}`);

const ascii = (s: string) => new TextEncoder().encode(s);

describe('CRC32C', () => {
  it('known vectors', () => {
    assert.equal(crc32c(ascii('123456789')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    // RFC 3720 B.4: 32 bytes of zeros / ones.
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  });

  it('mask is the TFRecord rotate-and-add', () => {
    const crc = 0xe3069283;
    const expected = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) % 2 ** 32;
    assert.equal(maskedCrc32c(ascii('123456789')), expected);
  });
});

describe('protobuf encoding', () => {
  it('encodes the file-version event byte for byte', () => {
    const bytes = encodeEvent({ wallTime: 1.5, step: 0, fileVersion: 'brain.Event:2' });
    // field 1 fixed64 (0x09) + 1.5 LE, field 3 length-delimited (0x1a) len 13.
    assert.deepEqual(Array.from(bytes.subarray(0, 11)), [0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x1a, 13]);
    assert.equal(new TextDecoder().decode(bytes.subarray(11)), 'brain.Event:2');
  });

  it('encodes a scalar event with varint step and float32 simple_value', () => {
    const bytes = encodeEvent({ wallTime: 0, step: 300, summary: [{ tag: 'a', simpleValue: 1 }] });
    const expected = [
      [0x09, 0, 0, 0, 0, 0, 0, 0, 0], // wall_time 0
      [0x10, 0xac, 0x02], // step 300
      [0x2a, 10], // summary, 10 bytes
      [0x0a, 8], // value, 8 bytes
      [0x0a, 1, 0x61], // tag 'a'
      [0x15, 0, 0, 0x80, 0x3f], // simple_value 1.0f
    ];
    assert.deepEqual(Array.from(bytes), expected.flat());
  });

  it('round-trips large and negative int64 steps', () => {
    for (const step of [1, 127, 128, 2 ** 40 + 3, -1]) {
      assert.equal(decodeEvent(encodeEvent({ wallTime: 2, step })).step, step);
    }
  });

  it('frames records with length, masked CRCs and data', () => {
    const data = ascii('hello');
    const rec = frameRecord(data);
    const v = new DataView(rec.buffer);
    assert.equal(rec.length, 5 + 16);
    assert.equal(v.getBigUint64(0, true), 5n);
    assert.equal(v.getUint32(8, true), maskedCrc32c(rec.subarray(0, 8)));
    assert.deepEqual(rec.subarray(12, 17), data);
    assert.equal(v.getUint32(17, true), maskedCrc32c(data));
  });
});

describe('EventWriter / readEvents', () => {
  it('names the file events.out.tfevents.<seconds>.<hostname> and round-trips scalars', () => {
    const dir = freshDir();
    let t = 1_700_000_000_250;
    const w = new EventWriter(dir, { now: () => t });
    assert.equal(basename(w.path), `events.out.tfevents.1700000000.${hostname()}`);
    w.scalar('Train/loss', 2.9012, 10);
    t += 1500;
    w.scalar('Train/lr', 0.000055, 10);
    w.flush();
    w.scalar('Evaluate/mIoU', 0.4012, 1000);
    w.close();
    w.close(); // idempotent
    assert.throws(() => w.scalar('x', 1, 1), /closed/);

    const events = readEvents(w.path);
    assert.equal(events.length, 4);
    assert.deepEqual(events[0], { wallTime: 1_700_000_000.25, step: 0, fileVersion: 'brain.Event:2' });
    assert.equal(events[1]?.step, 10);
    assert.equal(events[1]?.wallTime, 1_700_000_000.25);
    assert.deepEqual(events[1]?.summary, [{ tag: 'Train/loss', simpleValue: Math.fround(2.9012) }]);
    assert.equal(events[2]?.wallTime, 1_700_000_001.75);
    assert.deepEqual(events[2]?.summary, [{ tag: 'Train/lr', simpleValue: Math.fround(0.000055) }]);
    assert.deepEqual(events[3]?.summary, [{ tag: 'Evaluate/mIoU', simpleValue: Math.fround(0.4012) }]);
    assert.equal(events[3]?.step, 1000);
  });

  it('appends to an existing file instead of truncating it', () => {
    const dir = freshDir();
    const a = new EventWriter(dir, { now: () => 5_000 });
    a.scalar('x', 1, 1);
    a.close();
    const b = new EventWriter(dir, { now: () => 5_000 });
    b.scalar('x', 2, 2);
    b.close();
    assert.deepEqual(readdirSync(dir), [`events.out.tfevents.0000000005.${hostname()}`]);
    assert.equal(readEvents(a.path).length, 4);
  });

  it('detects a corrupted data byte, a corrupted length and a truncated tail', () => {
    const dir = freshDir();
    const w = new EventWriter(dir, { filenameSuffix: '.x' });
    w.scalar('Train/loss', 1.25, 1);
    w.close();
    const good = readFileSync(w.path);
    assert.equal(readEvents(w.path).length, 2);

    const flipData = Buffer.from(good);
    flipData[good.length - 8] = (flipData[good.length - 8] as number) ^ 0x01; // inside the last record's data
    writeFileSync(w.path, flipData);
    assert.throws(() => readEvents(w.path), /data CRC mismatch/);

    const flipLen = Buffer.from(good);
    flipLen[0] = (flipLen[0] as number) ^ 0x04;
    writeFileSync(w.path, flipLen);
    assert.throws(() => readEvents(w.path), /length CRC mismatch/);

    writeFileSync(w.path, good.subarray(0, good.length - 3));
    assert.throws(() => readEvents(w.path), /truncated/);
  });
});

const TB_PY = `
import sys, json
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1])
acc.Reload()
out = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}
print(json.dumps(out))
`;

const hasTensorboard =
  spawnSync('python3', ['-c', 'import tensorboard.backend.event_processing.event_accumulator'], {
    stdio: 'ignore',
  }).status === 0;

describe('TensorBoard reads the file (skipped without python3 tensorboard)', {
  skip: !hasTensorboard,
}, () => {
  it('EventAccumulator sees the scalars', () => {
    const dir = freshDir();
    const w = new EventWriter(dir);
    w.scalar('Train/loss', 0.5, 10);
    w.scalar('Train/loss', 0.25, 20);
    w.scalar('Evaluate/mIoU', 0.75, 20);
    w.close();
    const r = spawnSync('python3', ['-c', TB_PY, dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      'Train/loss': [
        [10, 0.5],
        [20, 0.25],
      ],
      'Evaluate/mIoU': [[20, 0.75]],
    });
  });
});
