import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_CONFIG, paddlesegConfig, repoRoot } from '@segtrain/tensor/testing';
import type { Io } from '../src/io.js';
import { main } from '../src/main.js';

export const PP_LITESEG = paddlesegConfig(
  'pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml',
);

/** Runs the CLI in-process and captures what it prints. */
export async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  };
  const code = await main(argv, io);
  return { code, out, err };
}

export interface TinyProject {
  readonly dir: string;
  readonly data: string;
  readonly config: string;
}

let project: Promise<TinyProject> | undefined;

/** `segtrain data demo` for the tiny project's data: 4 training and 2 validation scenes at 64×32. */
export const demoArgs = (out: string): string[] => [
  'data',
  'demo',
  '--out',
  out,
  '--train',
  '4',
  '--val',
  '2',
  '--width',
  '64',
  '--height',
  '32',
];

/**
 * 4 training and 2 validation demo scenes at 64×32 (made by `segtrain data demo`) and a config
 * inheriting the demo config: a few training iterations take seconds on lavapipe.
 */
export function tinyProject(): Promise<TinyProject> {
  project ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segtrain-cli-'));
    const data = join(dir, 'demo');
    const made = await run(demoArgs(data));
    if (made.code !== 0) throw new Error(`data demo failed: ${made.err}`);
    const config = join(dir, 'tiny.yml');
    writeFileSync(
      config,
      [
        `_base_: ${JSON.stringify(DEMO_CONFIG)}`,
        'train_dataset:',
        `  dataset_root: ${JSON.stringify(data)}`,
        '  transforms: [{ type: RandomHorizontalFlip }, { type: Normalize }]',
        'val_dataset:',
        `  dataset_root: ${JSON.stringify(data)}`,
        '',
      ].join('\n'),
    );
    return { dir, data, config };
  })();
  return project;
}

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly out: string;
  readonly err: string;
}

export interface CliProcess {
  readonly child: ChildProcess;
  readonly done: Promise<Finished>;
  /** Resolves when stdout has a line matching `pattern`; rejects if the process ends first. */
  readonly waitFor: (pattern: RegExp) => Promise<void>;
  /** What the process printed on stdout so far. */
  readonly output: () => string;
}

const live = new Set<ChildProcess>();

/** The built `segtrain` binary as a child process (killed by `killChildren` if a test leaves it). */
export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [join(repoRoot, 'apps/cli/dist/bin.js'), ...args], {
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  const watchers: Array<{ pattern: RegExp; resolve: () => void; reject: (e: Error) => void }> = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of [...watchers])
      if (w.pattern.test(out)) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve();
      }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const done = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => {
      live.delete(child);
      for (const w of watchers.splice(0))
        w.reject(
          new Error(`segtrain ${args[0]} ended (${code ?? signal}) before ${w.pattern}:\n${out}\n${err}`),
        );
      resolve({ code, signal, out, err });
    });
  });
  const waitFor = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      if (pattern.test(out)) resolve();
      else if (child.exitCode !== null || child.signalCode !== null)
        reject(new Error(`segtrain ${args[0]} already ended before ${pattern}`));
      else watchers.push({ pattern, resolve, reject });
    });
  return { child, done, waitFor, output: () => out };
}

/** Kills every child a test started and did not see end (call from afterEach). */
export function killChildren(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}
