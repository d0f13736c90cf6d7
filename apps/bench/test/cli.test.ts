import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { CommanderError } from 'commander';
import { describe, it } from 'vitest';
import { benchProgram } from '../src/cli.js';

/** What the command line chose, or the commander error it raised. */
function parse(argv: string[]) {
  let chosen: unknown;
  const program = benchProgram((command, options) => {
    chosen = { command, ...options };
  });
  for (const command of [program, ...program.commands])
    command.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  try {
    program.parse(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error;
    throw error;
  }
  return chosen;
}

describe('segtrain-bench command line', () => {
  it('reads each benchmark and its options, with defaults', () => {
    assert.deepEqual(parse(['models', '--input', '4x3x64x128', '--reps', '2']), {
      command: 'models',
      reps: 2,
      quick: false,
      out: resolve('bench-results'),
      input: [4, 3, 64, 128],
      tfjs: false,
    });
    assert.deepEqual(parse(['models', '--models', 'liteseg,segformer', '--profile']), {
      command: 'models',
      reps: 3,
      quick: false,
      out: resolve('bench-results'),
      tfjs: false,
      profile: true,
      modelNames: ['liteseg', 'segformer'],
    });
    const scaling = parse(['scaling', '--nodes', '1,2', '--link', '1gbit', '--step-ms', 'h200']) as Record<
      string,
      unknown
    >;
    assert.deepEqual([scaling.nodes, scaling.links, scaling.stepMs], [[1, 2], ['1gbit'], 'h200']);
    assert.deepEqual((parse(['compare', 'a.json', 'b.json']) as Record<string, unknown>).reports, [
      'a.json',
      'b.json',
    ]);
    assert.deepEqual(
      (parse(['kernels', '--gemm', '512,4096']) as Record<string, unknown>).gemmSizes,
      [512, 4096],
    );
    assert.deepEqual(parse(['kernels', '--quick', '--no-tfjs', '--out', 'r']), {
      command: 'kernels',
      reps: 3,
      quick: true,
      out: resolve('r'),
      tfjs: false,
    });
  });

  it('allreduce reads process counts and sizes in binary units', () => {
    assert.deepEqual(parse(['allreduce', '--ranks', '2,4', '--sizes', '4K,1M,64M,100']), {
      command: 'allreduce',
      reps: 3,
      quick: false,
      out: resolve('bench-results'),
      ranks: [2, 4],
      sizes: [4096, 1 << 20, 64 << 20, 100],
      tfjs: false,
    });
    assert.ok(parse(['allreduce', '--sizes', '4X']) instanceof CommanderError);
  });

  it('rejects unknown flags, bad shapes and bad counts as usage errors', () => {
    for (const [argv, code] of [
      [['kernels', '--bogus'], 'commander.unknownOption'],
      [['kernels', '--input', '4x3x64x128'], 'commander.unknownOption'],
      [['models', '--input', '3x64'], 'commander.invalidArgument'],
      [['models', '--reps', '0'], 'commander.invalidArgument'],
      [['nope'], 'commander.unknownCommand'],
    ] as const) {
      const error = parse([...argv]);
      assert.ok(error instanceof CommanderError, argv.join(' '));
      assert.equal(error.code, code, argv.join(' '));
    }
  });
});
