/** Test jobs: ranks of test/fixtures/worker.mjs as child processes on this machine, always cleaned up. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/index.js';

const WORKER = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url));
const live = new Set<ChildProcess>();

export interface RankResult {
  readonly rank: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The JSON lines the rank printed. */
  readonly lines: Array<Record<string, unknown>>;
  readonly stderr: string;
  /** Milliseconds from the start of the job to this rank's exit. */
  readonly endedAfterMs: number;
}

export interface RankProcess {
  readonly child: ChildProcess;
  readonly done: Promise<RankResult>;
  /** Resolves when the rank has printed a JSON line with `key`. */
  readonly printed: (key: string) => Promise<void>;
}

/** Starts one rank; `wrap` runs it through another command (e.g. into a network namespace). */
export function startRank(
  rank: number,
  env: Record<string, string>,
  wrap?: (command: string, args: string[]) => [string, string[]],
): RankProcess {
  const started = Date.now();
  const [command, args] = wrap ? wrap(process.execPath, [WORKER]) : [process.execPath, [WORKER]];
  const child = spawn(command, args, {
    env: { ...process.env, RANK: String(rank), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const lines: Array<Record<string, unknown>> = [];
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ key: string; resolve: () => void }> = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    let newline = stdout.indexOf('\n');
    while (newline >= 0) {
      const line = JSON.parse(stdout.slice(0, newline)) as Record<string, unknown>;
      stdout = stdout.slice(newline + 1);
      lines.push(line);
      for (const w of [...waiters])
        if (w.key in line) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      newline = stdout.indexOf('\n');
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<RankResult>((resolve) => {
    child.on('close', (code, signal) => {
      live.delete(child);
      resolve({ rank, code, signal, lines, stderr, endedAfterMs: Date.now() - started });
    });
  });
  const printed = (key: string) =>
    new Promise<void>((resolve, reject) => {
      if (lines.some((l) => key in l)) return resolve();
      waiters.push({ key, resolve });
      void done.then(() => reject(new Error(`rank ${rank} ended before printing '${key}': ${stderr}`)));
    });
  return { child, done, printed };
}

/** The environment of an n-rank job on a fresh loopback port, with `extra` on top. */
export async function jobEnv(n: number, extra: Record<string, string>): Promise<Record<string, string>> {
  return { WORLD_SIZE: String(n), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(await freePort()), ...extra };
}

/** Starts ranks 0…n−1 of one job on a fresh port. */
export async function startJob(n: number, env: Record<string, string>): Promise<RankProcess[]> {
  const common = await jobEnv(n, env);
  return Array.from({ length: n }, (_, rank) => startRank(rank, common));
}

export function runJob(n: number, env: Record<string, string>): Promise<RankResult[]> {
  return startJob(n, env).then((ranks) => Promise.all(ranks.map((r) => r.done)));
}

/** Kills every rank a test started and did not see end (call from afterEach). */
export function killRanks(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}
