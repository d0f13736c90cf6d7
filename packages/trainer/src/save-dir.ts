/**
 * The save_dir of a training run: created and probed before the first step, locked for the run's
 * life, and cleaned of what an interrupted run left (temp directories, half-replaced or half-deleted
 * checkpoints). Every write here is recoverable: after a kill at any instruction the newest complete
 * checkpoint is under its own name, or is restored to it by the next start.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/** save_dir cannot be used (missing permissions, a file in the way, locked by another run). */
export class SaveDirError extends Error {}

export const LOCK_FILE = '.segtrain.lock';
/** `name.tmp-PID` (being written), `name.old-PID` (being replaced), `name.del-PID` (being deleted). */
const LEFTOVER = /^(.+)\.(tmp|old|del)-(\d+)$/;
const PROBE_PREFIX = '.segtrain-probe-';

const REASONS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a component of the path is a file, not a directory',
  EEXIST: 'it exists and is not a directory',
  EISDIR: 'it is a directory',
  ENOENT: 'no such file or directory',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

interface ErrnoLike {
  readonly code: string;
  readonly syscall?: string;
  readonly path?: string;
  readonly message: string;
}

function isErrno(error: unknown): error is ErrnoLike {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

/**
 * One line for a file-system error (`cannot open /x/y for writing: no space left on device (ENOSPC)`),
 * or null when `error` is not one.
 */
export function describeFileError(error: unknown): string | null {
  if (!isErrno(error) || !/^E[A-Z]+$/.test(error.code)) return null;
  const reason = REASONS[error.code] ?? error.message;
  const where = error.path ? ` ${error.path}` : '';
  return `cannot ${error.syscall ?? 'access'}${where}: ${reason} (${error.code})`;
}

function saveDirError(dir: string, what: string, error: unknown): SaveDirError {
  const reason = isErrno(error) ? `${REASONS[error.code] ?? error.message} (${error.code})` : String(error);
  return new SaveDirError(`save_dir ${dir}: ${what}: ${reason}. Pass a writable directory as --save_dir`);
}

/** Creates `dir` and its missing parents one level at a time (Node 20's recursive mkdir spins under /proc). */
function makeDirectory(dir: string): void {
  const missing: string[] = [];
  let existing = dir;
  while (!existsSync(existing)) {
    missing.unshift(existing);
    const parent = dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(existing);
  } catch (error) {
    throw saveDirError(dir, `cannot read ${existing}`, error);
  }
  if (!stat.isDirectory())
    throw new SaveDirError(
      `save_dir ${dir}: ${existing} is a file, not a directory. Pass a directory as --save_dir`,
    );
  for (const path of missing) {
    try {
      mkdirSync(path);
    } catch (error) {
      throw saveDirError(dir, `cannot create ${path}`, error);
    }
  }
}

/** Writes `bytes` to `path` and flushes it to disk. */
function writeDurably(path: string, bytes: Uint8Array, flag: 'w' | 'wx' = 'w'): void {
  const fd = openSync(path, flag);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Flushes a directory's entries (a rename or create in it) to disk; a no-op where unsupported. */
export function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory: the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Write, flush, rename and delete a small file: what a checkpoint needs, found out before training. */
function probeWritable(dir: string): void {
  const probe = join(dir, `${PROBE_PREFIX}${process.pid}`);
  try {
    writeDurably(probe, new Uint8Array(64 * 1024));
    renameSync(probe, `${probe}.renamed`);
    unlinkSync(`${probe}.renamed`);
  } catch (error) {
    rmSync(probe, { force: true });
    rmSync(`${probe}.renamed`, { force: true });
    throw saveDirError(dir, 'cannot write checkpoints there', error);
  }
}

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly started: string;
  readonly command: string;
}

function readHolder(path: string): LockHolder | null {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    if (typeof value.pid !== 'number' || typeof value.host !== 'string') return null;
    return {
      pid: value.pid,
      host: value.host,
      started: String(value.started ?? '?'),
      command: String(value.command ?? '?'),
    };
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return isErrno(error) && error.code === 'EPERM';
  }
}

/** A lock file not even its holder's JSON got into: a crash between create and write, if old enough. */
const UNREADABLE_LOCK_STALE_MS = 10_000;

/** Holds `save_dir/.segtrain.lock` until `release()`. */
export class SaveDirLock {
  private released = false;

  constructor(
    readonly dir: string,
    private readonly path: string,
    private readonly holder: LockHolder,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    const current = readHolder(this.path);
    if (current && current.pid === this.holder.pid && current.host === this.holder.host)
      rmSync(this.path, { force: true });
  }
}

function takeLock(dir: string, log: (line: string) => void): SaveDirLock {
  const path = join(dir, LOCK_FILE);
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    command: process.argv.slice(1).join(' '),
  };
  for (;;) {
    try {
      writeDurably(path, new TextEncoder().encode(`${JSON.stringify(me)}\n`), 'wx');
      fsyncDirectory(dir);
      return new SaveDirLock(dir, path, me);
    } catch (error) {
      if (!isErrno(error) || error.code !== 'EEXIST') throw saveDirError(dir, `cannot create ${path}`, error);
    }
    const holder = readHolder(path);
    if (holder === null) {
      const age = Date.now() - statSync(path).mtimeMs;
      if (age < UNREADABLE_LOCK_STALE_MS)
        throw new SaveDirError(
          `save_dir ${dir} is being locked by another run right now (${path}). Wait for it, or pass another --save_dir`,
        );
      log(`Taking over the unreadable lock ${path} (${Math.round(age / 1000)} s old)`);
    } else if (holder.host === hostname() && !processAlive(holder.pid)) {
      log(
        `Taking over the lock ${path}: its run (pid ${holder.pid}, started ${holder.started}) is no longer running`,
      );
    } else {
      throw new SaveDirError(
        `save_dir ${dir} is in use by another training run: pid ${holder.pid} on ${holder.host}, started ${holder.started} ` +
          `(${holder.command}). Wait for it to finish, stop it, or pass another --save_dir` +
          (holder.host === hostname() ? '' : `; if that run is gone, delete ${path}`),
      );
    }
    rmSync(path, { force: true });
  }
}

/** The files a complete checkpoint directory holds; `best_model` holds weights and its evaluation. */
export const ITER_FILES = ['model.safetensors', 'optimizer.safetensors', 'train_state.json'] as const;
export const BEST_FILES = ['model.safetensors', 'eval.json'] as const;

function hasFiles(dir: string, files: readonly string[]): boolean {
  return files.every((file) => existsSync(join(dir, file)));
}

function isComplete(dir: string, name: string): boolean {
  if (/^iter_\d+$/.test(name)) return hasFiles(dir, ITER_FILES);
  if (name === 'best_model') return hasFiles(dir, BEST_FILES);
  return true;
}

/**
 * Makes save_dir whole after an interrupted run (call under the lock): a checkpoint caught between the
 * two renames of its replacement gets its previous version back; temp, half-replaced and half-deleted
 * directories and incomplete checkpoints are removed. Returns one line per thing done.
 */
export function recoverSaveDir(dir: string): string[] {
  const done: string[] = [];
  const names = readdirSync(dir);
  for (const name of names) {
    const m = LEFTOVER.exec(name);
    if (m?.[2] !== 'old') continue;
    const target = m[1] as string;
    if (existsSync(join(dir, target)) || !isComplete(join(dir, name), target)) continue;
    renameSync(join(dir, name), join(dir, target));
    done.push(`restored ${target} from ${name} (its replacement was interrupted)`);
  }
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (LEFTOVER.test(name) || name.startsWith(PROBE_PREFIX)) {
      rmSync(path, { recursive: true, force: true });
      done.push(`removed ${name} (left by an interrupted run)`);
    } else if (statSync(path).isDirectory() && !isComplete(path, name)) {
      rmSync(path, { recursive: true, force: true });
      done.push(`removed the incomplete checkpoint ${name}`);
    }
  }
  if (done.length) fsyncDirectory(dir);
  return done;
}

/** The newest complete `iter_N` of `dir` (what a restart resumes from), or null. */
export function latestCheckpoint(dir: string): string | null {
  if (!existsSync(dir)) return null;
  const iters = readdirSync(dir)
    .map((name) => ({ name, n: /^iter_(\d+)$/.exec(name)?.[1] }))
    .filter(
      (e): e is { name: string; n: string } => e.n !== undefined && isComplete(join(dir, e.name), e.name),
    )
    .sort((a, b) => Number(b.n) - Number(a.n));
  return iters[0] ? join(dir, iters[0].name) : null;
}

/**
 * Creates save_dir, locks it, checks that checkpoints can be written there and cleans what an
 * interrupted run left, all before the first step. Throws SaveDirError in one line otherwise.
 */
export function openSaveDir(saveDir: string, log: (line: string) => void): SaveDirLock {
  const dir = resolve(saveDir);
  makeDirectory(dir);
  const lock = takeLock(dir, log);
  try {
    probeWritable(dir);
    for (const line of recoverSaveDir(dir)) log(`save_dir ${dir}: ${line}`);
  } catch (error) {
    lock.release();
    if (error instanceof SaveDirError) throw error;
    throw saveDirError(dir, 'cannot clean up after an interrupted run', error);
  }
  return lock;
}

let crashPlan: { point: string; remaining: number } | null | undefined;

/**
 * Test hook: with `SEGTRAIN_CRASH_AT=point` (or `point#k` for its k-th passage) the process kills
 * itself with SIGKILL there, as a power cut or the OOM killer would. Off (one env read) otherwise.
 */
export function crashPoint(point: string): void {
  if (crashPlan === undefined) {
    const spec = process.env.SEGTRAIN_CRASH_AT;
    const m = spec ? /^([\w.-]+)(?:#(\d+))?$/.exec(spec) : null;
    crashPlan = m ? { point: m[1] as string, remaining: Number(m[2] ?? 1) } : null;
  }
  if (crashPlan?.point !== point) return;
  crashPlan.remaining--;
  if (crashPlan.remaining === 0) process.kill(process.pid, 'SIGKILL');
}
