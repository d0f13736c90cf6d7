import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSimNet, simNetUnavailable } from '@segtrain/collective/simnet';
import { readSafetensors } from '@segtrain/nn';
import { repoRoot } from '@segtrain/tensor/testing';
import { afterEach, describe, it } from 'vitest';
import { UsageError } from '../src/args.js';
import { PADDLE_START_PORT, planLaunch, rankEnvironment, withResume } from '../src/commands/launch.js';
import { killChildren, startCli, tinyProject } from './helpers.js';

afterEach(killChildren);

describe('launch plan (Paddle rank layout, torchrun and Paddle variables)', () => {
  it('one machine: N ranks, a local master, every variable', () => {
    const plan = planLaunch({ nproc_per_node: 2 }, {}, ['127.0.0.1'], 41000);
    assert.deepEqual(
      [plan.nodeRank, plan.nodes, plan.perNode, plan.masterAddr, plan.masterPort],
      [0, 1, 2, '127.0.0.1', 41000],
    );
    const env = rankEnvironment(plan, 1, { http_proxy: 'http://p', KEEP: 'x' });
    assert.equal(env.RANK, '1');
    assert.equal(env.WORLD_SIZE, '2');
    assert.equal(env.LOCAL_RANK, '1');
    assert.equal(env.MASTER_PORT, '41000');
    assert.equal(env.PADDLE_TRAINER_ID, '1');
    assert.equal(env.PADDLE_TRAINERS_NUM, '2');
    assert.equal(env.PADDLE_TRAINER_ENDPOINTS, '127.0.0.1:41000,127.0.0.1:41001');
    assert.equal(env.PADDLE_CURRENT_ENDPOINT, '127.0.0.1:41001');
    assert.equal(env.KEEP, 'x');
    assert.equal(env.http_proxy, undefined, 'proxies hang multi-node jobs: dropped');
    assert.ok(Number(env.LP_NUM_THREADS) >= 1);
  });

  it('--ips: node rank from this machine address, rank = node × per node + local, master at FLAGS_START_PORT', () => {
    const flags = { ips: '10.0.0.1,10.0.0.2', devices: '0,1' };
    const plan = planLaunch(flags, {}, ['127.0.0.1', '10.0.0.2'], 1);
    assert.deepEqual(
      [plan.nodeRank, plan.nodes, plan.masterAddr, plan.masterPort],
      [1, 2, '10.0.0.1', PADDLE_START_PORT],
    );
    const env = rankEnvironment(plan, 1, {});
    assert.equal(env.RANK, '3');
    assert.equal(env.WORLD_SIZE, '4');
    assert.equal(env.SEGTRAIN_ADAPTER, '1');
    assert.equal(env.PADDLE_CURRENT_ENDPOINT, '10.0.0.2:6071');
    assert.equal(planLaunch(flags, { FLAGS_START_PORT: '17000' }, ['10.0.0.2'], 1).masterPort, 17000);
    assert.equal(planLaunch({ ...flags, master: 'head:29500' }, {}, ['10.0.0.2'], 1).masterAddr, 'head');
  });

  it('errors name what to fix', () => {
    assert.throws(
      () => planLaunch({ ips: '10.0.0.1,10.0.0.2' }, {}, ['192.168.1.5'], 1),
      (e: Error) =>
        e instanceof UsageError &&
        /192\.168\.1\.5/.test(e.message) &&
        /10\.0\.0\.1,10\.0\.0\.2/.test(e.message),
    );
    assert.throws(
      () => planLaunch({ devices: '0,1', nproc_per_node: 3 }, {}, [], 1),
      /--nproc_per_node 3 but --devices lists 2/,
    );
    assert.throws(() => planLaunch({ master: 'nohost' }, {}, [], 1), /--master nohost is not HOST:PORT/);
    assert.throws(() => planLaunch({}, { FLAGS_START_PORT: 'x' }, [], 1), /FLAGS_START_PORT=x/);
  });

  it('a restart resumes from the checkpoint, replacing any --resume_model', () => {
    assert.deepEqual(
      withResume(['--config', 'c.yml', '--resume_model', 'old', '--iters', '3'], 'out/iter_4'),
      ['--config', 'c.yml', '--iters', '3', '--resume_model', 'out/iter_4'],
    );
  });
});

/** Whether `pid` is still a process. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function sameWeights(a: string, b: string): Promise<void> {
  const [x, y] = await Promise.all([readSafetensors(a), readSafetensors(b)]);
  for (const [name, t] of x.tensors) assert.deepEqual(y.tensors.get(name)?.data, t.data, name);
}

/** The ranks' pids from the launcher's `launch: rank R (local L) pid P` lines. */
function rankPids(text: string): number[] {
  return [...text.matchAll(/launch: rank \d+ \(local \d+\) pid (\d+)/g)].map((m) => Number(m[1]));
}

describe('segtrain launch: 2 ranks on this machine', () => {
  const trainArgs = async (saveDir: string) => {
    const { config } = await tinyProject();
    return [
      'train',
      '--config',
      config,
      '--save_dir',
      saveDir,
      '--batch_size',
      '2',
      '--iters',
      '8',
      '--save_interval',
      '4',
      '--log_iters',
      '1',
      '--seed',
      '5',
    ];
  };
  const launchArgs = (dir: string, name: string, restarts: number) => [
    'launch',
    '--nproc_per_node',
    '2',
    '--log_dir',
    join(dir, `log-${name}`),
    '--max_restarts',
    String(restarts),
  ];

  it('SIGKILL of rank 1: the launcher stops rank 0 and exits naming rank 1; with --max_restarts 1 the job finishes as an uninterrupted one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segtrain-launch-'));
    const reference = startCli([...launchArgs(dir, 'ref', 0), ...(await trainArgs(join(dir, 'ref')))]);
    const finished = await reference.done;
    assert.equal(finished.code, 0, finished.err);
    assert.match(finished.out, /Data parallel: rank 0 of 2/);
    const log1 = readFileSync(join(dir, 'log-ref', 'workerlog.1'), 'utf8');
    const hashes = [finished.out, log1].map((t) => /parameters sha256 ([0-9a-f]+)/.exec(t)?.[1]);
    assert.ok(hashes[0] && hashes[0] === hashes[1], `rank hashes differ: ${hashes}`);

    for (const restarts of [0, 1]) {
      const name = `kill${restarts}`;
      const job = startCli([...launchArgs(dir, name, restarts), ...(await trainArgs(join(dir, name)))]);
      await job.waitFor(/iter: 5\/8/);
      const pids = rankPids(job.output());
      assert.equal(pids.length, 2);
      const killedAt = Date.now();
      process.kill(pids[1] as number, 'SIGKILL');
      const result = await job.done;
      const tookMs = Date.now() - killedAt;
      for (const pid of pids) assert.equal(alive(pid), false, `rank pid ${pid} is left behind`);
      assert.match(result.err, /rank 1 \(pid \d+\) was killed by SIGKILL; the other ranks were stopped/);
      assert.match(result.err, /Last lines of .*workerlog\.1/);
      if (restarts === 0) {
        assert.equal(result.code, 1);
        assert.ok(tookMs < 20_000, `the launcher took ${tookMs} ms to stop`);
      } else {
        assert.equal(result.code, 0, result.err);
        assert.match(result.err, /restart 1 of 1 because rank 1 was killed by SIGKILL, from .*iter_4/);
        await sameWeights(
          join(dir, 'ref', 'iter_8', 'model.safetensors'),
          join(dir, name, 'iter_8', 'model.safetensors'),
        );
      }
    }
  }, 400_000);
});

describe('segtrain launch --ips: two simulated machines', () => {
  const unavailable = simNetUnavailable();
  it.skipIf(unavailable !== null)(
    `each machine runs the same command; training completes and every rank ends with the same parameters${unavailable ? ` (skipped: ${unavailable})` : ''}`,
    async () => {
      const { config } = await tinyProject();
      const dir = mkdtempSync(join(tmpdir(), 'segtrain-ips-'));
      const net = createSimNet(2, 'none');
      try {
        const ips = net.addresses.join(',');
        const bin = join(repoRoot, 'apps/cli/dist/bin.js');
        const runs = [0, 1].map((node) => {
          const args = [
            bin,
            'launch',
            '--ips',
            ips,
            '--nproc_per_node',
            '1',
            '--log_dir',
            join(dir, `log${node}`),
            'train',
            '--config',
            config,
            '--save_dir',
            join(dir, `out${node}`),
            '--batch_size',
            '2',
            '--iters',
            '3',
            '--save_interval',
            '3',
            '--seed',
            '5',
          ];
          const [command, wrapped] = net.wrap(node, process.execPath, args);
          const child = spawn(command, wrapped, {
            env: {
              ...process.env,
              FLAGS_START_PORT: '17000',
              XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp',
            },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let out = '';
          child.stdout?.on('data', (c: Buffer) => {
            out += c.toString();
          });
          child.stderr?.on('data', (c: Buffer) => {
            out += c.toString();
          });
          const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
          return new Promise<{ code: number | null; out: string }>((resolve) =>
            child.on('close', (code) => {
              clearTimeout(timer);
              resolve({ code, out });
            }),
          );
        });
        const results = await Promise.all(runs);
        for (const r of results) assert.equal(r.code, 0, r.out);
        assert.match(results[0]?.out ?? '', /this is machine 0 .* ranks 0–0; master 10\.77\.0\.2:17000/);
        assert.match(results[1]?.out ?? '', /this is machine 1 .* ranks 1–1/);
        const hashes = results.map((r) => /parameters sha256 ([0-9a-f]+)/.exec(r.out)?.[1]);
        assert.ok(hashes[0] && hashes[0] === hashes[1], `the machines' ranks disagree: ${hashes}`);
      } finally {
        net.close();
      }
    },
    240_000,
  );
});
