import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { BindGroupCache } from '../src/device/bind-groups.js';
import { BufferPool } from '../src/device/pool.js';
import * as T from '../src/index.js';
import { testDevice } from '../src/testing/index.js';

/** Stand-ins: the cache only uses buffers as keys and returns what `create` made. */
const fakeBuffer = (label: string) => ({ label }) as unknown as GPUBuffer;
const fakeGroup = (label: string) => ({ label }) as unknown as GPUBindGroup;

describe('bind group cache', () => {
  it('reuses a group for the same layout and buffers, and only for them', () => {
    const cache = new BindGroupCache();
    const [a, b] = [fakeBuffer('a'), fakeBuffer('b')];
    let made = 0;
    const create = () => fakeGroup(`g${made++}`);
    const first = cache.get('read,rw', [a, b], create);
    assert.equal(cache.get('read,rw', [a, b], create), first);
    assert.notEqual(cache.get('read,rw', [b, a], create), first, 'buffer order is part of the key');
    assert.notEqual(cache.get('read,read', [a, b], create), first, 'the layout is part of the key');
    assert.deepEqual([cache.hits, cache.misses, made], [1, 3, 3]);
  });

  it("drops a buffer's groups when it is forgotten, and the least recently used past its capacity", () => {
    const cache = new BindGroupCache(3);
    const [a, b, c] = [fakeBuffer('a'), fakeBuffer('b'), fakeBuffer('c')];
    let made = 0;
    const create = () => fakeGroup(`g${made++}`);
    cache.get('rw', [a], create);
    cache.get('read,rw', [a, b], create);
    cache.get('rw', [b], create);
    cache.forget(a);
    assert.equal(cache.size, 1);
    cache.get('rw', [b], create);
    assert.equal(made, 3, 'the group without a survives');
    cache.get('rw', [a], create); // g3
    cache.get('rw', [c], create); // g4
    cache.get('rw', [b], create); // a hit: b's group is now the most recent
    cache.get('read,rw', [c, a], create); // g5: over capacity, drops [a] (least recently used)
    assert.equal(cache.size, 3);
    const missesBefore = cache.misses;
    for (const buffers of [[b], [c], [c, a]])
      cache.get(buffers.length === 1 ? 'rw' : 'read,rw', buffers, create);
    assert.equal(cache.misses, missesBefore, 'b, c and [c, a] stayed');
    cache.get('rw', [a], create);
    assert.equal(cache.misses, missesBefore + 1, '[a] was dropped');
    cache.forget(fakeBuffer('never bound'));
    assert.equal(cache.size, 3);
  });
});

describe('buffer pool order', () => {
  it('hands out the oldest free buffer of a class, whatever order they were released in', () => {
    let created = 0;
    const gpu = {
      createBuffer: ({ label }: GPUBufferDescriptor) => ({ label: `${label}#${created++}`, destroy() {} }),
    } as unknown as GPUDevice;
    const destroyed: string[] = [];
    const pool = new BufferPool(gpu, 0, 'test', (b) => destroyed.push(b.label));
    const bufs = [pool.acquire(1000), pool.acquire(1000), pool.acquire(1000)];
    for (const i of [1, 2, 0]) pool.release(bufs[i] as GPUBuffer);
    assert.equal(pool.acquire(1000).label, 'test-1024#3', 'released buffers wait for the submit');
    pool.afterSubmit();
    assert.deepEqual(
      [pool.acquire(1000), pool.acquire(1000), pool.acquire(1000)].map((b) => b.label),
      ['test-1024#0', 'test-1024#1', 'test-1024#2'],
    );
    pool.release(bufs[2] as GPUBuffer);
    pool.afterSubmit();
    pool.trim();
    assert.deepEqual(destroyed, ['test-1024#2']);
  });
});

describe('bind groups on the device', () => {
  it('a repeated sequence of ops creates no bind group after its first runs, and trimming the pool stays correct', async () => {
    const device = await testDevice();
    const x = T.tensor(
      device,
      Float32Array.from({ length: 64 }, (_, i) => i - 32),
      [8, 8],
    );
    const run = async () => {
      const product = T.matmul(x, x);
      const y = T.relu(product);
      product.dispose();
      const values = await y.data();
      y.dispose();
      return values;
    };
    const expected = await run();
    await run();
    const before = device.stats();
    assert.deepEqual(await run(), expected);
    const after = device.stats();
    assert.equal(after.bindGroupsCreated, before.bindGroupsCreated);
    assert.ok(after.bindGroupsReused > before.bindGroupsReused);
    device.trimPool();
    assert.deepEqual(await run(), expected, 'new buffers after a trim');
    assert.ok(device.stats().bindGroupsCreated > after.bindGroupsCreated);
    x.dispose();
  });
});
