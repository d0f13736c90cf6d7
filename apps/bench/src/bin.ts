#!/usr/bin/env node
import { resolve } from 'node:path';
import { getDevice } from '@segtrain/tensor';
import { runKernelBench } from './kernels.js';
import { inputShape, NUM_CLASSES, runModelBench } from './models.js';
import { writeReport } from './report.js';
import { loadTfjs } from './tfjs.js';
import { rate } from './timing.js';

const USAGE = `Usage: segtrain-bench kernels [--reps N] [--quick] [--no-tfjs] [--out DIR]
       segtrain-bench models [--reps N] [--quick | --input NxCxHxW] [--out DIR]

kernels: our WGSL kernels and, in the same run on the same adapter, @tensorflow/tfjs-backend-webgpu 4.22.
models:  forward+backward images/s of each seed model at 2x3x256x512 (--quick: 1x3x64x128), beside the
         same-run GEMM 1024^3 rate; --input another shape (e.g. the demo's 4x3x64x128).
Each writes a Markdown and a JSON report (default DIR: bench-results/).`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'kernels' && command !== 'models') {
    process.stderr.write(`${USAGE}\n`);
    return command === '--help' ? 0 : 2;
  }
  let reps = 3;
  let quick = false;
  let input: [number, number, number, number] | undefined;
  let tfjsOn = true;
  let out = resolve(process.env.INIT_CWD ?? process.cwd(), 'bench-results');
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    if (flag === '--reps') reps = Number(rest[++i]);
    else if (flag === '--quick') quick = true;
    else if (flag === '--input' && command === 'models') {
      const dims = (rest[++i] ?? '').split('x').map(Number);
      if (dims.length !== 4 || !dims.every((d) => Number.isInteger(d) && d > 0)) {
        process.stderr.write('segtrain-bench: --input expects NxCxHxW, e.g. 4x3x64x128\n');
        return 2;
      }
      input = dims as [number, number, number, number];
    } else if (flag === '--no-tfjs' && command === 'kernels') tfjsOn = false;
    else if (flag === '--out') out = resolve(rest[++i] ?? out);
    else {
      process.stderr.write(`segtrain-bench: unknown option ${flag}\n${USAGE}\n`);
      return 2;
    }
  }
  if (!Number.isInteger(reps) || reps < 1) {
    process.stderr.write('segtrain-bench: --reps needs a positive integer\n');
    return 2;
  }
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

process.exitCode = await main(process.argv.slice(2));
process.exit();
