import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { stepCompute } from '../src/cli.js';
import { analyse, runScaling, scalingMarkdown, scalingSvg, TCP_GOODPUT } from '../src/scaling.js';
import { allReduceMs, fitLink, modelStepMs, scalingPoint, splitStep } from '../src/scaling-model.js';
import type { ScalingWorkerReport } from '../src/scaling-worker.js';

const close = (got: number, want: number, tol = 1e-9) =>
  assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `${got} vs ${want}`);

describe('scaling model arithmetic', () => {
  it('one all-reduce: 2(N−1)·α + 2(N−1)/N·s/B, nothing on one node', () => {
    const link = { alphaMs: 0.1, bytesPerMs: 1000 };
    assert.equal(allReduceMs(link, 4000, 1), 0);
    close(allReduceMs(link, 4000, 4), 6 * 0.1 + 1.5 * 4);
    close(allReduceMs(link, 4000, 2), 2 * 0.1 + 4);
  });

  it('step: buckets ready during backward by bytes, chained; compute bounds it from below', () => {
    const profile = { forwardMs: 10, backwardMs: 20, bucketBytes: [100, 300] };
    const link = { alphaMs: 0, bytesPerMs: 10 };
    // Bucket 0 ready at 15, done 25; bucket 1 ready at 30, done 30 + 30 = 60.
    close(modelStepMs(profile, link, 2), 60);
    close(modelStepMs(profile, link, 1), 30);
    close(modelStepMs(profile, { alphaMs: 0, bytesPerMs: 1e9 }, 8), 30, 1e-6);
  });

  it('the fit recovers α and B from exact times, and clamps a negative α', () => {
    const truth = { alphaMs: 0.25, bytesPerMs: 5e5 };
    const samples = [2, 4].flatMap((nodes) =>
      [1e5, 1e6, 4e6].map((bytes) => ({ nodes, bytes, ms: allReduceMs(truth, bytes, nodes) })),
    );
    const fitted = fitLink(samples);
    close(fitted.alphaMs, 0.25, 1e-6);
    close(fitted.bytesPerMs, 5e5, 1e-6);
    const noAlpha = fitLink([
      { nodes: 2, bytes: 1e6, ms: 1 },
      { nodes: 2, bytes: 2e6, ms: 2.5 },
    ]);
    assert.equal(noAlpha.alphaMs, 0);
    assert.throws(() => fitLink([{ nodes: 1, bytes: 1, ms: 1 }]), /2 or more nodes/);
  });

  it('efficiency and ratio; --step-ms presets and values', () => {
    const p = scalingPoint(4, 250, 200);
    close(p.efficiency, 0.8);
    close(p.ratio, 3.2);
    assert.deepEqual(splitStep(90), { forwardMs: 30, backwardMs: 60 });
    const h200 = stepCompute('h200', { forwardMs: 1, backwardMs: 2 });
    close(h200.forwardMs + h200.backwardMs, 137);
    assert.match(h200.source, /H200/);
    assert.equal(stepCompute(undefined, { forwardMs: 1, backwardMs: 2 }).backwardMs, 2);
    assert.throws(() => stepCompute('fast', { forwardMs: 1, backwardMs: 2 }), /neither a positive number/);
  });
});

describe('scaling report', () => {
  const profile = { forwardMs: 100, backwardMs: 200, bucketBytes: [1 << 20, 4 << 20] };
  const truth = { alphaMs: 0.5, bytesPerMs: 1e6 };
  const report = (nodes: number, stepMs: number): ScalingWorkerReport => ({
    nodes,
    stepMs,
    stepsMs: [stepMs],
    bucketMs: profile.bucketBytes.map((b) => allReduceMs(truth, b, nodes)),
  });
  const result = analyse(profile, '10gbit', [report(1, 300), report(2, 302), report(4, 330)]);

  it('measured rows, the fitted model, projections and the line-rate projection', () => {
    const [one, two, four] = result.measured;
    close(one?.efficiency ?? 0, 1);
    close(two?.efficiency ?? 0, 300 / 302);
    close(four?.ratio ?? 0, (4 * 300) / 330);
    close(two?.exposedMs ?? 0, 2, 1e-9);
    const alone = allReduceMs(truth, 1 << 20, 2) + allReduceMs(truth, 4 << 20, 2);
    close(two?.commAloneMs ?? 0, alone);
    close(two?.overlap ?? 0, 1 - 2 / alone, 1e-9);
    close(result.fitted.alphaMs, 0.5, 1e-6);
    close(four?.modelMs ?? 0, modelStepMs(profile, truth, 4), 1e-6);
    close(four?.modelError ?? 0, (modelStepMs(profile, truth, 4) - 330) / 330, 1e-6);
    assert.deepEqual(
      result.projected.map((p) => p.nodes),
      [8, 16, 32],
    );
    close(result.projected[2]?.stepMs ?? 0, modelStepMs(profile, truth, 32), 1e-6);
    close(result.atLineRate?.link.bytesPerMs ?? 0, (TCP_GOODPUT * 10e9) / 8 / 1000);
    assert.deepEqual(
      result.atLineRate?.points.map((p) => p.nodes),
      [2, 4, 8, 16, 32],
    );
  });

  it('Markdown labels projections and cites PaddleSeg; the plot has a point per row', () => {
    const md = scalingMarkdown({
      date: '2026-12-04T00:00:00.000Z',
      calibration: {
        adapter: 'lavapipe',
        model: 'M',
        input: [1, 3, 64, 128],
        params: 1310720,
        forwardMs: 100,
        backwardMs: 200,
        bucketBytes: profile.bucketBytes,
      },
      computeSource: 'measured here, one rank alone',
      result,
      steps: 5,
    });
    assert.match(md, /\| 4 \| 330\.0 \| 300\.0 \| 30\.0 \|/);
    assert.match(md, /\| 32 \(projected\) \|/);
    assert.match(md, /PP-LiteSeg-T \(STDC1\) \| 4 \| 3\.03× \| 0\.76/);
    assert.match(md, /distributed_train\.md/);
    const svg = scalingSvg(result);
    assert.ok(svg.startsWith('<svg'));
    assert.equal(svg.match(/<circle/g)?.length, 6);
  });
});

describe('scaling worker', () => {
  it('runs 1 and 2 ranks over loopback with a stand-in step and the real all-reduces', async () => {
    const profile = { forwardMs: 20, backwardMs: 40, bucketBytes: [65536, 262144] };
    const reports = await runScaling(profile, [1, 2], 'loopback', 3, () => undefined);
    assert.deepEqual(
      reports.map((r) => [r.nodes, r.stepsMs.length, r.bucketMs.length]),
      [
        [1, 3, 2],
        [2, 3, 2],
      ],
    );
    // A step cannot be shorter than the compute it stands in for.
    for (const r of reports) assert.ok(r.stepMs >= 60 - 1, `${r.stepMs} ms`);
    assert.ok((reports[1]?.bucketMs[1] ?? 0) > 0);
  }, 60_000);
});
