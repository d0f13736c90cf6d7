import assert from 'node:assert/strict';
import { simNetUnavailable } from '@segtrain/collective/simnet';
import { describe, it } from 'vitest';
import { allReduceMarkdown, formatBytes, parseSize, runAllReduceBench } from '../src/allreduce.js';

describe('segtrain-bench allreduce', () => {
  it('sizes read and print in binary units', () => {
    assert.deepEqual(['4K', '1M', '16m', '1G', '100', '1.5K'].map(parseSize), [
      4096,
      1 << 20,
      16 << 20,
      1 << 30,
      100,
      1536,
    ]);
    assert.throws(() => parseSize('4X'), /size '4X'/);
    assert.deepEqual([4096, 1 << 20, 100, 1536].map(formatBytes), ['4K', '1M', '100B', '1536B']);
  });

  it('two ranks as processes: one row per size with the algorithm, nccl-tests bandwidths and raw TCP', async () => {
    const rows = await runAllReduceBench([2], ['loopback'], [4096, 256 * 1024], 1, () => undefined);
    assert.deepEqual(
      rows.map((r) => [r.link, r.ranks, r.bytes, r.algorithm]),
      [
        ['loopback', 2, 4096, 'doubling'],
        ['loopback', 2, 256 * 1024, 'ring'],
      ],
    );
    for (const r of rows) {
      assert.ok(r.oursMs > 0 && r.rawTcpGBs > 0 && (r.zmqRoundTripMs ?? 0) > 0);
      // Two processes' CPU over two or more cores: a share in (0, 1], with slack for clock granularity.
      assert.ok(r.oursCpuShare > 0 && r.oursCpuShare < 1.2, `CPU share ${r.oursCpuShare}`);
      // busbw = algbw · 2(N−1)/N = algbw at N = 2.
      assert.ok(Math.abs(r.busbwGBs - r.algbwGBs) < 1e-12);
      assert.ok(Math.abs(r.algbwGBs - r.bytes / (r.oursMs / 1000) / 1e9) < 1e-9);
    }
    const md = allReduceMarkdown(rows, ['a note'], '# t');
    assert.match(md, /\| loopback \| 2 \| 4K \| doubling \| /);
    const latency = rows[0] as (typeof rows)[0];
    const ratio = (latency.oursMs / (latency.zmqRoundTripMs ?? 0)).toFixed(2);
    assert.ok(
      md.includes(`| loopback, 2 ranks | ${latency.zmqRoundTripMs?.toFixed(3)} | 4K | ${ratio}× |`),
      md,
    );
  });

  const noSimNet = simNetUnavailable();
  it.skipIf(noSimNet)(
    `simulated nodes on 1 Gbit/s links: the link bounds both columns${noSimNet ? ` (skipped: ${noSimNet})` : ''}`,
    async () => {
      const [row] = await runAllReduceBench([2], ['1gbit'], [1 << 20], 1, () => undefined);
      assert.equal(row?.link, '1gbit');
      // 1 Gbit/s = 0.125 GB/s each way: more would mean the ranks did not cross the shaped link.
      for (const gbs of [row?.busbwGBs ?? 0, row?.rawTcpGBs ?? 0])
        assert.ok(gbs > 0.02 && gbs < 0.125 * 1.1, `${gbs} GB/s`);
    },
  );
});
