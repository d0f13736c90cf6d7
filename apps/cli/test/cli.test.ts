import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseArgs, UsageError } from '../src/args.js';
import { PP_LITESEG, repoRoot, run } from './helpers.js';

describe('argument parser', () => {
  const specs = {
    iters: { kind: 'int', help: '' },
    learning_rate: { kind: 'float', help: '' },
    opts: { kind: 'list', help: '' },
    raw: { kind: 'bool', help: '' },
  } as const;

  it('reads --flag value, --flag=value, switches and multi-value lists', () => {
    const args = parseArgs(
      't',
      ['f.yml', '--iters', '10', '--learning_rate=0.5', '--opts', 'a=1', 'b=2', '--raw', '--opts', 'c=3'],
      specs,
    );
    assert.deepEqual(args.flags, { iters: 10, learning_rate: 0.5, opts: ['a=1', 'b=2', 'c=3'], raw: true });
    assert.deepEqual(args.positionals, ['f.yml']);
  });

  it('rejects unknown flags, missing values and bad numbers with the flag named', () => {
    assert.throws(
      () => parseArgs('t', ['--itres', '3'], specs),
      (e: unknown) => e instanceof UsageError && /unknown option --itres.*--iters/.test(e.message),
    );
    assert.throws(() => parseArgs('t', ['--iters'], specs), /--iters needs a value/);
    assert.throws(() => parseArgs('t', ['--iters', '1.5'], specs), /--iters expects an integer, got '1.5'/);
    assert.throws(
      () => parseArgs('t', ['--learning_rate', 'fast'], specs),
      /--learning_rate expects a number/,
    );
    assert.throws(() => parseArgs('t', ['--opts'], specs), /--opts needs at least one value/);
  });
});

describe('segtrain config show', () => {
  it('prints the resolved config as YAML, notes on stderr', async () => {
    const r = await run(['config', 'show', PP_LITESEG]);
    assert.equal(r.code, 0);
    const printed = parse(r.out);
    assert.deepEqual(Object.keys(printed).slice(0, 8), [
      'batch_size',
      'iters',
      'train_dataset',
      'val_dataset',
      'optimizer',
      'lr_scheduler',
      'loss',
      'model',
    ]);
    assert.equal(printed.optimizer.type, 'Momentum');
    assert.equal(printed.lr_scheduler.learning_rate.decay_steps, 159000);
    assert.match(r.err, /\[NOTE\] If the type is SGD and momentum/);
  });

  it('--json prints JSON on stdout and nothing else; overrides apply in order', async () => {
    const r = await run([
      'config',
      'show',
      PP_LITESEG,
      '--json',
      '--batch_size',
      '8',
      '--iters',
      '500',
      '--learning_rate',
      '0.01',
      '--opts',
      'batch_size=3',
    ]);
    assert.equal(r.code, 0);
    assert.equal(r.err, '');
    const json = JSON.parse(r.out);
    assert.equal(json.batch_size, 3, '--opts wins over --batch_size');
    assert.equal(json.iters, 500);
    assert.equal(json.lr_scheduler.end_lr, 0.01);
    assert.equal(json.lr_scheduler.learning_rate.decay_steps, 1, 'max(iters - warmup_iters, 1)');
  });

  it('--raw prints the merged dict before normalisation', async () => {
    const r = await run(['config', 'show', PP_LITESEG, '--raw', '--json']);
    const raw = JSON.parse(r.out);
    assert.equal(raw.optimizer.type, 'SGD');
    assert.equal(raw.lr_scheduler.warmup_iters, 1000);
    assert.equal(raw.model.num_classes, undefined);
  });

  it('a config error exits 1 with the file and key, no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segtrain-cli-'));
    const file = join(dir, 'bad.yml');
    writeFileSync(file, `_base_: ${JSON.stringify(PP_LITESEG)}\nbatch_size: -1\n`);
    const r = await run(['config', 'show', file]);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(
      r.err,
      /^segtrain config: config error: .*bad\.yml:2: key 'batch_size': expected a value >= 1, found number -1\n$/,
    );
  });

  it('usage errors exit 2', async () => {
    assert.equal((await run(['config', 'show'])).code, 2);
    assert.equal((await run(['config', 'list'])).code, 2);
    assert.equal((await run(['nope'])).code, 2);
    const help = await run(['config', 'show', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /--opts K=V \.\.\./);
  });
});

describe('the built binary', () => {
  const bin = join(repoRoot, 'apps/cli/dist/bin.js');

  it('segtrain doctor reports the adapter, Node, pnpm and ZeroMQ', () => {
    const r = spawnSync(process.execPath, [bin, 'doctor', '--json'], {
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    const report = JSON.parse(r.stdout);
    const byName = Object.fromEntries(report.checks.map((c: { name: string }) => [c.name, c]));
    assert.equal(byName.node.ok, true);
    assert.match(byName.zeromq.value, /^libzmq \d+\.\d+\.\d+$/);
    assert.equal(byName.webgpu.ok, true, `no adapter: ${byName.webgpu.value}`);
    assert.ok(report.adapter.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
    if (/llvmpipe|lavapipe/i.test(report.adapter.name)) {
      assert.equal(report.adapter.isFallback, true);
      assert.equal(report.adapter.vendor, 'mesa');
    }
    assert.equal(r.status, report.ok ? 0 : 1);
  });

  it('segtrain config show through the binary', () => {
    const r = spawnSync(
      process.execPath,
      [bin, 'config', 'show', PP_LITESEG, '--json', '--opts', 'iters=7'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).iters, 7);
  });
});
