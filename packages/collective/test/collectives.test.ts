import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'vitest';
import { createSimNet, simNetUnavailable } from '../src/simnet.js';
import { jobEnv, killRanks, type RankResult, runJob, startJob, startRank } from './job.js';

afterEach(killRanks);

const errorOf = (r: RankResult) => r.lines.find((l) => 'error' in l)?.error as string | undefined;

describe('collectives are exact and bitwise equal on every rank', () => {
  for (const n of [1, 2, 3, 4, 5, 6, 7, 8])
    it(`N = ${n}: allReduce (sum, mean, max, min; f32, f64, i32), broadcast, allGather, reduceScatter over sizes 0, 1, 7, 1000, 2^20 + 3`, async () => {
      const ranks = await runJob(n, { SCENARIO: 'exact' });
      for (const r of ranks) assert.equal(r.code, 0, `rank ${r.rank}: ${r.stderr}${errorOf(r) ?? ''}`);
      const results = ranks.map((r) => r.lines.filter((l) => 'what' in l));
      for (const line of results[0] ?? [])
        assert.equal(line.wrong, null, `rank 0 ${line.what}: ${JSON.stringify(line.wrong)}`);
      // Per size: 7 allReduce variants, broadcast, allGather, reduceScatter.
      assert.equal(results[0]?.length, 5 * 10, 'every operation reported');
      for (const [rank, lines] of results.entries())
        lines.forEach((line, i) => {
          assert.equal(line.wrong, null, `rank ${rank} ${line.what}: ${JSON.stringify(line.wrong)}`);
          if ('hash' in line)
            assert.equal(line.hash, results[0]?.[i]?.hash, `rank ${rank} ${line.what}: same bytes as rank 0`);
        });
    });

  it('a buffer rewritten as soon as each operation resolves never changes what the peers sum', async () => {
    const ranks = await runJob(3, { SCENARIO: 'mutate' });
    for (const r of ranks) {
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.lines[0], { wrong: 0 });
    }
  });
});

describe('errors, never hangs', () => {
  it('SIGKILL of one rank in a stream of allReduces: every survivor rejects naming it within 2× the deadline (10 times)', async () => {
    const deadlineMs = 4000;
    for (let round = 0; round < 10; round++) {
      const ranks = await startJob(3, {
        SCENARIO: 'stream',
        STREAM_SIZE: String(20_000 + round * 7_000),
        SEGTRAIN_COLLECTIVE_TIMEOUT_MS: String(deadlineMs),
      });
      await Promise.all(ranks.map((r) => r.printed('streaming')));
      const victim = 1 + (round % 2);
      const killedAt = Date.now();
      ranks[victim]?.child.kill('SIGKILL');
      const results = await Promise.all(ranks.map((r) => r.done));
      for (const r of results) {
        if (r.rank === victim) {
          assert.equal(r.signal, 'SIGKILL');
          continue;
        }
        assert.equal(r.code, 3, `round ${round} rank ${r.rank}: ${r.stderr}`);
        assert.match(
          errorOf(r) ?? '',
          new RegExp(`rank ${victim} is gone \\(its connection dropped\\) during allReduce #\\d+`),
        );
        assert.ok(
          Date.now() - killedAt < 2 * deadlineMs,
          `round ${round}: survivors ended ${Date.now() - killedAt} ms after the kill`,
        );
      }
    }
  });

  const noSimNet = simNetUnavailable();
  it.skipIf(noSimNet)(
    `a link that goes down without closing TCP: both ranks reject naming the other long before the deadline${noSimNet ? ` (skipped: ${noSimNet})` : ''}`,
    async () => {
      const deadlineMs = 60_000;
      const net = createSimNet(2, '1gbit');
      try {
        const env = {
          WORLD_SIZE: '2',
          MASTER_ADDR: net.addresses[0] ?? '',
          MASTER_PORT: '29500',
          SCENARIO: 'stream',
          // 16 MB at 1 Gbit/s: both ranks are mid-send when the link goes, their TCP buffers full.
          STREAM_SIZE: String(4_000_000),
          SEGTRAIN_COLLECTIVE_TIMEOUT_MS: String(deadlineMs),
        };
        const ranks = [0, 1].map((rank) => startRank(rank, env, (c, a) => net.wrap(rank, c, a)));
        await Promise.all(ranks.map((r) => r.printed('streaming')));
        const cutAt = Date.now();
        net.cut(1);
        const results = await Promise.all(ranks.map((r) => r.done));
        const took = Date.now() - cutAt;
        for (const r of results) {
          assert.equal(r.code, 3, `rank ${r.rank}: ${r.stderr}`);
          const other = 1 - r.rank;
          assert.match(
            errorOf(r) ?? '',
            new RegExp(`rank ${other} is gone \\(its connection dropped\\) during allReduce`),
          );
          assert.deepEqual(r.lines.at(-1)?.lost, [other]);
        }
        // Heartbeats (5 s) or TCP_USER_TIMEOUT (10 s), grace and close()'s linger: far below the 60 s deadline.
        assert.ok(took < 20_000, `ranks ended ${took} ms after the link went down`);
      } finally {
        killRanks();
        net.close();
      }
    },
  );

  it('a size mismatch is the same named error on every rank', async () => {
    const ranks = await runJob(3, { SCENARIO: 'mismatch-size' });
    for (const r of ranks) {
      assert.equal(r.code, 3, r.stderr);
      assert.match(
        errorOf(r) ?? '',
        /^ranks disagree: rank \d is at allReduce #0 \(sum, (10|12) × f32\) but rank \d sent allReduce #0 \(sum, (10|12) × f32\)\. Every rank must call the same collectives/,
      );
    }
  });

  it('an op-order mismatch is the same named error on every rank', async () => {
    const ranks = await runJob(2, { SCENARIO: 'mismatch-order' });
    for (const r of ranks) {
      assert.equal(r.code, 3, r.stderr);
      const error = errorOf(r) ?? '';
      assert.match(
        error,
        /^ranks disagree: rank \d is at (allReduce|broadcast) #0 .* but rank \d sent (allReduce|broadcast) #0/,
      );
      assert.ok(
        error.includes('allReduce #0 (sum, 4 × f32)') && error.includes('broadcast #0 (root 0, 4 × f32)'),
        error,
      );
    }
  });

  it('a wrong token or world size is refused naming both values; the job finishes', async () => {
    const env = await jobEnv(2, { SCENARIO: 'job', SEGTRAIN_JOB_TOKEN: 'job-a' });
    const rank0 = startRank(0, env);
    const intruders = await Promise.all([
      startRank(1, { ...env, SEGTRAIN_JOB_TOKEN: 'job-b' }).done,
      startRank(1, { ...env, WORLD_SIZE: '3' }).done,
    ]);
    assert.deepEqual(
      intruders.map((r) => [r.code, errorOf(r)]),
      [
        [
          3,
          `rank 1 was refused by the job at ${env.MASTER_ADDR}:${env.MASTER_PORT}: its job token 'job-b' is not this job's token 'job-a'`,
        ],
        [
          3,
          `rank 1 was refused by the job at ${env.MASTER_ADDR}:${env.MASTER_PORT}: its world size 3 is not this job's world size 2`,
        ],
      ],
    );
    const job = await Promise.all([rank0.done, startRank(1, env).done]);
    for (const r of job) {
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.lines[0], { sum: 3 });
    }
  });

  it('a master port in use is an error naming the port and how to pick another', async () => {
    const env = await jobEnv(1, { SCENARIO: 'job' });
    const { createServer } = await import('node:net');
    const blocker = createServer().listen(Number(env.MASTER_PORT), '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    try {
      const r = await startRank(0, env).done;
      assert.equal(r.code, 3);
      assert.equal(
        errorOf(r),
        `rank 0 cannot serve the rendezvous on 127.0.0.1:${env.MASTER_PORT}: port ${env.MASTER_PORT} is in use (another job, or a leftover process?). Pick a free port with MASTER_PORT (FLAGS_START_PORT for segtrain launch)`,
      );
    } finally {
      blocker.close();
    }
  });
});
