/**
 * `segtrain-bench allreduce`: ranks as processes on this machine, our allReduce per size with
 * nccl-tests' bandwidths, beside raw TCP between the same processes and a ZeroMQ round trip, all
 * measured in the same run.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { WorkerReport } from './allreduce-worker.js';
import { type BenchLink, runBenchJob } from './job.js';

export type { BenchLink } from './job.js';

export interface AllReduceRow {
  readonly ranks: number;
  readonly link: BenchLink;
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
  /** CPU time per op summed over ranks, as a share of the machine's cores over the op's wall time. */
  readonly oursCpuShare: number;
  readonly rawTcpCpuShare: number;
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

export async function runAllReduceBench(
  ranksList: readonly number[],
  links: readonly BenchLink[],
  sizes: readonly number[],
  reps: number,
  log: (line: string) => void,
): Promise<AllReduceRow[]> {
  const rows: AllReduceRow[] = [];
  const cores = availableParallelism();
  for (const link of links)
    for (const ranks of ranksList) {
      const report = await runBenchJob<WorkerReport>('allreduce bench', WORKER, ranks, link, {
        SIZES: sizes.join(','),
        REPS: String(reps),
      });
      for (const s of report.sizes) {
        const factor = ranks > 1 ? (2 * (ranks - 1)) / ranks : 1;
        const algbw = s.bytes / (s.oursMs / 1000) / 1e9;
        const busbw = algbw * factor;
        const raw = s.rawTcpMs === null ? Number.NaN : (s.bytes * factor) / (s.rawTcpMs / 1000) / 1e9;
        const row: AllReduceRow = {
          ranks,
          link,
          bytes: s.bytes,
          algorithm: ranks === 1 ? 'none (N = 1)' : s.algorithm,
          oursMs: s.oursMs,
          algbwGBs: algbw,
          busbwGBs: busbw,
          rawTcpGBs: raw,
          ofRawTcp: busbw / raw,
          oursCpuShare: s.oursCpuMs / (cores * s.oursMs),
          rawTcpCpuShare:
            s.rawTcpCpuMs === null || s.rawTcpMs === null ? Number.NaN : s.rawTcpCpuMs / (cores * s.rawTcpMs),
          zmqRoundTripMs: report.zmqRoundTripMs,
        };
        rows.push(row);
        log(
          `${link.padEnd(8)} N=${ranks} ${formatBytes(s.bytes).padStart(6)} ${row.algorithm.padEnd(8)} ${s.oursMs.toFixed(3)} ms  busbw ${busbw.toFixed(3)} GB/s  raw TCP ${raw.toFixed(3)} GB/s  (${row.ofRawTcp.toFixed(2)}×)  CPU ${percent(row.oursCpuShare)} / ${percent(row.rawTcpCpuShare)}`,
        );
      }
    }
  return rows;
}

const percent = (share: number) => (Number.isFinite(share) ? `${Math.round(share * 100)} %` : '—');

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
    '| link | ranks | size | algorithm | time ms | algbw GB/s | busbw GB/s | raw TCP GB/s | busbw / raw TCP | CPU busy: ours / raw TCP |',
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.link} | ${r.ranks} | ${formatBytes(r.bytes)} | ${r.algorithm} | ${r.oursMs.toFixed(3)} | ${r.algbwGBs.toFixed(3)} | ${r.busbwGBs.toFixed(3)} | ${Number.isFinite(r.rawTcpGBs) ? r.rawTcpGBs.toFixed(3) : '—'} | ${Number.isFinite(r.ofRawTcp) ? `${r.ofRawTcp.toFixed(2)}×` : '—'} | ${percent(r.oursCpuShare)} / ${percent(r.rawTcpCpuShare)} |`,
    );
  // Per job: the round trip, and its smallest all-reduce as a multiple of it (the latency goal).
  const jobs = new Map<string, AllReduceRow>();
  for (const r of rows) {
    const key = `${r.link}, ${r.ranks} ranks`;
    const seen = jobs.get(key);
    if (r.zmqRoundTripMs !== null && (!seen || r.bytes < seen.bytes)) jobs.set(key, r);
  }
  if (jobs.size) {
    lines.push(
      '',
      '| job | ZeroMQ round trip ms (64 B, ranks 0 ↔ 1) | smallest all-reduce | its time / round trip |',
    );
    lines.push('|---|---:|---:|---:|');
    for (const [key, r] of jobs)
      lines.push(
        `| ${key} | ${r.zmqRoundTripMs?.toFixed(3)} | ${formatBytes(r.bytes)} | ${(r.oursMs / (r.zmqRoundTripMs ?? Number.NaN)).toFixed(2)}× |`,
      );
  }
  lines.push('', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}
