import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { backToBackMs } from '../src/kernels.js';
import { toMarkdown, writeReport } from '../src/report.js';
import { medianMs, type Row, rate } from '../src/timing.js';

const rows: Row[] = [
  { name: 'GEMM 1024x1024x1024', gflop: 2.147483648, oursMs: 200, theirsMs: 800, backToBackMs: 100 },
  { name: 'training step', gflop: 1, images: 2, oursMs: 100, theirsMs: null },
];

describe('benchmark reports', () => {
  it('rates are GFLOP/s, or img/s for training steps', () => {
    assert.ok(Math.abs(rate(rows[0] as Row, 200) - 10.737) < 1e-3);
    assert.equal(rate(rows[1] as Row, 100), 20);
  });

  it('the Markdown table carries both rates, ours back to back and the same-run ratio', () => {
    const md = toMarkdown({ title: 't', date: 'd', machine: { adapter: 'lavapipe' }, rows, notes: ['n1'] });
    assert.match(
      md,
      /\| GEMM 1024x1024x1024 \| 200\.0 \| 10\.74 GFLOP\/s \| 100\.00, 21\.47 GFLOP\/s \| 800\.0 \| 2\.68 GFLOP\/s \| 4\.00× \|/,
    );
    assert.match(md, /\| training step \| 100\.0 \| 20\.00 img\/s \| — \| — \| — \| — \|/);
    assert.match(md, /- adapter: lavapipe/);
    assert.match(md, /- n1/);
  });

  it('writes Markdown, JSON and an SVG plot under a stamped name through temp files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-'));
    const date = '2026-12-04T10:20:30.456Z';
    const files = writeReport(dir, 'kernels', { title: 't', date, machine: {}, rows, notes: [] });
    const stem = join(dir, 'kernels-2026-12-04T10-20-30-456Z');
    assert.deepEqual(files, [`${stem}.md`, `${stem}.json`, `${stem}.svg`]);
    assert.equal(JSON.parse(readFileSync(`${stem}.json`, 'utf8')).rows.length, 2);
    assert.equal(readFileSync(`${stem}.svg`, 'utf8').match(/<rect x="230"/g)?.length, 2);
  });

  it('back to back: calls filling about 20 ms before each wait, the time divided among them', async () => {
    let calls = 0;
    let waits = 0;
    // A 5 ms call: 4 a run; one warm-up run and 3 timed ones. Each wait takes 100 ms here: a
    // time per run not divided among its calls would be 100 ms or more.
    const ms = await backToBackMs(
      {
        sync: async () => {
          waits++;
          await new Promise((r) => setTimeout(r, 100));
        },
      },
      () => {
        calls++;
      },
      5,
      3,
    );
    assert.equal(calls, 16);
    assert.equal(waits, 4);
    assert.ok(ms >= 24 && ms < 100, `per call ${ms}`);
    // A call longer than the budget runs alone; at most 32 calls a run.
    calls = 0;
    await backToBackMs({ sync: async () => undefined }, () => calls++, 50, 1);
    assert.equal(calls, 2);
    calls = 0;
    await backToBackMs({ sync: async () => undefined }, () => calls++, 0.01, 1);
    assert.equal(calls, 64);
  });

  it('medianMs runs warm-up plus reps and takes the median', async () => {
    let calls = 0;
    // Far apart, so a loaded machine's late timers cannot reorder them, and a timer that fires up
    // to a millisecond early (Node starts it from the event loop's cached clock) cannot either.
    const delays = [300, 1, 150, 40];
    const ms = await medianMs(async () => {
      const d = delays[calls++] ?? 0;
      await new Promise((r) => setTimeout(r, d));
    }, 3);
    assert.equal(calls, 4);
    assert.ok(ms >= 30 && ms < 150, `median ${ms}`);
  });
});
