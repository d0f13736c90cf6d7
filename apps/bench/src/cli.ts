import { resolve } from 'node:path';
import { getDevice } from '@segtrain/tensor';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { runKernelBench } from './kernels.js';
import { inputShape, NUM_CLASSES, runModelBench } from './models.js';
import { writeReport } from './report.js';
import { loadTfjs } from './tfjs.js';
import { rate } from './timing.js';

type Shape = [number, number, number, number];

interface BenchOptions {
  readonly reps: number;
  readonly quick: boolean;
  readonly input?: Shape;
  readonly tfjs: boolean;
  readonly out: string;
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1)
    throw new InvalidArgumentError(`expected a positive integer, got '${text}'.`);
  return n;
}

function shape(text: string): Shape {
  const dims = text.split('x').map(Number);
  if (dims.length !== 4 || !dims.every((d) => Number.isInteger(d) && d > 0))
    throw new InvalidArgumentError(`expected NxCxHxW, e.g. 4x3x64x128, got '${text}'.`);
  return dims as Shape;
}

/** The `segtrain-bench` command tree (commander, as the `segtrain` CLI); `ran` receives the chosen run. */
export function benchProgram(ran: (command: 'kernels' | 'models', options: BenchOptions) => void): Command {
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
    .action(function (this: Command) {
      const o = this.opts<{ reps: number; quick: boolean; out: string; tfjs: boolean }>();
      ran('kernels', { ...o, out: resolve(o.out) });
    });
  common(
    program
      .command('models')
      .description(
        'forward+backward images/s of each seed model at 2x3x256x512 (--quick: 1x3x64x128) beside the same-run GEMM 1024^3 rate',
      ),
  )
    .option('--input <NxCxHxW>', "another input shape, e.g. the demo's 4x3x64x128", shape)
    .action(function (this: Command) {
      const o = this.opts<{ reps: number; quick: boolean; out: string; input?: Shape }>();
      ran('models', { ...o, tfjs: false, out: resolve(o.out) });
    });
  return program;
}

/** Runs one benchmark from the command line; returns the exit code. */
export async function runBench(argv: string[]): Promise<number> {
  let chosen: { command: 'kernels' | 'models'; options: BenchOptions } | undefined;
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
  const device = await getDevice();
  const log = (line: string) => process.stdout.write(`${line}\n`);
  log(
    `adapter: ${device.adapterName}; subgroups: ${device.hasSubgroups ? `${device.subgroupMinSize}-${device.subgroupMaxSize}` : 'no'}`,
  );
  const machine = async () => ({
    adapter: device.adapterName,
    node: process.version,
    cpus: String((await import('node:os')).cpus().length),
  });
  if (command === 'models') {
    const rows = await runModelBench(device, { reps, quick, ...(input ? { input } : {}) }, log);
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
  const rows = await runKernelBench(device, tfjs, { reps, quick }, log);
  const gemm = rows[0];
  const notes = [
    'Each time is the median of the runs after one warm-up; both libraries wait for the GPU queue to drain.',
    'tfjs runs NHWC (its native layout), we run NCHW; the FLOP counts are the same.',
  ];
  if (gemm) {
    const gemmRate = rate(gemm, gemm.oursMs);
    for (const row of rows.slice(1))
      if (!row.images)
        notes.push(`${row.name}: ${(rate(row, row.oursMs) / gemmRate).toFixed(2)}× our GEMM 1024 rate`);
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
