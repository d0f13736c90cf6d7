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
    for (const row of r.rows) {
      if (!row.topKernels) continue;
      const total = row.topKernels.reduce((a, k) => a + k.ms, 0);
      lines.push(
        '',
        `### ${row.name}: the ${row.topKernels.length} kernels with the most GPU time in one step (profiled)`,
        '',
        '| kernel | dispatches | GPU ms | share of these |',
        '|---|---:|---:|---:|',
        ...row.topKernels.map(
          (k) =>
            `| \`${k.kernel}\` | ${k.dispatches} | ${fmt(k.ms, 2)} | ${fmt((100 * k.ms) / total, 1)} % |`,
        ),
      );
    }
    lines.push('', ...r.notes.map((n) => `- ${n}`), '');
    return lines.join('\n');
  }
  lines.push(
    '',
    '| case | ours ms | ours rate | ours back to back: ms, rate | tfjs-webgpu ms | tfjs rate | ours / tfjs |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const row of r.rows) {
    const unit = row.images ? 'img/s' : 'GFLOP/s';
    const ours = rate(row, row.oursMs);
    const theirs = row.theirsMs === null ? null : rate(row, row.theirsMs);
    const b2b =
      row.backToBackMs === undefined
        ? '—'
        : `${fmt(row.backToBackMs, 2)}, ${fmt(rate(row, row.backToBackMs))} ${unit}`;
    lines.push(
      `| ${row.name} | ${fmt(row.oursMs, 1)} | ${fmt(ours)} ${unit} | ${b2b} | ${fmt(row.theirsMs, 1)} | ${theirs === null ? '—' : `${fmt(theirs)} ${unit}`} | ${theirs === null ? '—' : `${fmt(ours / theirs)}×`} |`,
    );
  }
  lines.push('', ...r.notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

/** `<suite>-<ISO date with - for : and .>`: every run keeps its own files. */
export function stampedName(suite: string, date: string): string {
  return `${suite}-${date.replace(/[:.]/g, '-')}`;
}

export interface Bar {
  readonly label: string;
  readonly value: number;
}

/** A horizontal bar chart (the report's plot), one bar per case. */
export function barChartSvg(title: string, bars: readonly Bar[]): string {
  const W = 560;
  const bar = 20;
  const H = 40 + bars.length * (bar + 8);
  const max = Math.max(...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)), 1e-9);
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="10" y="20">${esc(title)}</text>`,
    ...bars.map((b, i) => {
      const y = 32 + i * (bar + 8);
      const value = Number.isFinite(b.value) ? b.value : 0;
      const width = ((W - 290) * value) / max;
      return `<text x="10" y="${y + 14}">${esc(b.label.slice(0, 34))}</text><rect x="230" y="${y}" width="${width.toFixed(1)}" height="${bar}" fill="#1f77b4"/><text x="${(235 + width).toFixed(1)}" y="${y + 14}">${value.toPrecision(3)}</text>`;
    }),
    '</svg>',
    '',
  ].join('\n');
}

/** Writes `<dir>/<name>.md`, `.json` (and `.svg` when given) through temp files and renames. */
export function writeReportFiles(
  dir: string,
  name: string,
  markdown: string,
  data: unknown,
  svg?: string,
): string[] {
  mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  const files: Array<readonly [string, string]> = [
    ['md', markdown],
    ['json', `${JSON.stringify(data, null, 2)}\n`],
  ];
  if (svg !== undefined) files.push(['svg', svg]);
  for (const [ext, text] of files) {
    const path = join(dir, `${name}.${ext}`);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
    out.push(path);
  }
  return out;
}

/** `<dir>/<suite>-<stamp>.{md,json,svg}`: the table, the data, and each row's rate as a bar. */
export function writeReport(dir: string, suite: string, r: Report): string[] {
  const unit = r.rows.some((row) => row.images) ? 'img/s' : 'GFLOP/s';
  const bars = r.rows.map((row) => ({ label: row.name, value: rate(row, row.oursMs) }));
  return writeReportFiles(
    dir,
    stampedName(suite, r.date),
    toMarkdown(r),
    r,
    barChartSvg(`${r.title} (${unit})`, bars),
  );
}
