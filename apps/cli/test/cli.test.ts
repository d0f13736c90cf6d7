import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@segtrain/tensor/testing';
import { describe, it } from 'vitest';
import { parse } from 'yaml';
import { PP_LITESEG, run } from './helpers.js';

describe('flags, help and exit codes', () => {
  it('--version and -V print the version from package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'apps/cli/package.json'), 'utf8'));
    for (const flag of ['--version', '-V']) {
      const r = await run([flag]);
      assert.deepEqual([r.code, r.out, r.err], [0, `${version}\n`, '']);
    }
  });

  it('--help and -h work on every command and subcommand, on stdout with exit 0', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--help'], /Usage: segtrain \[options\] \[command\][\s\S]*train[\s\S]*doctor/],
      [['help', 'train'], /Usage: segtrain train/],
      [['train', '-h'], /--config <FILE>\s+the PaddleSeg-style YAML config \(required\)/],
      [['val', '--help'], /--aug_eval/],
      [['predict', '-h'], /--image_path <PATH>/],
      [['data', '--help'], /demo \[options\]/],
      [['data', 'demo', '-h'], /--out <DIR>/],
      [['config', '--help'], /show \[options\] <file>/],
      [['config', 'show', '--help'], /--opts <K=V\.\.\.>/],
      [['model', '--help'], /summary[\s\S]*run/],
      [['model', 'run', '-h'], /--weights <W\.safetensors>/],
      [['doctor', '--help'], /--json/],
    ];
    for (const [argv, pattern] of cases) {
      const r = await run(argv);
      assert.equal(r.code, 0, `segtrain ${argv.join(' ')}: ${r.err}`);
      assert.match(r.out, pattern, `segtrain ${argv.join(' ')}`);
      assert.equal(r.err, '');
    }
  });

  it('a bare segtrain, or a group without its subcommand, prints usage on stderr with exit 2', async () => {
    for (const argv of [[], ['data'], ['config'], ['model']]) {
      const r = await run(argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(r.out, '');
      assert.match(r.err, /^Usage: segtrain/);
    }
  });

  it('usage errors name the command and the flag on stderr, with the nearest known flag, exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['train', '--bogus'], /^segtrain train: unknown option '--bogus'/],
      [
        ['train', '--config', 'c.yml', '--save_dri', 'out'],
        /unknown option '--save_dri'\n\(Did you mean --save_dir\?\)/,
      ],
      [['train', '--config', 'c.yml', 'stray'], /^segtrain train: too many arguments/],
      [['train', '--config'], /^segtrain train: option '--config <FILE>' argument missing/],
      [
        ['train', '--config', 'c.yml', '--iters', '1.5'],
        /'--iters <N>' argument '1\.5' is invalid\. expected an integer/,
      ],
      [['val', '--config', 'c.yml', '--learning_rate', 'fast'], /expected a number, got 'fast'/],
      [['train'], /^segtrain train: required option '--config' not specified/],
      [['val', '--config', 'c.yml'], /^segtrain val: required option '--model_path' not specified/],
      [['config', 'show'], /^segtrain config show: missing required argument 'file'/],
      [['config', 'show', 'a.yml', 'b.yml'], /^segtrain config show: too many arguments/],
      [['config', 'show', 'a.yml', '--opts'], /'--opts <K=V\.\.\.>' argument missing/],
      [['config', 'list'], /^segtrain config: unknown command 'list'/],
      [['nope'], /^segtrain: unknown command 'nope'/],
      [['data', 'demo', '--train', '0'], /--train must be ≥ 1/],
    ];
    for (const [argv, pattern] of cases) {
      const r = await run(argv);
      assert.equal(r.code, 2, `segtrain ${argv.join(' ')}: ${r.err}`);
      assert.equal(r.out, '', argv.join(' '));
      assert.match(r.err, pattern, `segtrain ${argv.join(' ')}`);
    }
  });

  it('flags take --flag value, --flag=value and repeated multi-value lists', async () => {
    const r = await run([
      'config',
      'show',
      PP_LITESEG,
      '--json',
      '--iters=40',
      '--opts',
      'batch_size=3',
      'test_config.scales=0.75,1.0',
      '--opts',
      'iters=50',
    ]);
    assert.equal(r.code, 0, r.err);
    const json = JSON.parse(r.out);
    assert.deepEqual([json.batch_size, json.test_config.scales, json.iters], [3, [0.75, 1.0], 50]);
  });

  it("accepts PaddleSeg's predict --aug_pred for --aug_eval", async () => {
    const missing = join(tmpdir(), 'segtrain-no-such-config.yml');
    const r = await run([
      'predict',
      '--config',
      missing,
      '--model_path',
      'm',
      '--image_path',
      'i',
      '--aug_pred',
    ]);
    // Parsed: the run gets as far as reading the config.
    assert.equal(r.code, 1);
    assert.match(r.err, /config file does not exist/);
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
});

describe('the built binary', () => {
  const bin = join(repoRoot, 'apps/cli/dist/bin.js');
  /** `segtrain doctor` with these arguments and environment variables on top of this process's. */
  const doctor = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [bin, 'doctor', ...args], {
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', ...env },
    });

  it('segtrain doctor reports the adapter, Node, pnpm and ZeroMQ', () => {
    const r = doctor(['--json']);
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
    assert.match(
      byName.autotune.value,
      /^(on|off) \((a GPU|a CPU adapter|SEGTRAIN_AUTOTUNE=[01])\); cache \//,
    );
    if (report.adapter.isFallback && !process.env.SEGTRAIN_AUTOTUNE)
      assert.match(byName.autotune.value, /^off \(a CPU adapter\)/);
    if (!process.env.SEGTRAIN_GPU_POLL) assert.match(byName['gpu poll'].value, /^sleep \(/);
    assert.equal(r.status, report.ok ? 0 : 1);
  });

  it('segtrain doctor fails a SEGTRAIN_GPU_POLL other than sleep or spin, naming it, without probing', () => {
    const r = doctor([], { SEGTRAIN_GPU_POLL: 'busy' });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^FAIL {2}gpu poll SEGTRAIN_GPU_POLL=busy: expected sleep .* or spin/m);
    assert.doesNotMatch(r.stdout, /webgpu/);
    assert.match(r.stderr, /^- gpu poll: set SEGTRAIN_GPU_POLL to sleep or spin, or unset it$/m);
  });

  it('segtrain doctor fails a SEGTRAIN_AUTOTUNE that is neither 1 nor 0, naming it', () => {
    const r = doctor([], { SEGTRAIN_AUTOTUNE: 'yes' });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /^FAIL {2}autotune SEGTRAIN_AUTOTUNE=yes: expected 1 \(tune kernels\) or 0 \(use the defaults\)$/m,
    );
    assert.match(
      r.stderr,
      /- autotune: set SEGTRAIN_AUTOTUNE to 1 \(tune kernels\) or 0 \(keep the defaults\), or unset it/,
    );
  });

  it('segtrain doctor without pnpm on PATH notes it and still exits 0 (training can run)', () => {
    const emptyPath = mkdtempSync(join(tmpdir(), 'segtrain-nopath-'));
    const r = doctor([], { PATH: emptyPath });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^note {2}pnpm {5}not found \(needed only to develop segtrain\)$/m);
    assert.match(r.stdout, /^ok {4}webgpu /m);
    assert.doesNotMatch(r.stdout + r.stderr, /FAIL/);
  });

  it('under `pnpm segtrain` relative paths resolve against the directory the user ran it from', () => {
    const userDir = mkdtempSync(join(tmpdir(), 'segtrain-initcwd-'));
    writeFileSync(join(userDir, 'mine.yml'), `_base_: ${JSON.stringify(PP_LITESEG)}\niters: 11\n`);
    const viaPnpm = spawnSync(process.execPath, [bin, 'config', 'show', 'mine.yml', '--json'], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, npm_lifecycle_event: 'segtrain', INIT_CWD: userDir },
    });
    assert.equal(viaPnpm.status, 0, viaPnpm.stderr);
    assert.equal(JSON.parse(viaPnpm.stdout).iters, 11);
    const direct = spawnSync(process.execPath, [bin, 'config', 'show', 'mine.yml', '--json'], {
      cwd: userDir,
      encoding: 'utf8',
    });
    assert.equal(direct.status, 0, direct.stderr);
    assert.equal(JSON.parse(direct.stdout).iters, 11);
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
