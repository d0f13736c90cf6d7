import { writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMALL_ALLREDUCE_BYTES } from '@segtrain/collective';
import { LINK_RATES, simNetUnavailable } from '@segtrain/collective/simnet';
import { loadConfig } from '@segtrain/config';
import { type ComponentConfig, withoutPretrained } from '@segtrain/models';
import {
  AUTOTUNE_ENV,
  type Device,
  GPU_POLL_ENV,
  getDevice,
  gpuPollModeFromEnv,
  type TuneResult,
} from '@segtrain/tensor';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { allReduceMarkdown, type BenchLink, parseSize, runAllReduceBench } from './allreduce.js';
import { compareMarkdown, compareReports, readReport } from './compare.js';
import { runKernelBench } from './kernels.js';
import { inputShape, NUM_CLASSES, runModelBench, selectModels } from './models.js';
import { barChartSvg, stampedName, writeReport, writeReportFiles } from './report.js';
import { analyse, calibrate, runScaling, scalingMarkdown, writeScalingReport } from './scaling.js';
import { STEP_PRESETS, splitStep } from './scaling-model.js';
import { loadTfjs } from './tfjs.js';
import { rate } from './timing.js';
import { benchTrainStep, type TrainBenchRow, trainBenchMarkdown, trainBenchSvg } from './train-bench.js';

type Shape = [number, number, number, number];

/** The three seed configs of the model zoo. */
const SEED_CONFIGS = [
  'pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml',
  'ocrnet/ocrnet_hrnetw18_cityscapes_1024x512_160k.yml',
  'segformer/segformer_b0_cityscapes_1024x1024_160k.yml',
].map((f) => fileURLToPath(new URL(`../../../configs/${f}`, import.meta.url)));

/** PP-LiteSeg-T's Cityscapes config, the model PaddleSeg's scaling table starts with. */
const DEFAULT_SCALING_CONFIG = fileURLToPath(
  new URL(
    '../../../configs/pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml',
    import.meta.url,
  ),
);

type BenchCommand = 'kernels' | 'models' | 'allreduce' | 'scaling' | 'train' | 'compare';

interface BenchOptions {
  readonly reps: number;
  readonly quick: boolean;
  readonly input?: Shape;
  readonly tfjs: boolean;
  readonly out: string;
  /** allreduce: process counts and buffer sizes in bytes. */
  readonly ranks?: readonly number[];
  readonly sizes?: readonly number[];
  /** allreduce: where ranks talk (loopback, or simulated nodes on shaped links). */
  readonly links?: readonly BenchLink[];
  /** scaling: the config, node counts, one link, the per-step compute (ms or a preset name), timed steps. */
  readonly config?: string;
  readonly nodes?: readonly number[];
  readonly stepMs?: string;
  readonly steps?: number;
  /** train: configs; compare: the two report files. */
  readonly configs?: readonly string[];
  readonly reports?: readonly [string, string];
  /** models: a name filter, and whether to profile. */
  readonly modelNames?: readonly string[];
  readonly profile?: boolean;
  /** kernels: GEMM sizes. */
  readonly gemmSizes?: readonly number[];
}

function list<T>(parse: (text: string) => T): (text: string) => T[] {
  return (text) =>
    text.split(',').map((part) => {
      try {
        return parse(part);
      } catch (error) {
        throw new InvalidArgumentError(`${(error as Error).message}.`);
      }
    });
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1)
    throw new InvalidArgumentError(`expected a positive integer, got '${text}'.`);
  return n;
}

function benchLink(text: string): BenchLink {
  if (text === 'loopback' || (LINK_RATES as readonly string[]).includes(text)) return text as BenchLink;
  throw new Error(`link '${text}' is not loopback, ${LINK_RATES.join(', ')}`);
}

function shape(text: string): Shape {
  const dims = text.split('x').map(Number);
  if (dims.length !== 4 || !dims.every((d) => Number.isInteger(d) && d > 0))
    throw new InvalidArgumentError(`expected NxCxHxW, e.g. 4x3x64x128, got '${text}'.`);
  return dims as Shape;
}

/** The `segtrain-bench` command tree (commander, as the `segtrain` CLI); `ran` receives the chosen run. */
export function benchProgram(ran: (command: BenchCommand, options: BenchOptions) => void): Command {
  const program = new Command('segtrain-bench')
    .description('Benchmarks with same-run baselines; each writes a Markdown and a JSON report')
    .exitOverride()
    .showSuggestionAfterError(true)
    .showHelpAfterError("(add --help for the command's options)");
  const common = (command: Command) =>
    command
      .option('--reps <N>', 'timed runs after one warm-up (the median is reported)', positiveInt, 3)
      .option('--quick', 'small sizes, for a smoke run', false)
      .option('--out <DIR>', 'where the reports go', 'bench-results');
  common(
    program
      .command('kernels')
      .description(
        'our WGSL kernels and, in the same run on the same adapter, @tensorflow/tfjs-backend-webgpu 4.22',
      ),
  )
    .option('--no-tfjs', 'skip the tfjs baseline')
    .option('--gemm <N,...>', 'GEMM sizes n of the n³ cases (default 1024,2048)', list(positiveInt))
    .action(function (this: Command) {
      const { gemm, ...o } = this.opts<{
        reps: number;
        quick: boolean;
        out: string;
        tfjs: boolean;
        gemm?: number[];
      }>();
      ran('kernels', { ...o, out: resolve(o.out), ...(gemm ? { gemmSizes: gemm } : {}) });
    });
  common(
    program
      .command('models')
      .description(
        'forward+backward images/s of each seed model at 2x3x256x512 (--quick: 1x3x64x128) beside the same-run GEMM 1024^3 rate',
      ),
  )
    .option('--input <NxCxHxW>', "another input shape, e.g. the demo's 4x3x64x128", shape)
    .option(
      '--models <NAME,...>',
      'only the seed models whose names contain these (e.g. liteseg,segformer)',
      list(String),
    )
    .option('--profile', 'also list the ten kernels with the most GPU time in one step', false)
    .action(function (this: Command) {
      const o = this.opts<{
        reps: number;
        quick: boolean;
        out: string;
        input?: Shape;
        models?: string[];
        profile: boolean;
      }>();
      const { models, profile, ...common } = o;
      ran('models', {
        ...common,
        tfjs: false,
        out: resolve(o.out),
        ...(profile ? { profile: true } : {}),
        ...(models ? { modelNames: models } : {}),
      });
    });
  common(
    program
      .command('allreduce')
      .description(
        'our allReduce with ranks as processes on this machine, bus bandwidth beside raw TCP between the same processes',
      ),
  )
    .option('--ranks <N,...>', 'process counts', list(positiveInt), [2, 4])
    .option('--sizes <S,...>', 'buffer sizes (4K, 1M, 16M, 64M or bytes)', list(parseSize), [
      4096,
      1 << 20,
      16 << 20,
      64 << 20,
    ])
    .option(
      '--link <L,...>',
      `loopback (ranks on this machine) or simulated nodes (network namespaces, needs root) on links of ${LINK_RATES.join(', ')}; default loopback, and 1gbit where simulated nodes can be made`,
      list(benchLink),
    )
    .action(function (this: Command) {
      const o = this.opts<{
        reps: number;
        quick: boolean;
        out: string;
        ranks: number[];
        sizes: number[];
        link?: BenchLink[];
      }>();
      ran('allreduce', { ...o, tfjs: false, out: resolve(o.out), ...(o.link ? { links: o.link } : {}) });
    });
  program
    .command('scaling')
    .description(
      "data-parallel step time and scaling ratio of a config's model on 1, 2, 4 simulated nodes, with a fitted model projecting 8–32 nodes",
    )
    .option('--config <FILE>', 'the PaddleSeg-style config whose model is measured', DEFAULT_SCALING_CONFIG)
    .option('--nodes <N,...>', 'node counts (1 is the base)', list(positiveInt), [1, 2, 4])
    .option(
      '--link <L>',
      `loopback, or simulated nodes on ${LINK_RATES.filter((l) => l !== 'none').join(', ')}`,
      benchLink,
      '10gbit',
    )
    .option(
      '--step-ms <T>',
      `per-rank compute of one step in ms, or a preset (${Object.keys(STEP_PRESETS).join(', ')}); default: measured here`,
    )
    .option('--input <NxCxHxW>', 'input of the calibration step', shape, [1, 3, 64, 128] as Shape)
    .option('--steps <N>', 'timed steps per node count', positiveInt, 5)
    .option('--out <DIR>', 'where the reports go', 'bench-results')
    .action(function (this: Command) {
      const o = this.opts<{
        config: string;
        nodes: number[];
        link: BenchLink;
        stepMs?: string;
        input: Shape;
        steps: number;
        out: string;
      }>();
      ran('scaling', {
        reps: o.steps,
        quick: false,
        tfjs: false,
        input: o.input,
        out: resolve(o.out),
        config: resolve(o.config),
        nodes: o.nodes,
        links: [o.link],
        steps: o.steps,
        ...(o.stepMs ? { stepMs: o.stepMs } : {}),
      });
    });
  program
    .command('train')
    .description(
      'the real training step of configs (model, loss, optimizer) in images/s, split into data, forward, backward, optimizer and communication, with GPU-pool bytes and RSS',
    )
    .option(
      '--config <FILE,...>',
      'configs (default: the three seed configs)',
      list((t: string) => resolve(t)),
    )
    .option('--input <NxCxHxW>', 'the batch (default 2x3x64x128: reduced size)', shape, [
      2, 3, 64, 128,
    ] as Shape)
    .option('--reps <N>', 'timed steps after one warm-up (the median is reported)', positiveInt, 3)
    .option('--out <DIR>', 'where the reports go', 'bench-results')
    .action(function (this: Command) {
      const o = this.opts<{ config?: string[]; input: Shape; reps: number; out: string }>();
      ran('train', {
        reps: o.reps,
        quick: false,
        tfjs: false,
        input: o.input,
        out: resolve(o.out),
        configs: o.config ?? SEED_CONFIGS,
      });
    });
  program
    .command('compare')
    .description(
      'the ratio table B / A between two reports of one suite (before/after a change, or two machines)',
    )
    .argument('<A.json[,A2.json...]>', 'report(s) of side A (several runs are averaged)')
    .argument('<B.json[,B2.json...]>', 'report(s) of side B')
    .option('--out <FILE>', 'also write the table to this Markdown file')
    .action(function (this: Command, a: string, b: string) {
      const o = this.opts<{ out?: string }>();
      ran('compare', {
        reps: 0,
        quick: false,
        tfjs: false,
        out: o.out ? resolve(o.out) : '',
        reports: [a, b],
      });
    });
  return program;
}

/** Runs one benchmark from the command line; returns the exit code. */
export async function runBench(argv: string[]): Promise<number> {
  let chosen: { command: BenchCommand; options: BenchOptions } | undefined;
  try {
    benchProgram((command, options) => {
      chosen = { command, options };
    }).parse(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }
  if (!chosen) return 2;
  const { command } = chosen;
  const { reps, quick, input, out } = chosen.options;
  const tfjsOn = chosen.options.tfjs;
  const log = (line: string) => process.stdout.write(`${line}\n`);
  if (command === 'allreduce') return allReduceBench(chosen.options, log);
  if (command === 'scaling') return scalingBench(chosen.options, log);
  if (command === 'compare') {
    const [a = '', b = ''] = chosen.options.reports ?? [];
    const side = (paths: string) => paths.split(',').filter((p) => p !== '');
    const markdown = compareMarkdown(a, b, compareReports(side(a).map(readReport), side(b).map(readReport)));
    if (out) writeFileSync(out, `${markdown}\n`);
    log(markdown);
    return 0;
  }
  const device = await getDevice();
  log(
    `adapter: ${device.adapterName}; subgroups: ${device.hasSubgroups ? `${device.subgroupMinSize}-${device.subgroupMaxSize}` : 'no'}`,
  );
  const machine = async () => ({
    adapter: device.adapterName,
    autotune: autotuneFact(device),
    'gpu poll': gpuPollModeFromEnv() === 'sleep' ? 'sleep (polite waits)' : `spin (${GPU_POLL_ENV}=spin)`,
    ...(await machineFacts()),
  });
  if (command === 'train') {
    const rows: TrainBenchRow[] = [];
    const shapeIn = input ?? [2, 3, 64, 128];
    for (const file of chosen.options.configs ?? SEED_CONFIGS) {
      const config = loadConfig(file);
      const row = await benchTrainStep(device, basename(file, '.yml'), config, shapeIn, reps);
      log(
        `${row.name}: ${row.stepMs.toFixed(1)} ms/step, ${row.imagesPerSecond.toFixed(2)} img/s (data ${row.dataMs.toFixed(1)}, forward ${row.forwardMs.toFixed(1)}, backward ${row.backwardMs.toFixed(1)}, optimizer ${row.optimizerMs.toFixed(1)} ms)`,
      );
      rows.push(row);
    }
    const date = new Date().toISOString();
    const facts = await machine();
    const files = writeReportFiles(
      out,
      stampedName('train', date),
      trainBenchMarkdown(rows, facts, date, reps),
      { date, machine: facts, rows },
      trainBenchSvg(rows),
    );
    log(trainBenchMarkdown(rows, facts, date, reps));
    log(`wrote ${files.join(', ')}`);
    device.destroy();
    return 0;
  }
  if (command === 'models') {
    const rows = await runModelBench(
      device,
      {
        reps,
        quick,
        ...(input ? { input } : {}),
        ...(chosen.options.modelNames ? { models: selectModels(chosen.options.modelNames) } : {}),
        ...(chosen.options.profile ? { profile: true } : {}),
      },
      log,
    );
    const name = input ? `models-${input.join('x')}` : quick ? 'models-quick' : 'models';
    const files = writeReport(out, name, {
      title: 'segtrain model benchmark',
      date: new Date().toISOString(),
      machine: await machine(),
      rows,
      notes: [
        `One training step: input ${(input ?? inputShape(quick)).join('x')}, random labels over ${NUM_CLASSES} classes; forward in train mode, ` +
          'sum of softmax cross-entropy over every output (main and auxiliary heads), backward; no optimizer update.',
        `Each time is the median of ${reps} run(s) after one warm-up, waiting for the GPU queue to drain.`,
        'GEMM 1024³ is our tensor matmul, timed the same way just before each model: compare img/s against it, ' +
          'not across runs, since the machine is shared and noisy.',
      ],
      table: 'models',
    });
    log(`wrote ${files.join(', ')}`);
    device.destroy();
    return 0;
  }
  const tfjs = tfjsOn ? await loadTfjs() : null;
  const rows = await runKernelBench(
    device,
    tfjs,
    { reps, quick, ...(chosen.options.gemmSizes ? { gemmSizes: chosen.options.gemmSizes } : {}) },
    log,
  );
  const gemm = rows[0];
  const notes = [
    'Each time is the median of the runs after one warm-up; both libraries wait for the GPU queue to drain after each call.',
    'Back to back: our time per call when the calls of a run (enough for about 20 ms, at most 32) are recorded before one wait, as inside a training step.',
    'tfjs runs NHWC (its native layout), we run NCHW; the FLOP counts are the same.',
  ];
  if (gemm) {
    const gemmRate = rate(gemm, gemm.oursMs);
    const gemmBackToBack = gemm.backToBackMs === undefined ? null : rate(gemm, gemm.backToBackMs);
    for (const row of rows.slice(1))
      if (!row.images) {
        const backToBack =
          gemmBackToBack === null || row.backToBackMs === undefined
            ? ''
            : ` (back to back: ${(rate(row, row.backToBackMs) / gemmBackToBack).toFixed(2)}×)`;
        notes.push(
          `${row.name}: ${(rate(row, row.oursMs) / gemmRate).toFixed(2)}× our GEMM 1024 rate${backToBack}`,
        );
      }
  }
  const date = new Date().toISOString();
  const files = writeReport(out, quick ? 'kernels-quick' : 'kernels', {
    title: 'segtrain kernel benchmark',
    date,
    machine: await machine(),
    rows,
    notes,
  });
  log(`wrote ${files.join(', ')}`);
  device.destroy();
  return 0;
}

/** No GPU here: ranks are processes of this machine, and the report says what bounds them. */
async function allReduceBench(o: BenchOptions, log: (line: string) => void): Promise<number> {
  const ranks = o.ranks ?? [2, 4];
  const sizes = o.quick ? [4096, 1 << 20] : (o.sizes ?? [4096, 1 << 20, 16 << 20, 64 << 20]);
  const { cpus, loadavg } = await import('node:os');
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const simulated = simNetUnavailable();
  const links = o.links ?? (simulated ? ['loopback' as const] : ['loopback' as const, '1gbit' as const]);
  if (simulated && !o.links) log(`no simulated nodes (${simulated}): loopback only`);
  const rows = await runAllReduceBench(ranks, links, sizes, o.reps, log);
  const date = new Date().toISOString();
  const notes = [
    `Each time is the median of ${o.reps} timings after 2 warm-ups, on rank 0; a timing starts after a barrier and averages back-to-back runs (50 at 4K, down to 1 from 4 MiB up), as nccl-tests does; sum of float32.`,
    "algbw = S/t and busbw = algbw·2(N−1)/N (nccl-tests' definitions; busbw compares with a link's speed at any N).",
    'Raw TCP: each rank sends 2(N−1)/N·S bytes to its right neighbour and receives as many from its left, over plain Node sockets between the same processes, in the same run; shown as the bus bandwidth it reaches.',
    `All ranks share this machine's ${cpus().length} cores (load average ${load} at the start). CPU busy is the CPU time (user + system) of all ranks per op over cores × wall time: near 100 % the column measures CPU, not a network. Over loopback the ring also reduces and copies what raw TCP only moves, so it cannot reach raw TCP there.`,
    'Simulated nodes: one network namespace per rank, veth pairs to a bridge, each link shaped by tbf to the rate in both directions (no added latency: this kernel has no netem). Raw TCP crosses the same links.',
    `Algorithm: up to ${SMALL_ALLREDUCE_BYTES / 1024} KiB recursive doubling (power-of-two ranks) or a direct exchange; above it the pipelined ring (1 MiB slices).`,
  ];
  const header = `# segtrain all-reduce benchmark\n\nRun ${date}, Node ${process.version}.`;
  const files = writeReportFiles(
    o.out,
    stampedName(o.quick ? 'allreduce-quick' : 'allreduce', date),
    allReduceMarkdown(rows, notes, header),
    { date, machine: await machineFacts(), rows, notes },
    barChartSvg(
      'all-reduce bus bandwidth (GB/s)',
      rows.map((r) => ({ label: `${r.link} N=${r.ranks} ${r.bytes} B`, value: r.busbwGBs })),
    ),
  );
  log(`wrote ${files.join(', ')}`);
  return 0;
}

/** The per-rank compute: `--step-ms` (ms or a preset), else what was measured here. */
export function stepCompute(
  stepMs: string | undefined,
  measured: { forwardMs: number; backwardMs: number },
): { forwardMs: number; backwardMs: number; source: string } {
  if (stepMs === undefined) return { ...measured, source: 'measured here, one rank alone' };
  const preset = STEP_PRESETS[stepMs];
  if (preset)
    return {
      ...splitStep(preset.ms),
      source: `--step-ms ${stepMs}: ${preset.ms} ms, ${preset.source}; split 1:2 forward:backward`,
    };
  const ms = Number(stepMs);
  if (!(ms > 0))
    throw new Error(
      `--step-ms ${stepMs} is neither a positive number of ms nor a preset (${Object.keys(STEP_PRESETS).join(', ')})`,
    );
  return { ...splitStep(ms), source: `--step-ms ${ms}, split 1:2 forward:backward` };
}

async function scalingBench(o: BenchOptions, log: (line: string) => void): Promise<number> {
  const link = o.links?.[0] ?? '10gbit';
  const nodes = o.nodes ?? [1, 2, 4];
  const unavailable = link === 'loopback' ? null : simNetUnavailable();
  if (unavailable && nodes.some((n) => n > 1)) {
    log(
      `segtrain-bench scaling: skipped: simulated nodes cannot be made here (${unavailable}); --link loopback runs the ranks on this machine instead`,
    );
    return 0;
  }
  const config = loadConfig(o.config ?? DEFAULT_SCALING_CONFIG);
  const modelBlock = withoutPretrained(config.model as unknown as ComponentConfig);
  const device = await getDevice();
  log(
    `adapter: ${device.adapterName}; calibrating ${modelBlock.type} at ${(o.input ?? [1, 3, 64, 128]).join('x')}`,
  );
  const calibration = await calibrate(
    device,
    `${modelBlock.type} (${config.source.file})`,
    modelBlock,
    o.input ?? [1, 3, 64, 128],
    3,
  );
  device.destroy();
  const compute = stepCompute(o.stepMs, calibration);
  log(
    `compute: forward ${calibration.forwardMs.toFixed(1)} ms, backward ${calibration.backwardMs.toFixed(1)} ms measured; using ${(compute.forwardMs + compute.backwardMs).toFixed(1)} ms (${compute.source})`,
  );
  const profile = {
    forwardMs: compute.forwardMs,
    backwardMs: compute.backwardMs,
    bucketBytes: calibration.bucketBytes,
  };
  const reports = await runScaling(profile, nodes, link, o.steps ?? 5, log);
  const result = analyse(profile, link, reports);
  const input = {
    date: new Date().toISOString(),
    calibration,
    computeSource: compute.source,
    result,
    steps: o.steps ?? 5,
  };
  const markdown = scalingMarkdown(input);
  log(markdown);
  log(`wrote ${writeScalingReport(o.out, input).join(', ')}`);
  return 0;
}

/** The chosen variant's time over the default's, as timed while tuning. */
function tunedRatio(c: TuneResult): string {
  const [chosen, fallback] = [c.ms[c.chosen], c.ms[c.fallback]];
  return chosen && fallback ? `${(chosen / fallback).toFixed(2)}× ${c.fallback}` : 'default';
}

/** Whether kernels were tuned for this run, and the choices it used (a report names its variants). */
export function autotuneFact(device: Device): string {
  const { enabled, cacheFile } = device.tuner.options;
  if (!enabled) return `off (the measured defaults; ${AUTOTUNE_ENV}=1 tunes)`;
  const choices = device.tuner.choices();
  return `on, ${choices.length} shape class(es) tuned here or read from ${cacheFile ?? 'no cache'}: ${choices
    .map((c) => `${c.shapeClass} → ${c.chosen} (${tunedRatio(c)})`)
    .join('; ')}`;
}

/** What every report records about the machine besides the adapter. */
async function machineFacts(): Promise<Record<string, string>> {
  const os = await import('node:os');
  return {
    node: process.version,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    os: `${os.platform()} ${os.release()}`,
    'load average': os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}
