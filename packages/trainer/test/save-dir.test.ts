import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { readTrainState } from '../src/checkpoint.js';
import {
  CheckpointError,
  describeFileError,
  LOCK_FILE,
  latestCheckpoint,
  openSaveDir,
  recoverSaveDir,
  SaveDirError,
} from '../src/index.js';

const fresh = (name: string) => mkdtempSync(join(tmpdir(), `segtrain-savedir-${name}-`));

/** A directory with the files of a complete checkpoint (contents do not matter to the layout checks). */
function fakeCheckpoint(
  dir: string,
  files = ['model.safetensors', 'optimizer.safetensors', 'train_state.json'],
) {
  mkdirSync(dir, { recursive: true });
  for (const f of files) writeFileSync(join(dir, f), '{}');
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(child.stdout);
}

describe('save_dir lock', () => {
  it('a second run on a locked save_dir fails naming the holder; release frees it', () => {
    const dir = fresh('lock');
    const lock = openSaveDir(dir, () => undefined);
    const holder = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    assert.deepEqual([holder.pid, holder.host], [process.pid, hostname()]);
    assert.throws(
      () => openSaveDir(dir, () => undefined),
      (e: unknown) =>
        e instanceof SaveDirError &&
        e.message.includes(`is in use by another training run: pid ${process.pid} on ${hostname()}`) &&
        e.message.includes('pass another --save_dir'),
    );
    lock.release();
    assert.equal(existsSync(join(dir, LOCK_FILE)), false);
    openSaveDir(dir, () => undefined).release();
  });

  it('takes over a stale lock left by a dead process on this host, saying so', () => {
    const dir = fresh('stale');
    const pid = deadPid();
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid, host: hostname(), started: '2026-01-01T00:00:00Z', command: 'x' }),
    );
    const lines: string[] = [];
    const lock = openSaveDir(dir, (l) => lines.push(l));
    assert.ok(
      lines.some((l) => l.includes(`Taking over the lock`) && l.includes(`pid ${pid}`)),
      lines.join('\n'),
    );
    assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
    lock.release();
  });

  it("never takes another host's lock: it names the file to delete if that run is gone", () => {
    const dir = fresh('remote');
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid: 1, host: 'other-node', started: 's', command: 'segtrain train' }),
    );
    assert.throws(
      () => openSaveDir(dir, () => undefined),
      (e: unknown) =>
        e instanceof SaveDirError && e.message.includes('other-node') && e.message.includes(`delete ${dir}`),
    );
  });
});

describe('save_dir checks before the first step', () => {
  it('creates missing parents; a file in the way is one line naming the path', () => {
    const root = fresh('bad');
    const made = join(root, 'a', 'b', 'c');
    openSaveDir(made, () => undefined).release();
    assert.ok(existsSync(made));
    const file = join(root, 'file');
    writeFileSync(file, 'x');
    for (const target of [file, join(file, 'under')])
      assert.throws(
        () => openSaveDir(target, () => undefined),
        (e: unknown) =>
          e instanceof SaveDirError &&
          e.message ===
            `save_dir ${target}: ${file} is a file, not a directory. Pass a directory as --save_dir`,
      );
  });

  it('a save_dir the kernel refuses (/proc) fails at once instead of spinning', () => {
    assert.throws(
      () => openSaveDir('/proc/segtrain-no-such/out', () => undefined),
      (e: unknown) =>
        e instanceof SaveDirError &&
        /^save_dir \/proc\/segtrain-no-such\/out: cannot create \/proc\/segtrain-no-such: .+ \(E[A-Z]+\)\. Pass a writable directory as --save_dir$/.test(
          e.message,
        ),
    );
  });

  it('file-system errors become one line with the path, reason and code', () => {
    const error = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      syscall: 'write',
      path: '/data/out/iter_4.tmp-9/model.safetensors',
    });
    assert.equal(
      describeFileError(error),
      'cannot write /data/out/iter_4.tmp-9/model.safetensors: no space left on device (ENOSPC)',
    );
    assert.equal(describeFileError(new Error('plain')), null);
  });
});

describe('recovery after an interrupted run', () => {
  it('restores a half-replaced checkpoint and removes temps, half-deletions and incomplete checkpoints', () => {
    const dir = fresh('recover');
    fakeCheckpoint(join(dir, 'iter_2'));
    fakeCheckpoint(join(dir, 'iter_4.tmp-123'));
    fakeCheckpoint(join(dir, 'best_model.old-55'), ['model.safetensors', 'eval.json']);
    fakeCheckpoint(join(dir, 'best_model.tmp-55'), ['model.safetensors']);
    fakeCheckpoint(join(dir, 'iter_6'), ['model.safetensors']);
    fakeCheckpoint(join(dir, 'iter_0.del-77'));
    writeFileSync(join(dir, 'training.html.tmp-9'), '<html');
    writeFileSync(join(dir, 'events.out.tfevents.1.host'), 'keep');
    const done = recoverSaveDir(dir);
    assert.deepEqual(readdirSync(dir).sort(), ['best_model', 'events.out.tfevents.1.host', 'iter_2']);
    assert.ok(existsSync(join(dir, 'best_model', 'eval.json')));
    assert.deepEqual(done.sort(), [
      'removed best_model.tmp-55 (left by an interrupted run)',
      'removed iter_0.del-77 (left by an interrupted run)',
      'removed iter_4.tmp-123 (left by an interrupted run)',
      'removed the incomplete checkpoint iter_6',
      'removed training.html.tmp-9 (left by an interrupted run)',
      'restored best_model from best_model.old-55 (its replacement was interrupted)',
    ]);
    assert.deepEqual(recoverSaveDir(dir), [], 'a clean save_dir needs nothing');
  });

  it('latestCheckpoint is the newest complete iter_N', () => {
    const dir = fresh('latest');
    assert.equal(latestCheckpoint(dir), null);
    fakeCheckpoint(join(dir, 'iter_10'));
    fakeCheckpoint(join(dir, 'iter_9'));
    fakeCheckpoint(join(dir, 'iter_12'), ['model.safetensors']);
    assert.equal(latestCheckpoint(dir), join(dir, 'iter_10'));
  });
});

describe('train_state.json is checked before anything is built', () => {
  it('invalid JSON and missing fields name the file and the key', () => {
    const dir = fresh('state');
    const ckpt = join(dir, 'iter_3');
    fakeCheckpoint(ckpt);
    writeFileSync(join(ckpt, 'train_state.json'), '{"version": 1, "iter": 3,');
    assert.throws(
      () => readTrainState(ckpt),
      (e: unknown) =>
        e instanceof CheckpointError &&
        e.message.startsWith(`resume_model '${ckpt}': ${join(ckpt, 'train_state.json')} is not valid JSON`),
    );
    writeFileSync(
      join(ckpt, 'train_state.json'),
      JSON.stringify({ version: 1, iter: 3, seed: 1, randomState: 0, bestMiou: 0.5, bestIter: 2 }),
    );
    assert.throws(
      () => readTrainState(ckpt),
      (e: unknown) =>
        e instanceof CheckpointError &&
        e.message.includes('is not a segtrain training state') &&
        e.message.includes("'staleEvals'"),
    );
  });
});
