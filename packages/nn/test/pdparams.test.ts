import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import {
  decodePdparams,
  encodePdparams,
  type HostTensor,
  loadStateFile,
  PdparamsError,
  pdparamsFromArchive,
  readPdparams,
  saveStateFile,
} from '../src/index.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const dir = mkdtempSync(join(tmpdir(), 'segtrain-pdparams-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Values that catch any rounding: signed zero, subnormals, NaN payloads, extremes. */
function awkwardFloats(n: number, seed: number): Float32Array {
  const raw = new Uint32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    raw[i] = s;
  }
  raw.set([0x80000000, 0x00000001, 0x7fc00001, 0x7f7fffff, 0xff800000].slice(0, n));
  return new Float32Array(raw.buffer);
}

describe('reading what paddle.save writes (fixtures made by Python pickle + numpy)', () => {
  for (const protocol of [2, 3, 4]) {
    it(`protocol ${protocol}: every array form, Paddle's name table and big-tensor slices`, async () => {
      const file = await readPdparams(join(FIXTURES, `features.p${protocol}.pdparams`));
      const t = (name: string) => {
        const v = file.tensors.get(name);
        assert.ok(v, `${name} is missing`);
        return v;
      };
      assert.deepEqual(t('fortran').shape, [2, 3]);
      assert.deepEqual(
        [...t('fortran').data],
        [0, 1, 2, 3, 4, 5].map((v) => v / 8),
        'Fortran order becomes C order',
      );
      assert.equal(t('float64').dtype, 'float64');
      assert.deepEqual([...t('float64').data], [1.5, -2.25, Math.fround(1e-3)]);
      assert.deepEqual([...t('float16').data], [0.5, -3, 65504]);
      assert.equal(t('int64').dtype, 'int64');
      assert.deepEqual([...t('int64').data], [3, -7, 2 ** 40, 0]);
      assert.deepEqual(t('scalar0d').shape, []);
      assert.deepEqual([...t('scalar0d').data], [2.5]);
      assert.deepEqual(t('empty').shape, [0, 3]);
      assert.deepEqual([...t('tuple_form').data], [1, 2], "Paddle 2.1's (name, array)");
      assert.deepEqual([...t('lod_form').data], [4], "LoDTensor's eval('data', ...)");
      assert.deepEqual(t('big').shape, [2, 5], 'UnpackBigParamInfor@@ slices are joined');
      assert.deepEqual(
        [...t('big').data],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((v) => v / 4),
      );
      assert.ok(!file.tensors.has('big@@.0'));
      assert.equal(file.nameTable.get('fortran'), 'conv2d_0.w_0');
      assert.ok(!file.tensors.has('StructuredToParameterName@@'));
      const lr = file.other.get('LR_Scheduler');
      assert.ok(lr instanceof Map);
      assert.deepEqual(
        [...lr],
        [
          ['last_epoch', 3],
          ['last_lr', 0.0025],
        ],
      );
    });
  }
});

describe('writing .pdparams', () => {
  it('encode → decode is bit-exact, shapes and order kept (and over 1000 keys: batched SETITEMS)', () => {
    const values = new Map<string, HostTensor>();
    for (let k = 0; k < 1003; k++)
      values.set(`layer${k}.weight`, { shape: [k % 3, 2], data: awkwardFloats((k % 3) * 2, k) });
    values.set('big', { shape: [70, 5], data: awkwardFloats(350, 7) });
    values.set('scalar', { shape: [], data: Float32Array.of(-0) });
    const back = decodePdparams(encodePdparams(values), 'mem');
    assert.deepEqual([...back.tensors.keys()], [...values.keys()]);
    for (const [name, v] of values) {
      const got = back.tensors.get(name);
      assert.ok(got && got.data instanceof Float32Array);
      assert.deepEqual(got.shape, v.shape, name);
      assert.deepEqual(bits(got.data), bits(v.data), name);
    }
  });

  it('safetensors → pdparams → safetensors is bit-exact on disk', async () => {
    const values = new Map<string, HostTensor>([
      ['backbone.conv.weight', { shape: [4, 3, 3, 3], data: awkwardFloats(108, 1) }],
      ['backbone.bn._mean', { shape: [4], data: awkwardFloats(4, 2) }],
    ]);
    const a = join(dir, 'a.safetensors');
    const p = join(dir, 'a.pdparams');
    const b = join(dir, 'b.safetensors');
    await saveStateFile(a, values);
    await saveStateFile(p, (await loadStateFile(a)).values);
    await saveStateFile(b, (await loadStateFile(p)).values);
    const back = (await loadStateFile(b)).values;
    for (const [name, v] of values)
      assert.deepEqual(bits(back.get(name)?.data as Float32Array), bits(v.data));
    assert.ok(!readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temporary left behind');
  });

  const python = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  it.skipIf(python.status !== 0)('Python pickle + numpy read our file as the same float32 arrays', () => {
    const path = join(dir, 'py.pdparams');
    const data = Float32Array.of(1.5, -0, 3.25e-39, 7);
    writeFileSync(path, encodePdparams(new Map([['w', { shape: [2, 2], data }]])));
    const out = execFileSync(
      'python3',
      [
        '-c',
        'import pickle,sys,numpy as np; d=pickle.load(open(sys.argv[1],"rb")); a=d["w"]; ' +
          'print(a.dtype, a.shape, a.view(np.uint32).ravel().tolist())',
        path,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(out.trim(), `float32 (2, 2) [${bits(data).join(', ')}]`);
  });
});

describe('refusing what is not a state dict', () => {
  const refused = (bytes: number[] | Uint8Array, pattern: RegExp) =>
    assert.throws(
      () => decodePdparams(Uint8Array.from(bytes), 'evil.pdparams'),
      (e: unknown) => {
        assert.ok(e instanceof PdparamsError);
        assert.match(e.message, /^evil\.pdparams: /);
        assert.match(e.message, pattern);
        return true;
      },
    );
  const text = (s: string) => [...new TextEncoder().encode(s)];

  it('a foreign global (protocol 2 GLOBAL) is an error naming it; nothing is called', () => {
    // {'x': os.system('true')}
    refused(
      [
        0x80,
        2,
        0x7d,
        ...text('X'),
        1,
        0,
        0,
        0,
        ...text('x'),
        ...text('cos\nsystem\n'),
        ...text('X'),
        4,
        0,
        0,
        0,
        ...text('true'),
        0x85,
        0x52,
        0x73,
        0x2e,
      ],
      /refusing the pickle global os\.system/,
    );
  });
  it('a foreign global (protocol 4 STACK_GLOBAL) is an error naming it', () => {
    refused(
      [0x80, 4, 0x8c, 5, ...text('posix'), 0x8c, 6, ...text('system'), 0x93, 0x2e],
      /refusing the pickle global posix\.system/,
    );
  });
  it("builtins.eval other than Paddle's eval('data', {'data': x}) is refused", () => {
    // eval('1+1 or 2', {})
    const code = text('1+1 or 2');
    refused(
      [
        0x80,
        2,
        ...text('c__builtin__\neval\n'),
        ...text('X'),
        code.length,
        0,
        0,
        0,
        ...code,
        0x7d,
        0x86,
        0x52,
        0x2e,
      ],
      /builtins\.eval other than/,
    );
  });
  it('a truncated file, another root type and an unknown opcode name the problem', () => {
    const good = encodePdparams(new Map([['w', { shape: [3], data: Float32Array.of(1, 2, 3) }]]));
    refused(good.subarray(0, good.length - 10), /truncated/);
    refused([0x80, 2, 0x4b, 7, 0x2e], /holds a number, not a dict of arrays/);
    refused([0x80, 2, 0x7d, 0x99, 0x2e], /opcode 0x99/);
  });
});

describe('PaddleSeg archives', () => {
  it('finds <dir>/model.pdparams in a .tar.gz made by Python tarfile', () => {
    const archive = readFileSync(
      join(import.meta.dirname, '../../models/test/fixtures/pdparams/PP_STDCNet1.tar.gz'),
    );
    const pickle = pdparamsFromArchive(new Uint8Array(archive), 'PP_STDCNet1.tar.gz');
    assert.ok(decodePdparams(pickle).tensors.size > 10);
    assert.throws(
      () => pdparamsFromArchive(new Uint8Array(1024), 'empty.tar'),
      /empty\.tar: no model\.pdparams in the archive/,
    );
  });
});
