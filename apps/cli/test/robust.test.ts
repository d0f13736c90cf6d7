/** What `segtrain train` does with two runs at once, signals, bad flags, bad paths and bad files. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, it } from 'vitest';
import { killChildren, run, startCli, tinyProject } from './helpers.js';

let config = '';
let root = '';

beforeAll(async () => {
  const project = await tinyProject();
  config = project.config;
  root = mkdtempSync(join(project.dir, 'robust-'));
});

afterEach(killChildren);

/** One line on stderr, no stack trace. */
function oneLine(err: string): string {
  assert.equal(err.trimEnd().split('\n').length, 1, `one line: ${err}`);
  assert.doesNotMatch(err, /^\s+at /m);
  return err.trimEnd();
}

const longRun = (saveDir: string) => [
  'train',
  '--config',
  config,
  '--iters',
  '1000',
  '--save_interval',
  '1000',
  '--log_iters',
  '1',
  '--save_dir',
  saveDir,
];

describe('signals and a shared save_dir', () => {
  it('a second run on a busy save_dir fails naming the holder; SIGTERM saves, names the resume and exits 143', async () => {
    const saveDir = join(root, 'busy');
    const first = startCli(longRun(saveDir));
    await first.waitFor(/\[TRAIN\] epoch: \d+, iter: 1\/1000/);
    const second = await run(['train', '--config', config, '--iters', '2', '--save_dir', saveDir]);
    assert.equal(second.code, 1);
    assert.match(
      oneLine(second.err),
      new RegExp(
        `^segtrain train: save_dir ${saveDir} is in use by another training run: pid ${first.child.pid} on ${hostname()}, started `,
      ),
    );
    first.child.kill('SIGTERM');
    const done = await first.done;
    assert.equal(done.code, 143, done.err);
    const iter = Number(/interrupted at iter (\d+); resume with --resume_model (\S+)/.exec(done.out)?.[1]);
    assert.ok(iter >= 1, done.out);
    const checkpoint = join(saveDir, `iter_${iter}`);
    assert.ok(done.out.includes(`interrupted at iter ${iter}; resume with --resume_model ${checkpoint}\n`));
    assert.equal(JSON.parse(readFileSync(join(checkpoint, 'train_state.json'), 'utf8')).interrupted, true);
    assert.deepEqual(
      readdirSync(saveDir).sort(),
      [`iter_${iter}`, 'training.html'],
      'no lock, no temp directory',
    );
  });

  it('SIGINT twice exits at once with 130; the next run takes the stale lock over', async () => {
    const saveDir = join(root, 'twice');
    const first = startCli(longRun(saveDir));
    await first.waitFor(/\[TRAIN\] epoch: \d+, iter: 1\/1000/);
    first.child.kill('SIGINT');
    // Two signals sent back to back can merge into one: the second goes after the first is seen.
    await first.waitFor(/SIGINT: finishing this iteration/);
    first.child.kill('SIGINT');
    const done = await first.done;
    assert.equal(done.code, 130);
    assert.doesNotMatch(done.out, /interrupted at iter/);
    const next = await run(['train', '--config', config, '--iters', '1', '--save_dir', saveDir]);
    assert.equal(next.code, 0, next.err);
    assert.match(
      next.out,
      new RegExp(`Taking over the lock .*: its run \\(pid ${first.child.pid}, started `),
    );
  });
});

describe('checks before the first step', () => {
  it('rejects save_interval, log_iters, iters and batch_size below 1 naming the flag, exit 2', async () => {
    for (const [flag, value] of [
      ['--save_interval', '0'],
      ['--save_interval', '-2'],
      ['--log_iters', '0'],
      ['--iters', '0'],
      ['--batch_size', '0'],
      ['--num_workers', '-1'],
    ] as const) {
      const r = await run(['train', '--config', config, flag, value]);
      assert.equal(r.code, 2, `${flag} ${value}`);
      assert.match(
        r.err,
        new RegExp(
          `^segtrain train: option '${flag} <N>' argument '${value}' is invalid\\. expected a value ≥ `,
        ),
      );
    }
  });

  it('a bad --save_dir fails in one line before any training: a file, a path under a file, /proc', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    for (const [saveDir, reason] of [
      [file, `${file} is a file, not a directory`],
      [join(file, 'sub'), `${file} is a file, not a directory`],
      ['/proc/segtrain-x', 'cannot create /proc/segtrain-x: '],
    ] as const) {
      const r = await run(['train', '--config', config, '--iters', '2', '--save_dir', saveDir]);
      assert.equal(r.code, 1, saveDir);
      assert.ok(oneLine(r.err).startsWith(`segtrain train: save_dir ${saveDir}: ${reason}`), r.err);
      assert.doesNotMatch(r.out, /\[TRAIN\]/);
    }
  });
});

describe('one-line errors', () => {
  it('a corrupt model file, an invalid train_state.json and a directory named like a config', async () => {
    const bad = join(root, 'bad.safetensors');
    writeFileSync(bad, Buffer.from([1, 2, 3]));
    const val = await run(['val', '--config', config, '--model_path', bad]);
    assert.equal(val.code, 1);
    assert.match(oneLine(val.err), /^segtrain val: safetensors .*bad\.safetensors: 3 bytes is too short/);

    const ckpt = join(root, 'iter_5');
    mkdirSync(ckpt);
    for (const f of ['model.safetensors', 'optimizer.safetensors']) writeFileSync(join(ckpt, f), '');
    writeFileSync(join(ckpt, 'train_state.json'), '{"version": 1');
    const resumed = await run([
      'train',
      '--config',
      config,
      '--resume_model',
      ckpt,
      '--save_dir',
      join(root, 'r'),
    ]);
    assert.equal(resumed.code, 1);
    assert.match(oneLine(resumed.err), /train_state\.json is not valid JSON .*; resume from another iter_N$/);

    const dirConfig = join(root, 'x.yml');
    mkdirSync(dirConfig);
    const shown = await run(['config', 'show', dirConfig]);
    assert.equal(shown.code, 1);
    assert.match(shown.err, /x\.yml: config file is a directory, not a config file/);
  });

  it('--config followed by another flag is a missing value, not a path named --iters', async () => {
    const r = await run(['train', '--config', '--iters', '2']);
    assert.equal(r.code, 2);
    assert.match(
      r.err,
      /^segtrain train: option '--config <FILE>' argument '--iters' is invalid\. expected a value, got the flag '--iters'/,
    );
  });

  it('data demo writes its dataset with the mode of any new directory, not 0700', async () => {
    const out = join(root, 'demo-mode');
    const r = await run([
      'data',
      'demo',
      '--out',
      out,
      '--train',
      '1',
      '--val',
      '1',
      '--width',
      '32',
      '--height',
      '16',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(statSync(out).mode & 0o777, 0o777 & ~process.umask());
  });
});
