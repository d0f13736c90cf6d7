import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import {
  niceDomain,
  niceTicks,
  PLOT_LAYOUT,
  renderTrainingPlot,
  scalePoint,
  type TrainingHistory,
  writeTrainingPlot,
} from '../src/plot.js';

const root = mkdtempSync(join(tmpdir(), 'segtrain-plot-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const history: TrainingHistory = {
  iters: [10, 20, 30, 40],
  loss: [2, 1.5, 1, 0.5],
  lr: [0.00001, 0.000055, 0.0001, 0.00005],
  evals: [
    { iter: 20, miou: 0.3, miouPresent: 0.6 },
    { iter: 40, miou: 0.5, miouPresent: 0.8 },
  ],
};

function svgs(html: string): string[] {
  return [...html.matchAll(/<svg\b[\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

function points(svg: string, series: string): Array<[number, number]> {
  const m = new RegExp(
    `<polyline data-series="${series.replace(/[()]/g, '\\$&')}"[^>]*points="([^"]*)"`,
  ).exec(svg);
  assert.ok(m, `no polyline for ${series}`);
  return (m[1] as string).split(' ').map((p) => p.split(',').map(Number) as [number, number]);
}

describe('ticks and domains', () => {
  it('niceTicks uses 1/2/5 steps without float noise', () => {
    assert.deepEqual(niceTicks(0.5, 2), [0.5, 1, 1.5, 2]);
    assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(0.00001, 0.0001), [0, 0.00002, 0.00004, 0.00006, 0.00008, 0.0001]);
    assert.deepEqual(niceTicks(0, 0.0001), [0, 0.00002, 0.00004, 0.00006, 0.00008, 0.0001]);
    assert.deepEqual(niceTicks(3, 3), [3]);
  });

  it('niceDomain widens to ticks and pads a flat series', () => {
    assert.deepEqual(niceDomain([2, 1.5, 1, 0.5]), { lo: 0.5, hi: 2 });
    assert.deepEqual(niceDomain([0.7, 0.7]), { lo: 0.2, hi: 1.2 });
    assert.deepEqual(niceDomain([]), { lo: 0, hi: 1 });
    assert.deepEqual(niceDomain([Number.NaN, 1, 3]), { lo: 1, hi: 3 });
  });
});

describe('writeTrainingPlot', () => {
  it('writes three SVG charts whose polylines are the scaled data, with no temp file left', () => {
    const path = join(root, 'out', 'training.html');
    writeTrainingPlot(path, history, 'PP-LiteSeg <mini> & co');
    assert.deepEqual(readdirSync(join(root, 'out')), ['training.html']);
    const html = readFileSync(path, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /<title>PP-LiteSeg &lt;mini&gt; &amp; co<\/title>/);
    assert.doesNotMatch(html, /<script|<link|@import|url\(/);
    const charts = svgs(html);
    assert.equal(charts.length, 3);
    const [loss, lr, miou] = charts as [string, string, string];

    // Loss: x domain [10, 40] shared by all charts, y domain [0.5, 2].
    const L = PLOT_LAYOUT;
    const lp = points(loss, 'loss');
    assert.equal(lp.length, 4);
    assert.deepEqual(lp[0], [L.marginLeft, L.marginTop]);
    assert.deepEqual(lp[3], [L.width - L.marginRight, L.height - L.marginBottom]);
    const plotW = L.width - L.marginLeft - L.marginRight;
    const plotH = L.height - L.marginTop - L.marginBottom;
    const [x1, y1] = lp[1] as [number, number];
    assert.ok(Math.abs(x1 - (L.marginLeft + plotW / 3)) < 0.01);
    assert.ok(Math.abs(y1 - (L.marginTop + plotH / 3)) < 0.01);
    assert.match(loss, /data-x-domain="10 40" data-y-domain="0.5 2"/);
    // Tick labels on both axes.
    assert.match(loss, />1\.5<\/text>/);
    assert.match(loss, />25<\/text>/);

    // LR: ticks spelled compactly; point matches scalePoint with the chart's own domain.
    assert.match(lr, /data-y-domain="0 0.0001"/);
    assert.match(lr, />6e-5<\/text>/);
    assert.match(lr, />2e-5<\/text>/);
    assert.deepEqual(
      points(lr, 'lr')[1],
      scalePoint(20, 0.000055, { lo: 10, hi: 40 }, { lo: 0, hi: 0.0001 }),
    );

    // mIoU on a fixed [0, 1] axis with both series and markers.
    assert.match(miou, /data-y-domain="0 1"/);
    assert.deepEqual(points(miou, 'mIoU (all classes)'), [
      scalePoint(20, 0.3, { lo: 10, hi: 40 }, { lo: 0, hi: 1 }),
      scalePoint(40, 0.5, { lo: 10, hi: 40 }, { lo: 0, hi: 1 }),
    ]);
    assert.equal(points(miou, 'mIoU (present classes)')[1]?.[1], L.marginTop + 0.2 * plotH);
    assert.equal((miou.match(/<circle /g) ?? []).length, 4);
  });

  it('overwrites an existing report and handles an empty history', () => {
    const path = join(root, 'empty.html');
    writeTrainingPlot(path, history, 'first');
    writeTrainingPlot(path, { iters: [], loss: [], lr: [], evals: [] }, 'second');
    const html = readFileSync(path, 'utf8');
    assert.match(html, /<title>second<\/title>/);
    assert.equal(svgs(html).length, 3);
    assert.equal((html.match(/no data yet/g) ?? []).length, 3);
    assert.equal(readdirSync(root).filter((f) => f.includes('.tmp')).length, 0);
  });

  it('skips non-finite values and caps long series', () => {
    const n = 10_000;
    const iters = Array.from({ length: n }, (_, i) => i + 1);
    const loss = iters.map((i) => (i === 5000 ? 100 : i === 7 ? Number.NaN : 1 / i));
    const html = renderTrainingPlot({ iters, loss, lr: loss, evals: [] }, 't');
    const lp = points(svgs(html)[0] as string, 'loss');
    assert.ok(lp.length <= PLOT_LAYOUT.maxPoints);
    assert.ok(lp.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
    // The spike survives decimation: the top of the plot area is reached.
    assert.ok(lp.some(([, y]) => y === PLOT_LAYOUT.marginTop));
  });

  it('removes its temp file when the rename fails', () => {
    const dir = join(root, 'fail');
    // A non-empty directory at the target path makes the rename fail after the temp file is written.
    const path = join(dir, 'r.html');
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'keep'), 'x');
    assert.throws(() => writeTrainingPlot(path, history, 'x'));
    assert.deepEqual(readdirSync(dir), ['r.html']);
  });
});
