import type { ProgressStream } from '@segtrain/trainer';
import type { Output } from './args.js';

/** Where a command writes; tests pass their own to capture output. */
export interface Io extends Output {
  /** Where live progress bars draw: stderr when it is a terminal, so `| tee log` keeps the bar on screen. */
  readonly progress?: ProgressStream;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  ...(process.stderr.isTTY ? { progress: process.stderr } : {}),
};
