/**
 * Training-curve report: one self-contained HTML file with three inline SVG charts (loss, LR,
 * mIoU). No scripts, no external fonts or styles, so it opens anywhere, offline.
 */
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface TrainingHistory {
  iters: number[];
  loss: number[];
  lr: number[];
  evals: { iter: number; miou: number; miouPresent?: number }[];
}

/** Chart geometry in SVG user units; exported so tests can recompute coordinates. */
export const PLOT_LAYOUT = {
  width: 720,
  height: 240,
  marginLeft: 72,
  marginRight: 16,
  marginTop: 28,
  marginBottom: 40,
  /** Series longer than this are reduced to per-bucket min/max pairs. */
  maxPoints: 2000,
} as const;

export interface Domain {
  lo: number;
  hi: number;
}

/** "Nice" tick values (1, 2, 5 × 10^k steps) covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  // Tolerance: 1e-4 / 5 / 1e-5 is 2.0000000000000004, which must still pick step 2.
  const norm = raw / mag - 1e-9;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks: number[] = [];
  // Round to the step's decimals so 0.1 + 0.2 style noise never reaches a label.
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toFixed(Math.min(decimals, 100))));
  return ticks;
}

/** Domain of the data widened to nice tick boundaries; a flat series gets a margin around it. */
export function niceDomain(values: readonly number[]): Domain {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { lo: 0, hi: 1 };
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.5;
    lo -= pad;
    hi += pad;
  }
  const t = niceTicks(lo, hi);
  return { lo: t[0] as number, hi: t[t.length - 1] as number };
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  // LR ticks like 0.00005 read better as 5e-5.
  if (a < 1e-3 || a >= 1e6) return Number(v.toPrecision(6)).toExponential().replace('e+', 'e');
  return String(Number(v.toPrecision(12)));
}

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Scale from a data domain to the plot area; y grows downwards in SVG. */
export function scalePoint(x: number, y: number, xd: Domain, yd: Domain): [number, number] {
  const L = PLOT_LAYOUT;
  const w = L.width - L.marginLeft - L.marginRight;
  const h = L.height - L.marginTop - L.marginBottom;
  const sx = L.marginLeft + ((x - xd.lo) / (xd.hi - xd.lo)) * w;
  const sy = L.marginTop + (1 - (y - yd.lo) / (yd.hi - yd.lo)) * h;
  return [Math.round(sx * 100) / 100, Math.round(sy * 100) / 100];
}

/** Per-bucket min and max (in x order) so long series keep their spikes at a bounded size. */
function decimate(xs: number[], ys: number[]): [number[], number[]] {
  const n = xs.length;
  const max = PLOT_LAYOUT.maxPoints;
  if (n <= max) return [xs, ys];
  const buckets = Math.floor(max / 2);
  const ox: number[] = [];
  const oy: number[] = [];
  for (let b = 0; b < buckets; b++) {
    const s = Math.floor((b * n) / buckets);
    const e = Math.floor(((b + 1) * n) / buckets);
    let iMin = s;
    let iMax = s;
    for (let i = s; i < e; i++) {
      if ((ys[i] as number) < (ys[iMin] as number)) iMin = i;
      if ((ys[i] as number) > (ys[iMax] as number)) iMax = i;
    }
    for (const i of iMin <= iMax ? [iMin, iMax] : [iMax, iMin]) {
      if (ox.length > 0 && ox[ox.length - 1] === xs[i] && oy[oy.length - 1] === ys[i]) continue;
      ox.push(xs[i] as number);
      oy.push(ys[i] as number);
    }
  }
  return [ox, oy];
}

interface Series {
  name: string;
  color: string;
  xs: number[];
  ys: number[];
  markers: boolean;
}

function chart(title: string, series: Series[], xd: Domain, fixedY?: Domain): string {
  const L = PLOT_LAYOUT;
  const clean = series.map((s) => {
    const xs: number[] = [];
    const ys: number[] = [];
    // Non-finite values (a NaN loss) are skipped rather than poisoning the scale.
    s.xs.forEach((x, i) => {
      const y = s.ys[i];
      if (y !== undefined && Number.isFinite(x) && Number.isFinite(y)) {
        xs.push(x);
        ys.push(y);
      }
    });
    const [dx, dy] = decimate(xs, ys);
    return { ...s, xs: dx, ys: dy };
  });
  const yd = fixedY ?? niceDomain(clean.flatMap((s) => s.ys));
  const bottom = L.height - L.marginBottom;
  const right = L.width - L.marginRight;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}" ` +
      `viewBox="0 0 ${L.width} ${L.height}" data-x-domain="${xd.lo} ${xd.hi}" data-y-domain="${yd.lo} ${yd.hi}">`,
    `<text x="${L.marginLeft}" y="18" class="title">${esc(title)}</text>`,
    `<rect x="${L.marginLeft}" y="${L.marginTop}" width="${right - L.marginLeft}" ` +
      `height="${bottom - L.marginTop}" class="frame"/>`,
  ];
  for (const t of niceTicks(yd.lo, yd.hi)) {
    if (t < yd.lo || t > yd.hi) continue;
    const [, y] = scalePoint(xd.lo, t, xd, yd);
    parts.push(`<line x1="${L.marginLeft}" y1="${y}" x2="${right}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${L.marginLeft - 6}" y="${y + 4}" text-anchor="end">${formatTick(t)}</text>`);
  }
  for (const t of niceTicks(xd.lo, xd.hi, 6)) {
    if (t < xd.lo || t > xd.hi) continue;
    const [x] = scalePoint(t, yd.lo, xd, yd);
    parts.push(`<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 5}" class="axis"/>`);
    parts.push(`<text x="${x}" y="${bottom + 18}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  parts.push(`<text x="${right}" y="${L.height - 4}" text-anchor="end">iteration</text>`);
  const drawn = clean.filter((s) => s.xs.length > 0);
  if (drawn.length === 0) {
    parts.push(
      `<text x="${(L.marginLeft + right) / 2}" y="${(L.marginTop + bottom) / 2}" text-anchor="middle">no data yet</text>`,
    );
  }
  drawn.forEach((s, k) => {
    const pts = s.xs.map((x, i) => scalePoint(x, s.ys[i] as number, xd, yd));
    parts.push(
      `<polyline data-series="${esc(s.name)}" fill="none" stroke="${s.color}" stroke-width="1.5" ` +
        `points="${pts.map(([x, y]) => `${x},${y}`).join(' ')}"/>`,
    );
    if (s.markers) {
      for (const [x, y] of pts) parts.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${s.color}"/>`);
    }
    if (series.length > 1) {
      const ly = L.marginTop + 14 + 14 * k;
      parts.push(
        `<line x1="${right - 150}" y1="${ly - 4}" x2="${right - 134}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`,
      );
      parts.push(`<text x="${right - 128}" y="${ly}">${esc(s.name)}</text>`);
    }
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** The report HTML for a history (pure; `writeTrainingPlot` writes it atomically). */
export function renderTrainingPlot(history: TrainingHistory, title: string): string {
  const evalIters = history.evals.map((e) => e.iter);
  const allX = [...history.iters, ...evalIters].filter((x) => Number.isFinite(x));
  // One shared x range so the three charts line up vertically.
  let xd: Domain = allX.length === 0 ? { lo: 0, hi: 1 } : { lo: Math.min(...allX), hi: Math.max(...allX) };
  if (xd.lo === xd.hi) xd = { lo: xd.lo - 1, hi: xd.hi + 1 };
  const withPresent = history.evals.filter((e) => e.miouPresent !== undefined);
  const miouSeries: Series[] = [
    {
      name: 'mIoU (all classes)',
      color: '#2ca02c',
      xs: evalIters,
      ys: history.evals.map((e) => e.miou),
      markers: true,
    },
  ];
  if (withPresent.length > 0) {
    miouSeries.push({
      name: 'mIoU (present classes)',
      color: '#9467bd',
      xs: withPresent.map((e) => e.iter),
      ys: withPresent.map((e) => e.miouPresent as number),
      markers: true,
    });
  }
  const charts = [
    chart(
      'Training loss',
      [{ name: 'loss', color: '#1f77b4', xs: history.iters, ys: history.loss, markers: false }],
      xd,
    ),
    chart(
      'Learning rate',
      [{ name: 'lr', color: '#ff7f0e', xs: history.iters, ys: history.lr, markers: false }],
      xd,
    ),
    chart('Validation mIoU', miouSeries, xd, { lo: 0, hi: 1 }),
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>
body { font-family: sans-serif; margin: 16px; color: #222; }
svg { display: block; margin: 8px 0 16px; }
svg text { font-size: 11px; fill: #333; }
svg text.title { font-size: 13px; font-weight: bold; }
.frame { fill: none; stroke: #999; }
.grid { stroke: #e5e5e5; }
.axis { stroke: #999; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
${charts.join('\n')}
</body>
</html>
`;
}

/** Writes the report to `path` via a temp file and rename, so readers never see half a file. */
export function writeTrainingPlot(path: string, history: TrainingHistory, title: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, renderTrainingPlot(history, title));
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // The temp file may never have been created.
    }
    throw err;
  }
}
