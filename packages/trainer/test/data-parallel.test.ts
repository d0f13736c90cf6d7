import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@segtrain/collective';
import { generateDemoDataset } from '@segtrain/data';
import { readSafetensors } from '@segtrain/nn';
import { afterEach, describe, it } from 'vitest';
import { bucketLayout } from '../src/data-parallel.js';

const RANK_SCRIPT = fileURLToPath(new URL('./fixtures/ddp-rank.mjs', import.meta.url));
const live = new Set<ChildProcess>();

afterEach(() => {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
});

interface Ran {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

function runRank(env: Record<string, string>): Promise<Ran> {
  const child = spawn(process.execPath, [RANK_SCRIPT], {
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return new Promise((resolve) =>
    child.on('close', (code) => {
      live.delete(child);
      resolve({ code, out, err });
    }),
  );
}

const printed = (ran: Ran, key: string) => {
  const line = ran.out.split('\n').find((l) => l.startsWith(`${key} `));
  assert.ok(line, `no ${key} line in:\n${ran.out}\n${ran.err}`);
  return line.slice(key.length + 1);
};

describe('bucketLayout', () => {
  it('reverse parameter order, a small first bucket, then the larger cap', () => {
    const sizes = [100, 200, 300_000, 10, 500_000, 20];
    // 1 MiB = 262,144 floats first, then 4 MiB = 1,048,576 floats.
    assert.deepEqual(bucketLayout(sizes), [
      [5, 4],
      [3, 2, 1, 0],
    ]);
    assert.deepEqual(bucketLayout(sizes, 400, 1200), [
      [5, 4],
      [3, 2],
      [1, 0],
    ]);
    assert.deepEqual(bucketLayout([]), []);
  });
});

describe('data-parallel training', () => {
  it('2 ranks × batch 2 equal 1 rank × batch 4 after 5 steps (SyncBN, averaged gradients); evaluation over 2 ranks prints the 1-rank metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segtrain-ddp-'));
    const data = join(dir, 'demo');
    // Seed 47's 16 scenes have no ignore pixels: each rank's mean loss covers as many pixels,
    // so the mean of the ranks' losses is the 1-rank loss.
    await generateDemoDataset({ root: data, trainCount: 16, valCount: 5, width: 64, height: 32, seed: 47 });
    const config = join(dir, 'smooth.yml');
    writeFileSync(
      config,
      [
        'batch_size: 2',
        'iters: 5',
        'train_dataset:',
        '  type: Cityscapes',
        `  dataset_root: ${JSON.stringify(data)}`,
        '  mode: train',
        '  transforms: [{ type: RandomHorizontalFlip }, { type: Normalize }]',
        'val_dataset:',
        '  type: Cityscapes',
        `  dataset_root: ${JSON.stringify(data)}`,
        '  mode: val',
        '  transforms: [{ type: Normalize }]',
        'model: { type: PPLiteSeg, num_classes: 19, backbone: { type: STDC1 } }',
        'optimizer: { type: SGD, momentum: 0.9, weight_decay: 0.0001 }',
        'lr_scheduler: { type: PolynomialDecay, learning_rate: 0.05, end_lr: 0, power: 0.9 }',
        'loss: { types: [{ type: CrossEntropyLoss }], coef: [1] }',
        '',
      ].join('\n'),
    );
    const single = await runRank({ CONFIG: config, BATCH_SIZE: '4', SAVE_DIR: join(dir, 'one') });
    assert.equal(single.code, 0, single.err);
    const weights = join(dir, 'one', 'iter_5', 'model.safetensors');
    const port = await freePort();
    const ranks = await Promise.all(
      [0, 1].map((rank) =>
        runRank({
          CONFIG: config,
          SAVE_DIR: join(dir, 'two'),
          EVAL_WEIGHTS: weights,
          RANK: String(rank),
          WORLD_SIZE: '2',
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port),
        }),
      ),
    );
    for (const r of ranks) assert.equal(r.code, 0, r.err);
    const [one, two] = await Promise.all(
      [weights, join(dir, 'two', 'iter_5', 'model.safetensors')].map(readSafetensors),
    );
    let worst = 0;
    let where = '';
    for (const [name, t] of one?.tensors ?? []) {
      const other = two?.tensors.get(name);
      assert.ok(other, `the 2-rank checkpoint lacks ${name}`);
      t.data.forEach((v, i) => {
        const d = Math.abs(v - (other.data[i] as number));
        if (d > worst) [worst, where] = [d, name];
      });
    }
    assert.ok(worst <= 1e-5, `parameters and BN statistics differ by ${worst} (${where})`);
    // The two ranks hold the same bits; their evaluation of the 1-rank weights is the 1-rank one.
    assert.equal(printed(ranks[0] as Ran, 'HASH'), printed(ranks[1] as Ran, 'HASH'));
    const reference = await runRank({
      CONFIG: config,
      BATCH_SIZE: '4',
      SAVE_DIR: join(dir, 'ref'),
      EVAL_WEIGHTS: weights,
    });
    assert.equal(reference.code, 0, reference.err);
    const lines = printed(reference, 'EVAL');
    assert.match(lines, /#Images: 5 mIoU/);
    assert.equal(printed(ranks[0] as Ran, 'EVAL'), lines);
    assert.equal(printed(ranks[1] as Ran, 'EVAL'), lines);
  }, 240_000);
});
