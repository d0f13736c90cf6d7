import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Row, rate } from './timing.js';

export interface Report {
  readonly title: string;
  readonly date: string;
  readonly machine: Record<string, string>;
  readonly rows: readonly Row[];
  readonly notes: readonly string[];
  /** Table layout: `kernels` (ours vs tfjs, the default) or `models` (img/s beside the same-run GEMM rate). */
  readonly table?: 'kernels' | 'models';
}

function fmt(n: number | null, digits = 2): string {
  return n === null || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}

export function toMarkdown(r: Report): string {
  const lines = [`# ${r.title}`, '', `Run ${r.date}.`, ''];
  for (const [k, v] of Object.entries(r.machine)) lines.push(`- ${k}: ${v}`);
  if (r.table === 'models') {
    lines.push(
      '',
      '| model | trainable params | ms / step | img/s | GEMM 1024³ (same run) |',
      '|---|---:|---:|---:|---:|',
    );
    for (const row of r.rows)
      lines.push(
        `| ${row.name} | ${row.params === undefined ? '—' : row.params.toLocaleString('en-US')} | ${fmt(row.oursMs, 1)} | ${fmt(rate(row, row.oursMs))} | ${row.gemmGflops === undefined ? '—' : `${fmt(row.gemmGflops)} GFLOP/s`} |`,
      );
    lines.push('', ...r.notes.map((n) => `- ${n}`), '');
    return lines.join('\n');
  }
  lines.push(
    '',
    '| case | ours ms | ours rate | tfjs-webgpu ms | tfjs rate | ours / tfjs |',
    '|---|---:|---:|---:|---:|---:|',
  );
  for (const row of r.rows) {
    const unit = row.images ? 'img/s' : 'GFLOP/s';
    const ours = rate(row, row.oursMs);
    const theirs = row.theirsMs === null ? null : rate(row, row.theirsMs);
    lines.push(
      `| ${row.name} | ${fmt(row.oursMs, 1)} | ${fmt(ours)} ${unit} | ${fmt(row.theirsMs, 1)} | ${theirs === null ? '—' : `${fmt(theirs)} ${unit}`} | ${theirs === null ? '—' : `${fmt(ours / theirs)}×`} |`,
    );
  }
  lines.push('', ...r.notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

/** Writes `<dir>/<name>.md` and `.json` through temp files and renames. */
export function writeReportFiles(dir: string, name: string, markdown: string, data: unknown): string[] {
  mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  for (const [ext, text] of [
    ['md', markdown],
    ['json', `${JSON.stringify(data, null, 2)}\n`],
  ] as const) {
    const path = join(dir, `${name}.${ext}`);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
    out.push(path);
  }
  return out;
}

export function writeReport(dir: string, name: string, r: Report): string[] {
  return writeReportFiles(dir, name, toMarkdown(r), r);
}
