/**
 * `segtrain-bench allreduce`: ranks as processes on this machine, our allReduce per size with
 * nccl-tests' bandwidths, beside raw TCP between the same processes and a ZeroMQ round trip, all
 * measured in the same run.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '@segtrain/collective';
import type { WorkerReport } from './allreduce-worker.js';

export interface AllReduceRow {
  readonly ranks: number;
  readonly bytes: number;
  readonly algorithm: string;
  readonly oursMs: number;
  /** nccl-tests: algbw = S / t; busbw = algbw · 2(N−1)/N (GB/s). */
  readonly algbwGBs: number;
  readonly busbwGBs: number;
  /** The same bytes per rank over plain TCP, as a bus bandwidth (GB/s). */
  readonly rawTcpGBs: number;
  /** busbw / raw TCP. */
  readonly ofRawTcp: number;
  readonly zmqRoundTripMs: number | null;
}

// The compiled worker, also when this module runs from src/ under the tests.
const WORKER = fileURLToPath(new URL('../dist/allreduce-worker.js', import.meta.url));

/** `4K`, `1M`, `16M`, `64M` (binary units) or plain bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw new Error(`size '${text}' is not N, NK, NM or NG`);
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[
    (m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G'
  ];
  return Math.round(Number(m[1]) * scale);
}

/** Runs one job of `ranks` processes; kills them all if any fails. */
async function runJob(ranks: number, sizes: readonly number[], reps: number): Promise<WorkerReport> {
  const port = String(await freePort());
  const children = Array.from({ length: ranks }, (_, rank) =>
    spawn(process.execPath, [WORKER], {
      env: {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(ranks),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: port,
        SIZES: sizes.join(','),
        REPS: String(reps),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  let out = '';
  children[0]?.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  try {
    const codes = await Promise.all(
      children.map((child) => new Promise<number | null>((resolve) => child.on('close', resolve))),
    );
    if (codes.some((c) => c !== 0))
      throw new Error(`allreduce bench with ${ranks} ranks failed: exit codes ${codes.join(', ')}`);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  }
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as WorkerReport;
}

export async function runAllReduceBench(
  ranksList: readonly number[],
  sizes: readonly number[],
  reps: number,
  log: (line: string) => void,
): Promise<AllReduceRow[]> {
  const rows: AllReduceRow[] = [];
  for (const ranks of ranksList) {
    const report = await runJob(ranks, sizes, reps);
    for (const s of report.sizes) {
      const factor = ranks > 1 ? (2 * (ranks - 1)) / ranks : 1;
      const algbw = s.bytes / (s.oursMs / 1000) / 1e9;
      const busbw = algbw * factor;
      const raw = s.rawTcpMs === null ? Number.NaN : (s.bytes * factor) / (s.rawTcpMs / 1000) / 1e9;
      const row: AllReduceRow = {
        ranks,
        bytes: s.bytes,
        algorithm: ranks === 1 ? 'none (N = 1)' : s.algorithm,
        oursMs: s.oursMs,
        algbwGBs: algbw,
        busbwGBs: busbw,
        rawTcpGBs: raw,
        ofRawTcp: busbw / raw,
        zmqRoundTripMs: report.zmqRoundTripMs,
      };
      rows.push(row);
      log(
        `N=${ranks} ${formatBytes(s.bytes).padStart(6)} ${row.algorithm.padEnd(8)} ${s.oursMs.toFixed(3)} ms  busbw ${busbw.toFixed(3)} GB/s  raw TCP ${raw.toFixed(3)} GB/s  (${row.ofRawTcp.toFixed(2)}×)`,
      );
    }
  }
  return rows;
}

export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const)
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  return `${bytes}B`;
}

export function allReduceMarkdown(
  rows: readonly AllReduceRow[],
  notes: readonly string[],
  header: string,
): string {
  const lines = [
    header,
    '',
    '| ranks | size | algorithm | time ms | algbw GB/s | busbw GB/s | raw TCP GB/s | busbw / raw TCP |',
    '|---:|---:|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.ranks} | ${formatBytes(r.bytes)} | ${r.algorithm} | ${r.oursMs.toFixed(3)} | ${r.algbwGBs.toFixed(3)} | ${r.busbwGBs.toFixed(3)} | ${Number.isFinite(r.rawTcpGBs) ? r.rawTcpGBs.toFixed(3) : '—'} | ${Number.isFinite(r.ofRawTcp) ? `${r.ofRawTcp.toFixed(2)}×` : '—'} |`,
    );
  const rtts = [
    ...new Set(
      rows
        .filter((r) => r.zmqRoundTripMs !== null)
        .map((r) => `${r.ranks}: ${r.zmqRoundTripMs?.toFixed(3)} ms`),
    ),
  ];
  if (rtts.length)
    lines.push(
      '',
      `ZeroMQ 64-byte round trip between ranks 0 and 1, same run (per job, by ranks): ${rtts.join('; ')}.`,
    );
  lines.push('', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}
