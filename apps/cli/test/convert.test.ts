import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@segtrain/tensor/testing';
import { afterAll, describe, it } from 'vitest';
import { run } from './helpers.js';

const FIXTURES = join(repoRoot, 'packages/models/test/fixtures/pdparams');
const dir = mkdtempSync(join(tmpdir(), 'segtrain-convert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('segtrain convert', () => {
  it('.pdparams → safetensors → .pdparams → safetensors is bit-exact; --config reports the match', async () => {
    const config = join(
      repoRoot,
      'configs/pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml',
    );
    const first = join(dir, 'first.safetensors');
    const back = join(dir, 'back.pdparams');
    const again = join(dir, 'again.safetensors');
    const a = await run([
      'convert',
      join(FIXTURES, 'pp_liteseg_t.p2.pdparams'),
      '--out',
      first,
      '--config',
      config,
    ]);
    assert.equal(a.code, 0, a.err);
    assert.match(
      a.out,
      /^80\/\d+ variables of PPLiteSeg \(.*\) match the file; \d+ missing, 0 of another shape, 0 unexpected/,
    );
    assert.match(a.out, /Wrote .*first\.safetensors: 80 arrays, [\d,]+ values \(pdparams → safetensors\)/);
    const b = await run(['convert', first, '--out', back]);
    assert.equal(b.code, 0, b.err);
    assert.match(b.out, /\(safetensors → pdparams\)/);
    const c = await run(['convert', back, '--to', 'safetensors', '--out', again]);
    assert.equal(c.code, 0, c.err);
    // The metadata names the source file, so compare the tensor bytes after the header.
    const body = (path: string) => {
      const bytes = readFileSync(path);
      return bytes.subarray(8 + Number(bytes.readBigUInt64LE(0)));
    };
    assert.ok(body(first).equals(body(again)));
  });

  it('the archive PaddleSeg releases converts too', async () => {
    const out = join(dir, 'stdc1.safetensors');
    const r = await run(['convert', join(FIXTURES, 'PP_STDCNet1.tar.gz'), '--out', out]);
    assert.equal(r.code, 0, r.err);
    assert.ok(existsSync(out));
  });

  it('bad input is an error naming the file or flag, and nothing is written', async () => {
    const missing = await run(['convert', join(dir, 'nope.pdparams'), '--out', join(dir, 'x.safetensors')]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /nope\.pdparams' does not exist/);
    const wrongExt = await run([
      'convert',
      join(FIXTURES, 'pp_liteseg_t.p4.pdparams'),
      '--out',
      join(dir, 'x.bin'),
    ]);
    assert.equal(wrongExt.code, 2);
    assert.match(wrongExt.err, /--out '.*x\.bin' must end in \.safetensors/);
    const shape = await run([
      'convert',
      join(FIXTURES, 'segformer_b0.p4.pdparams'),
      '--out',
      join(dir, 'y.safetensors'),
      '--config',
      join(repoRoot, 'configs/pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml'),
    ]);
    assert.equal(shape.code, 0, 'other keys are reported, not fatal');
    assert.match(shape.out, / unexpected: backbone\./);
    assert.ok(!existsSync(join(dir, 'x.safetensors')));
  });
});
