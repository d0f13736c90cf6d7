import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paddlesegConfig } from '@segtrain/tensor/testing';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { ConfigError, loadConfig, loadRawMerged, parseOptValue } from '../src/index.js';
import { findInvalidUtf8 } from '../src/utf8.js';
import { writeConfigs } from './helpers.js';

/** Runs `fn`, which must throw a ConfigError, and returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError, nothing was thrown');
}

describe('YAML syntax errors name file:line:column and show the line', () => {
  it('in a _base_ file: names the base file (not the child), line, column, the line and a caret', () => {
    const dir = writeConfigs({
      'child.yml': '_base_: _base_/cityscapes.yml\nbatch_size: 2\n',
      '_base_/cityscapes.yml':
        'batch_size: 4\ntrain_dataset:\n  type: Cityscapes\n  dataset_root: data/cityscapes: x\n',
    });
    const base = join(dir, '_base_/cityscapes.yml');
    const error = configError(() => loadRawMerged(join(dir, 'child.yml')));
    assert.deepEqual(error.origin, { file: base, line: 4, column: 17 });
    assert.equal(
      error.message,
      [
        `${base}:4:17: invalid YAML: Nested mappings are not allowed in compact mappings`,
        '  4 |   dataset_root: data/cityscapes: x',
        '    |                 ^',
      ].join('\n'),
    );
    assert.ok(!error.message.includes('child.yml'), error.message);
  });

  it('an unclosed [ in a _base_ file points at the bracket and says where it was still open', () => {
    const dir = writeConfigs({
      'configs/child.yml': '_base_: ../base/model.yml\n',
      'base/model.yml': 'model:\n  type: PPLiteSeg\n  backbone_indices: [2, 3\nlr: 1\n',
    });
    const base = join(dir, 'base/model.yml');
    const error = configError(() => loadRawMerged(join(dir, 'configs/child.yml')));
    assert.deepEqual(error.origin, { file: base, line: 3, column: 21 });
    const [first, ...excerpt] = error.message.split('\n');
    assert.ok(first?.startsWith(`${base}:3:21: invalid YAML: Flow sequence`), error.message);
    assert.ok(first?.endsWith("; the '[' here is still open at line 4, column 1"), error.message);
    assert.deepEqual(excerpt, ['  3 |   backbone_indices: [2, 3', '    |                     ^']);
  });

  it('an unclosed [ at the end of the top file', () => {
    const dir = writeConfigs({ 'bad.yml': 'batch_size: 2\nmodel:\n  type: [unclosed\n' });
    const error = configError(() => loadRawMerged(join(dir, 'bad.yml')));
    assert.deepEqual(error.origin, { file: join(dir, 'bad.yml'), line: 3, column: 9 });
    assert.ok(error.message.includes("the '[' here is still open at the end of the file"), error.message);
    assert.ok(error.message.endsWith('\n  3 |   type: [unclosed\n    |         ^'), error.message);
  });

  it('an outer [ left open at the very end of the file, after a closed inner one', () => {
    const dir = writeConfigs({ 'eof.yml': 'a: 1\nb: [[1, 2]' });
    const error = configError(() => loadRawMerged(join(dir, 'eof.yml')));
    assert.deepEqual(error.origin, { file: join(dir, 'eof.yml'), line: 2, column: 4 });
    assert.ok(error.message.includes("the '[' here is still open at the end of the file"), error.message);
  });

  it('bad indentation in the top file: the line before is shown when the error is at a line start', () => {
    const dir = writeConfigs({ 'top.yml': 'model:\n  type: PPLiteSeg\n backbone: x\n' });
    const file = join(dir, 'top.yml');
    const error = configError(() => loadRawMerged(file));
    assert.equal(
      error.message,
      [
        `${file}:3:1: invalid YAML: All mapping items must start at the same column`,
        '  2 |   type: PPLiteSeg',
        '  3 |  backbone: x',
        '    | ^',
      ].join('\n'),
    );
  });

  it('an unclosed quote points at the opening quote', () => {
    const dir = writeConfigs({ 'q.yml': 'a: 1\nb: "data/x\nc: 2\n' });
    const error = configError(() => loadRawMerged(join(dir, 'q.yml')));
    assert.deepEqual(error.origin, { file: join(dir, 'q.yml'), line: 2, column: 4 });
    assert.ok(error.message.includes('Missing closing "quote'), error.message);
    assert.ok(error.message.endsWith('\n  2 | b: "data/x\n    |    ^'), error.message);
  });

  it('a second YAML document is named as such, at its --- line', () => {
    const dir = writeConfigs({ 'two.yml': 'a: 1\n---\nb: 2\n' });
    const error = configError(() => loadRawMerged(join(dir, 'two.yml')));
    assert.deepEqual(error.origin, { file: join(dir, 'two.yml'), line: 2, column: 1 });
    assert.ok(error.message.includes('must hold one YAML document'), error.message);
  });
});

describe('config files must be UTF-8', () => {
  it('an invalid byte in the top file names the file, line and byte offset', () => {
    const dir = writeConfigs({});
    const file = join(dir, 'bad.yml');
    writeFileSync(file, Buffer.concat([Buffer.from('model:\n  type: PPLiteSeg\n'), Buffer.from([0xff])]));
    const error = configError(() => loadRawMerged(file));
    assert.deepEqual(error.origin, { file, line: 3 });
    assert.ok(
      error.message.startsWith(
        `${file}:3: not valid UTF-8: byte 0xff at byte offset 25 (invalid start byte)`,
      ),
      error.message,
    );
  });

  it('an invalid byte in a _base_ file names the base file', () => {
    const dir = writeConfigs({ 'child.yml': 'batch_size: 2\n_base_: base.yml\n' });
    const base = join(dir, 'base.yml');
    // 'café' written in Latin-1: 0xe9 followed by a newline is not a continuation byte.
    const text = 'model:\n  type: PPLiteSeg\n  num_classes: 19\ndata: caf';
    writeFileSync(base, Buffer.concat([Buffer.from(text), Buffer.from([0xe9, 0x0a])]));
    const error = configError(() => loadRawMerged(join(dir, 'child.yml')));
    assert.equal(text.length, 52);
    assert.deepEqual(error.origin, { file: base, line: 4 });
    assert.ok(
      error.message.startsWith(
        `${base}:4: not valid UTF-8: byte 0xe9 at byte offset 52 (invalid continuation byte)`,
      ),
      error.message,
    );
    assert.ok(!error.message.includes('child.yml'), error.message);
  });

  it('a sequence cut off by the end of the file, and a UTF-16 file', () => {
    const dir = writeConfigs({});
    const cut = join(dir, 'cut.yml');
    writeFileSync(cut, Buffer.concat([Buffer.from('a: é\nb: '), Buffer.from([0xe2, 0x82])]));
    assert.ok(
      configError(() => loadRawMerged(cut)).message.includes(
        'byte 0xe2 at byte offset 9 (unexpected end of data)',
      ),
    );
    const utf16 = join(dir, 'utf16.yml');
    writeFileSync(utf16, Buffer.from('\ufeffa: 1\n', 'utf16le'));
    const error = configError(() => loadRawMerged(utf16));
    assert.ok(error.message.includes('byte 0xff at byte offset 0 (invalid start byte)'), error.message);
    assert.ok(error.message.includes('looks UTF-16 encoded'), error.message);
  });

  it('a UTF-8 BOM is accepted and dropped, in the top file and in a base', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const dir = writeConfigs({});
    writeFileSync(join(dir, 'base.yml'), Buffer.concat([bom, Buffer.from('model:\n  type: PPLiteSeg\n')]));
    writeFileSync(
      join(dir, 'child.yml'),
      Buffer.concat([bom, Buffer.from('_base_: base.yml\nname: café\n')]),
    );
    assert.deepEqual(loadRawMerged(join(dir, 'child.yml')), { model: { type: 'PPLiteSeg' }, name: 'café' });
  });

  it('findInvalidUtf8 agrees with a fatal TextDecoder on any bytes', () => {
    const decodes = (bytes: Uint8Array): boolean => {
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        return true;
      } catch {
        return false;
      }
    };
    // Bytes biased towards the interesting ranges: ASCII, continuation bytes and lead bytes.
    const byte = fc.oneof(
      fc.integer({ min: 0x00, max: 0x7f }),
      fc.integer({ min: 0x80, max: 0xbf }),
      fc.integer({ min: 0xc0, max: 0xff }),
    );
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 12 }), (array) => {
        const bytes = Uint8Array.from(array);
        const problem = findInvalidUtf8(bytes);
        assert.equal(problem === undefined, decodes(bytes));
        // Everything before the reported offset is valid, so it really is the first bad sequence.
        if (problem) assert.ok(decodes(bytes.subarray(0, problem.offset)));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('--opts takes a bare tuple as a list, as ast.literal_eval does', () => {
  const cases: Array<[string, unknown]> = [
    ['0.75,1.0,1.25', [0.75, 1.0, 1.25]],
    ['1,', [1]],
    ['1, 2,', [1, 2]],
    [' 512 , 512 ', [512, 512]],
    ['-1,2', [-1, 2]],
    ["'a','b'", ['a', 'b']],
    ["(1,2),'x'", [[1, 2], 'x']],
    ['(1),', [1]],
    ['None,True', [null, true]],
    ['a,b', 'a,b'],
    ['1,a', '1,a'],
    ['data/a,b', 'data/a,b'],
    ['1,,2', '1,,2'],
    [',1', ',1'],
    [',', ','],
    ['1,\n2', '1,\n2'], // outside brackets Python does not join lines
  ];
  for (const [text, expected] of cases)
    it(`${JSON.stringify(text)} -> ${JSON.stringify(expected)}`, () =>
      assert.deepEqual(parseOptValue(text), expected));

  it('test_config.scales=0.75,1.0,1.25 sets a list in the merged config', () => {
    const dir = writeConfigs({
      'base.yml': 'test_config:\n  aug_eval: True\n  scales: 1.0\n',
      'c.yml': '_base_: base.yml\nbatch_size: 2\n',
    });
    const raw = loadRawMerged(join(dir, 'c.yml'), { opts: ['test_config.scales=0.75,1.0,1.25'] });
    assert.deepEqual(raw.test_config, { aug_eval: true, scales: [0.75, 1.0, 1.25] });
  });

  it('the list reaches the typed config', () => {
    const seed = paddlesegConfig('pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml');
    const config = loadConfig(seed, { opts: ['test_config.scales=0.75,1.0,1.25'] });
    assert.deepEqual(config.test_config.scales, [0.75, 1.0, 1.25]);
  });
});
