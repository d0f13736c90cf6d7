/**
 * `segtrain-bench scaling`: the data-parallel step of a config's model on 1, 2, 4 simulated nodes
 * (network namespaces on shaped links), with the per-rank compute measured here first and then
 * replaced by a wait of the same length (2 cores cannot compute for 4 ranks), the real bucket layout
 * and the real collective. A latency-bandwidth model fitted to the measurements projects 8–32 nodes.
 */
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { linkBitsPerSecond } from '@segtrain/collective/simnet';
import { buildModel, type ComponentConfig } from '@segtrain/models';
import { seedInitializers } from '@segtrain/nn';
import * as T from '@segtrain/tensor';
import { bucketLayout } from '@segtrain/trainer';
import { type BenchLink, runBenchJob } from './job.js';
import { syntheticBatch } from './models.js';
import { stampedName, writeReportFiles } from './report.js';
import {
  type CommSample,
  fitLink,
  type LinkModel,
  modelStepMs,
  PADDLESEG_RATIOS,
  type ScalingPoint,
  type StepProfile,
  scalingPoint,
} from './scaling-model.js';
import type { ScalingWorkerReport } from './scaling-worker.js';
import { median } from './timing.js';

const WORKER = fileURLToPath(new URL('../dist/scaling-worker.js', import.meta.url));
export const PROJECTED_NODES = [8, 16, 32] as const;
/** TCP goodput through a tbf-shaped link, as a share of its rate (measured, COLLECTIVES.md §8). */
export const TCP_GOODPUT = 0.957;

export interface Calibration {
  readonly adapter: string;
  readonly model: string;
  readonly input: readonly number[];
  readonly params: number;
  readonly forwardMs: number;
  readonly backwardMs: number;
  readonly bucketBytes: readonly number[];
}

/** Forward (train mode, Σ CE over the outputs) and backward of the model alone on this adapter, medians. */
export async function calibrate(
  device: T.Device,
  name: string,
  modelConfig: ComponentConfig,
  input: readonly [number, number, number, number],
  reps: number,
): Promise<Calibration> {
  const [n, c, h, w] = input;
  const batch = syntheticBatch(input);
  const x = T.tensor(device, batch.image, [n, c, h, w]);
  const y = T.tensor(device, batch.labels, [n, h, w], 'i32');
  seedInitializers(1);
  const model = buildModel(device, modelConfig);
  model.train();
  const params = model.parameters();
  const forward: number[] = [];
  const backward: number[] = [];
  try {
    for (let i = 0; i <= reps; i++) {
      await device.sync();
      // One scope for both halves: the backward needs the forward's saved activations.
      const [t0, t1, t2] = await T.tidyAsync(async () => {
        const start = performance.now();
        const losses = model.forward(x).map((logits) => T.softmaxCrossEntropy(logits, y, {}));
        const loss = losses.slice(1).reduce((acc, l) => T.add(acc, l), losses[0] as T.Tensor);
        await device.sync();
        const forwardDone = performance.now();
        T.backward(loss);
        await device.sync();
        return [start, forwardDone, performance.now()];
      });
      for (const p of params) {
        p.grad?.dispose();
        p.grad = null;
      }
      // The first run compiles the kernels: not timed.
      if (i > 0) {
        forward.push((t1 as number) - (t0 as number));
        backward.push((t2 as number) - (t1 as number));
      }
    }
    const sizes = params.map((p) => p.size);
    const bucketBytes = bucketLayout(sizes).map((b) => b.reduce((s, i) => s + (sizes[i] ?? 0) * 4, 0));
    return {
      adapter: device.adapterName,
      model: name,
      input,
      params: sizes.reduce((a, b) => a + b, 0),
      forwardMs: median(forward),
      backwardMs: median(backward),
      bucketBytes,
    };
  } finally {
    model.dispose();
    x.dispose();
    y.dispose();
  }
}

export interface MeasuredRow extends ScalingPoint {
  readonly computeMs: number;
  /** Step time beyond the compute: communication backward did not hide. */
  readonly exposedMs: number;
  /** The buckets' all-reduces run alone, back to back. */
  readonly commAloneMs: number;
  /** Share of the communication hidden behind backward: 1 − exposed / alone. */
  readonly overlap: number;
  readonly modelMs: number;
  /** (model − measured) / measured. */
  readonly modelError: number;
}

export interface ScalingResult {
  readonly profile: StepProfile;
  readonly link: BenchLink;
  readonly fitted: LinkModel;
  readonly measured: readonly MeasuredRow[];
  readonly projected: readonly ScalingPoint[];
  /**
   * The same model with the link's TCP goodput instead of the fitted B (α as fitted): where a real
   * NIC of this rate would be, beyond the 2 shared cores that bound B here. Null on loopback.
   */
  readonly atLineRate: { readonly link: LinkModel; readonly points: readonly ScalingPoint[] } | null;
}

/** Measured rows, the fitted link and the projections from worker reports (pure: tested on fixed inputs). */
export function analyse(
  profile: StepProfile,
  link: BenchLink,
  reports: readonly ScalingWorkerReport[],
): ScalingResult {
  const samples: CommSample[] = reports.flatMap((r) =>
    r.bucketMs.map((ms, i) => ({ nodes: r.nodes, bytes: profile.bucketBytes[i] ?? 0, ms })),
  );
  const fitted = fitLink(samples);
  const one = reports.find((r) => r.nodes === 1);
  const computeMs = profile.forwardMs + profile.backwardMs;
  const base = one?.stepMs ?? computeMs;
  const measured = reports.map((r): MeasuredRow => {
    const commAloneMs = r.bucketMs.reduce((a, b) => a + b, 0);
    const exposedMs = Math.max(0, r.stepMs - computeMs);
    const modelMs = modelStepMs(profile, fitted, r.nodes);
    return {
      ...scalingPoint(r.nodes, r.stepMs, base),
      computeMs,
      exposedMs,
      commAloneMs,
      overlap: commAloneMs > 0 ? Math.max(0, 1 - exposedMs / commAloneMs) : 1,
      modelMs,
      modelError: (modelMs - r.stepMs) / r.stepMs,
    };
  });
  const modelBase = modelStepMs(profile, fitted, 1);
  const project = (model: LinkModel, nodes: readonly number[]) =>
    nodes.map((n) => scalingPoint(n, modelStepMs(profile, model, n), modelBase));
  const projected = project(fitted, PROJECTED_NODES);
  const bits = link === 'loopback' ? null : linkBitsPerSecond(link);
  const lineRate = bits ? { alphaMs: fitted.alphaMs, bytesPerMs: (TCP_GOODPUT * bits) / 8 / 1000 } : null;
  const atLineRate = lineRate
    ? { link: lineRate, points: project(lineRate, [2, 4, ...PROJECTED_NODES]) }
    : null;
  return { profile, link, fitted, measured, projected, atLineRate };
}

export async function runScaling(
  profile: StepProfile,
  nodes: readonly number[],
  link: BenchLink,
  steps: number,
  log: (line: string) => void,
): Promise<ScalingWorkerReport[]> {
  const reports: ScalingWorkerReport[] = [];
  for (const n of nodes) {
    // One node needs no link.
    const report = await runBenchJob<ScalingWorkerReport>(
      'scaling job',
      WORKER,
      n,
      n === 1 ? 'loopback' : link,
      {
        FORWARD_MS: String(profile.forwardMs),
        BACKWARD_MS: String(profile.backwardMs),
        BUCKET_BYTES: profile.bucketBytes.join(','),
        STEPS: String(steps),
      },
    );
    log(
      `${n} node(s) on ${n === 1 ? 'no link' : link}: step ${report.stepMs.toFixed(1)} ms (compute ${(profile.forwardMs + profile.backwardMs).toFixed(1)} ms), buckets alone ${report.bucketMs.reduce((a, b) => a + b, 0).toFixed(1)} ms`,
    );
    reports.push(report);
  }
  return reports;
}

const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '—');
const pct = (n: number) => `${(100 * n).toFixed(1)} %`;

export interface ScalingReportInput {
  readonly date: string;
  readonly calibration: Calibration;
  readonly computeSource: string;
  readonly result: ScalingResult;
  readonly steps: number;
}

export function scalingMarkdown(r: ScalingReportInput): string {
  const { calibration: c, result } = r;
  const { profile, fitted } = result;
  const gradMB = profile.bucketBytes.reduce((a, b) => a + b, 0) / 2 ** 20;
  const lines = [
    '# segtrain scaling benchmark',
    '',
    `Run ${r.date}; Node ${process.version}; ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}.`,
    '',
    `- Adapter: ${c.adapter}.`,
    `- Model: ${c.model}, ${c.params.toLocaleString('en-US')} trainable parameters = ${f(gradMB)} MiB of gradients in ${profile.bucketBytes.length} buckets (${profile.bucketBytes.map((b) => f(b / 2 ** 20)).join(', ')} MiB, launch order).`,
    `- Compute measured here (${c.input.join('×')}, one rank alone): forward ${f(c.forwardMs, 1)} ms, backward ${f(c.backwardMs, 1)} ms.`,
    `- Per-rank compute used for the nodes: forward ${f(profile.forwardMs, 1)} ms + backward ${f(profile.backwardMs, 1)} ms (${r.computeSource}), replaced by waits of that length: this machine's 2 cores cannot compute for several ranks, and a wait costs no CPU, so the communication runs as it would beside a GPU.`,
    `- Link: ${result.link === 'loopback' ? 'loopback (ranks on this machine)' : `${result.link} per node: one network namespace per node, veth pairs to a bridge, tbf shaping both directions; no added latency (this kernel has no netem)`}.`,
    '',
    '## Measured',
    '',
    '| nodes | step ms | compute ms | exposed comm ms | comm alone ms | overlap | efficiency | ratio | model ms | model error |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...result.measured.map(
      (m) =>
        `| ${m.nodes} | ${f(m.stepMs, 1)} | ${f(m.computeMs, 1)} | ${f(m.exposedMs, 1)} | ${f(m.commAloneMs, 1)} | ${m.nodes === 1 ? '—' : pct(m.overlap)} | ${f(m.efficiency, 3)} | ${f(m.ratio)}× | ${f(m.modelMs, 1)} | ${pct(m.modelError)} |`,
    ),
    '',
    `Step: median of ${r.steps} steps on rank 0 after one warm-up; efficiency = step(1) / step(N) (the per-node batch is fixed), ratio = N × efficiency. Comm alone: each bucket's all-reduce by itself, back to back.`,
    '',
    '## Fitted model (projected rows)',
    '',
    `All-reduce of s bytes on N nodes = 2(N−1)·α + 2(N−1)/N·s/B, fitted by least squares to the buckets' measured all-reduce times: α = ${f(fitted.alphaMs * 1000, 1)} µs, B = ${f((fitted.bytesPerMs * 1000) / 1e9, 3)} GB/s. Bucket i is ready at forward + backward·(bytes up to i)/(all bytes); its all-reduce starts when it is ready and the previous one is done; step = max(compute, last all-reduce done).`,
    '',
    '| nodes | step ms | efficiency | ratio |',
    '|---:|---:|---:|---:|',
    ...result.projected.map(
      (p) => `| ${p.nodes} (projected) | ${f(p.stepMs, 1)} | ${f(p.efficiency, 3)} | ${f(p.ratio)}× |`,
    ),
    '',
    ...(result.atLineRate
      ? [
          `With the link at its TCP goodput (${pct(TCP_GOODPUT)} of ${result.link}: B = ${f((result.atLineRate.link.bytesPerMs * 1000) / 1e9, 3)} GB/s) and the fitted α — what nodes with their own cores and a real NIC of this rate would see; B above is bounded by this machine's 2 cores, shared by every rank's ZeroMQ threads and reductions:`,
          '',
          '| nodes | step ms | efficiency | ratio |',
          '|---:|---:|---:|---:|',
          ...result.atLineRate.points.map(
            (p) => `| ${p.nodes} (projected) | ${f(p.stepMs, 1)} | ${f(p.efficiency, 3)} | ${f(p.ratio)}× |`,
          ),
          '',
        ]
      : []),
    '## Beside PaddleSeg',
    '',
    "PaddleSeg's published ratios (docs/train/distributed_train.md: machines of 8 V100, one machine as the base; time to train with the iteration counts changed, data loading and evaluation included):",
    '',
    '| model | machines | ratio | efficiency |',
    '|---|---:|---:|---:|',
    ...PADDLESEG_RATIOS.map(
      (p) => `| ${p.model} | ${p.machines} | ${f(p.ratio)}× | ${f(p.ratio / p.machines, 2)} |`,
    ),
    '',
    'Ours count communication only (a node here is one rank; data loading, evaluation and SyncBN exchanges are left out), so they bound end-to-end ratios from above.',
    '',
  ];
  return lines.join('\n');
}

/** Ratio against nodes: ideal, measured, projected (log2 x-axis). */
export function scalingSvg(result: ScalingResult): string {
  const points = [...result.measured, ...result.projected];
  const maxN = Math.max(...points.map((p) => p.nodes), 2);
  const W = 480;
  const H = 320;
  const pad = 40;
  const x = (n: number) => pad + ((W - 2 * pad) * Math.log2(n)) / Math.log2(maxN);
  const y = (ratio: number) => H - pad - ((H - 2 * pad) * ratio) / maxN;
  const path = (ps: readonly ScalingPoint[]) =>
    ps.map((p, i) => `${i ? 'L' : 'M'}${f(x(p.nodes), 1)},${f(y(p.ratio), 1)}`).join(' ');
  const dots = (ps: readonly ScalingPoint[], color: string) =>
    ps
      .map((p) => `<circle cx="${f(x(p.nodes), 1)}" cy="${f(y(p.ratio), 1)}" r="4" fill="${color}"/>`)
      .join('');
  const ideal = [1, maxN].map((n) => ({ nodes: n, ratio: n, stepMs: 0, efficiency: 1 }));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="black"/>`,
    `<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${H - pad}" stroke="black"/>`,
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">nodes (log scale)</text>`,
    `<text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">acceleration ratio</text>`,
    `<path d="${path(ideal)}" stroke="#999" stroke-dasharray="4 4" fill="none"/>`,
    `<path d="${path(result.measured)}" stroke="#1f77b4" fill="none"/>${dots(result.measured, '#1f77b4')}`,
    `<path d="${path(result.projected)}" stroke="#ff7f0e" stroke-dasharray="6 3" fill="none"/>${dots(result.projected, '#ff7f0e')}`,
    ...points.map(
      (p) => `<text x="${f(x(p.nodes), 1)}" y="${H - pad + 14}" text-anchor="middle">${p.nodes}</text>`,
    ),
    `<text x="${pad + 8}" y="${pad}" fill="#1f77b4">measured</text>`,
    `<text x="${pad + 8}" y="${pad + 16}" fill="#ff7f0e">projected (fitted model)</text>`,
    `<text x="${pad + 8}" y="${pad + 32}" fill="#999">ideal</text>`,
    '</svg>',
    '',
  ].join('\n');
}

/** Writes `<dir>/scaling-<stamp>.{md,json,svg}`. */
export function writeScalingReport(dir: string, input: ScalingReportInput): string[] {
  return writeReportFiles(
    dir,
    stampedName('scaling', input.date),
    scalingMarkdown(input),
    input,
    scalingSvg(input.result),
  );
}
