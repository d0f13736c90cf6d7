import assert from 'node:assert/strict';
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
    const rows = await runAllReduceBench([2], [4096, 256 * 1024], 1, () => undefined);
    assert.deepEqual(
      rows.map((r) => [r.ranks, r.bytes, r.algorithm]),
      [
        [2, 4096, 'exchange'],
        [2, 256 * 1024, 'ring'],
      ],
    );
    for (const r of rows) {
      assert.ok(r.oursMs > 0 && r.rawTcpGBs > 0 && (r.zmqRoundTripMs ?? 0) > 0);
      // busbw = algbw · 2(N−1)/N = algbw at N = 2.
      assert.ok(Math.abs(r.busbwGBs - r.algbwGBs) < 1e-12);
      assert.ok(Math.abs(r.algbwGBs - r.bytes / (r.oursMs / 1000) / 1e9) < 1e-9);
    }
    const md = allReduceMarkdown(rows, ['a note'], '# t');
    assert.match(md, /\| 2 \| 4K \| exchange \| /);
    assert.match(md, /ZeroMQ 64-byte round trip between ranks 0 and 1/);
  });
});
