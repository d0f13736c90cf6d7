/**
 * `segtrain-bench compare A.json[,A2.json…] B.json[,B2.json…]`: the ratio B / A of every number two
 * reports of one suite share, row by row (rows matched by their name, or by link, ranks and size, or
 * by node count): before/after a change, or two machines. Several runs per side are averaged
 * (interleaved runs of two builds even out a shared machine's drift).
 */
import { readFileSync } from 'node:fs';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The rows of a report of any suite, keyed so that the same case in another run has the same key. */
export function reportRows(report: Json): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  if (!report || typeof report !== 'object' || Array.isArray(report)) return out;
  const result = report.result as { [key: string]: Json } | undefined;
  const rows = (
    Array.isArray(report.rows) ? report.rows : result && Array.isArray(result.measured) ? result.measured : []
  ) as Json[];
  for (const row of rows) {
    if (!row || typeof row !== 'object' || Array.isArray(row)) continue;
    const key =
      typeof row.name === 'string'
        ? row.name
        : typeof row.nodes === 'number'
          ? `${row.nodes} node(s)`
          : ['link', 'ranks', 'bytes'].map((k) => `${k} ${String(row[k])}`).join(', ');
    const numbers: Record<string, number> = {};
    for (const [k, v] of Object.entries(row)) if (typeof v === 'number' && Number.isFinite(v)) numbers[k] = v;
    out.set(key, numbers);
  }
  return out;
}

export interface ComparedValue {
  readonly row: string;
  readonly field: string;
  readonly a: number;
  readonly b: number;
  readonly ratio: number;
}

/** Every case's values averaged over several runs of one suite (a value missing from a run is averaged over the rest). */
export function meanRows(reports: readonly Json[]): Map<string, Record<string, number>> {
  const sums = new Map<string, Record<string, [number, number]>>();
  for (const report of reports)
    for (const [row, numbers] of reportRows(report)) {
      const acc = sums.get(row) ?? {};
      for (const [field, v] of Object.entries(numbers)) {
        const [total, count] = acc[field] ?? [0, 0];
        acc[field] = [total + v, count + 1];
      }
      sums.set(row, acc);
    }
  const out = new Map<string, Record<string, number>>();
  for (const [row, acc] of sums)
    out.set(row, Object.fromEntries(Object.entries(acc).map(([f, [total, count]]) => [f, total / count])));
  return out;
}

/** B / A for every case and value both sides share; each side is one report or several runs (averaged). */
export function compareReports(a: Json | readonly Json[], b: Json | readonly Json[]): ComparedValue[] {
  const runs = (x: Json | readonly Json[]): readonly Json[] => (Array.isArray(x) ? x : [x as Json]);
  const rowsA = meanRows(runs(a));
  const rowsB = meanRows(runs(b));
  const out: ComparedValue[] = [];
  for (const [row, numbersA] of rowsA) {
    const numbersB = rowsB.get(row);
    if (!numbersB) continue;
    for (const [field, va] of Object.entries(numbersA)) {
      const vb = numbersB[field];
      if (vb === undefined || va === vb) continue;
      out.push({ row, field, a: va, b: vb, ratio: va === 0 ? Number.NaN : vb / va });
    }
  }
  return out;
}

export function compareMarkdown(pathA: string, pathB: string, values: readonly ComparedValue[]): string {
  const g = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(1) : n.toPrecision(4));
  return [
    '# B / A',
    '',
    ...[
      ['A', pathA],
      ['B', pathB],
    ].map(([side, paths = '']) => {
      const runs = paths.split(',');
      return `- ${side}: ${runs.map((p) => `\`${p}\``).join(', ')}${runs.length > 1 ? ` (mean of ${runs.length} runs)` : ''}`;
    }),
    '',
    '| case | value | A | B | B / A |',
    '|---|---|---:|---:|---:|',
    ...values.map(
      (v) =>
        `| ${v.row} | ${v.field} | ${g(v.a)} | ${g(v.b)} | ${Number.isFinite(v.ratio) ? `${v.ratio.toFixed(3)}×` : '—'} |`,
    ),
    '',
    values.length === 0
      ? 'No case and value differ (or the reports share none: are they of the same suite?).'
      : '',
  ].join('\n');
}

export function readReport(path: string): Json {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (error) {
    throw new Error(`${path}: not a benchmark report (${(error as Error).message})`);
  }
}
