import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TransformConfig } from '@segtrain/config';
import { afterAll, describe, test } from 'vitest';
import { createDataset, DatasetError, type SegDataset } from '../src/datasets.js';
import { DataLoader, type LoadedBatch } from '../src/loader.js';
import { DistributedBatchSampler } from '../src/sampler.js';
import {
  buildListDataset,
  genericBlock,
  H,
  labelPixels,
  rgbPixels,
  tempDir,
  W,
  writeGrayLabel,
} from './fixtures.js';

const tmp = tempDir('loader');
afterAll(tmp.cleanup);
let dirCount = 0;

async function listDataset(
  n: number,
  options: Parameters<typeof buildListDataset>[2] = {},
): Promise<SegDataset> {
  const root = join(tmp.dir, `ds-${dirCount++}`);
  const list = await buildListDataset(root, n, options);
  return createDataset(genericBlock(root, { train_path: list }));
}

function loaderFor(
  dataset: SegDataset,
  numWorkers: number,
  options: { batchSize?: number; shuffle?: boolean; transforms?: TransformConfig[] } = {},
): DataLoader {
  const sampler = new DistributedBatchSampler({
    size: dataset.length,
    batchSize: options.batchSize ?? 2,
    shuffle: options.shuffle ?? false,
    dropLast: true,
  });
  return new DataLoader({ dataset, transforms: options.transforms ?? [], sampler, numWorkers, seed: 7 });
}

async function collect(it: AsyncIterable<LoadedBatch>): Promise<LoadedBatch[]> {
  const out: LoadedBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

/** Every stochastic transform with complete (resolved) parameters. */
const AUGMENT: TransformConfig[] = [
  { type: 'ResizeStepScaling', min_scale_factor: 0.5, max_scale_factor: 2.0, scale_step_size: 0.25 },
  {
    type: 'RandomPaddingCrop',
    crop_size: [12, 6],
    im_padding_value: 127.5,
    label_padding_value: 255,
    category_max_ratio: 1.0,
    ignore_index: 255,
    loop_times: 10,
  },
  { type: 'RandomHorizontalFlip', prob: 0.5 },
  {
    type: 'RandomDistort',
    brightness_range: 0.4,
    brightness_prob: 1,
    contrast_range: 0.4,
    contrast_prob: 1,
    saturation_range: 0.4,
    saturation_prob: 1,
    hue_range: 18,
    hue_prob: 0.5,
    sharpness_range: 0.5,
    sharpness_prob: 0,
  },
  { type: 'Normalize', mean: [0.5], std: [0.5] },
];

describe('DataLoader', () => {
  test('collates NCHW float32 images and N×H×W int32 labels in sampler order', async () => {
    const ds = await listDataset(4);
    const loader = loaderFor(ds, 0);
    assert.equal(loader.length, 2);
    const batches = await collect(loader.epoch(0));
    assert.equal(batches.length, 2);
    const b = batches[1] as LoadedBatch;
    assert.deepEqual(b.shape, [2, 3, H, W]);
    assert.deepEqual(b.labelShape, [2, H, W]);
    assert.deepEqual(b.indices, [2, 3]);
    assert.deepEqual(b.imagePaths, [ds.entries[2]?.image, ds.entries[3]?.image]);
    assert.deepEqual(b.transInfo, [[], []]);
    assert.ok(b.img instanceof Float32Array && b.label instanceof Int32Array);
    const hw = H * W;
    for (const [k, idx] of b.indices.entries()) {
      const src = rgbPixels(idx);
      for (const [p, ch] of [
        [0, 0],
        [5, 1],
        [hw - 1, 2],
      ] as const) {
        assert.equal(b.img[k * 3 * hw + ch * hw + p], src[p * 3 + ch]);
      }
      assert.deepEqual(b.label?.subarray(k * hw, (k + 1) * hw), Int32Array.from(labelPixels(idx, 4)));
    }
    assert.ok(batches.every((x) => typeof x.readerWait === 'number' && x.readerWait >= 0));
  });

  test('batches are bit-identical for 0 and 2 workers, across epochs and with skipBatches', async () => {
    const ds = await listDataset(6);
    const opts = { batchSize: 2, shuffle: true, transforms: AUGMENT };
    const inline = loaderFor(ds, 0, opts);
    const workers = loaderFor(ds, 2, opts);
    try {
      for (const epoch of [0, 1]) {
        const a = await collect(inline.epoch(epoch));
        const b = await collect(workers.epoch(epoch));
        assert.equal(a.length, 3);
        assert.equal(b.length, 3);
        for (const [i, x] of a.entries()) {
          const y = b[i] as LoadedBatch;
          assert.deepEqual(y.indices, x.indices);
          assert.deepEqual(y.shape, [2, 3, 6, 12]);
          assert.deepEqual(y.shape, x.shape);
          assert.deepEqual(y.labelShape, x.labelShape);
          assert.ok(
            Buffer.from(y.img.buffer).equals(Buffer.from(x.img.buffer)),
            `epoch ${epoch} batch ${i} image`,
          );
          assert.deepEqual(y.label, x.label);
          assert.deepEqual(y.transInfo, x.transInfo);
        }
        // Workers persist across completed epochs.
        assert.equal(workers.activeWorkers, 2);
        const skipped = await collect(workers.epoch(epoch, { skipBatches: 2 }));
        assert.equal(skipped.length, 1);
        assert.deepEqual(skipped[0]?.img, a[2]?.img);
      }
      // Another epoch draws other augmentations (and another order).
      const e0 = await collect(inline.epoch(0));
      const e2 = await collect(inline.epoch(2));
      assert.notDeepEqual(
        e0.map((x) => x.img),
        e2.map((x) => x.img),
      );
    } finally {
      await workers.close();
    }
    assert.equal(workers.activeWorkers, 0);
  });

  test('samples of different sizes in one batch are an error naming indices and sizes', async () => {
    const ds = await listDataset(2, { sizes: { 1: [10, 6] } });
    for (const numWorkers of [0, 1]) {
      const loader = loaderFor(ds, numWorkers);
      await assert.rejects(collect(loader.epoch(0)), (e: unknown) => {
        assert.ok(e instanceof DatasetError, String(e));
        assert.match(e.message, /dataset indices \[0, 1\] are 8×16, 10×6 \(H×W\)/);
        assert.match(e.message, /RandomPaddingCrop or Resize/);
        return true;
      });
      await loader.close();
    }
  });

  test('a worker error propagates with its original message and stops the workers', async () => {
    const ds = await listDataset(6);
    const bad = labelPixels(0, 4);
    bad[3] = 9;
    const badFile = ds.entries[3]?.label ?? '';
    await writeGrayLabel(badFile, bad);
    const loader = loaderFor(ds, 2);
    const seen: number[][] = [];
    await assert.rejects(
      (async () => {
        for await (const b of loader.epoch(0)) seen.push([...b.indices]);
      })(),
      (e: unknown) => {
        assert.ok(e instanceof DatasetError, String(e));
        assert.ok(e.message.includes(`label '${badFile}' has value 9`), e.message);
        return true;
      },
    );
    // Batches before the failing one were still delivered, in order.
    assert.deepEqual(seen, [[0, 1]]);
    assert.equal(loader.activeWorkers, 0);
    await loader.close();
  });

  test('breaking out of an epoch and close() leave no live workers', async () => {
    const ds = await listDataset(6);
    const loader = loaderFor(ds, 2, { batchSize: 1 });
    for await (const b of loader.epoch(0)) {
      assert.deepEqual(b.indices, [0]);
      assert.equal(loader.activeWorkers, 2);
      break;
    }
    assert.equal(loader.activeWorkers, 0);
    // The next epoch starts fresh workers.
    const all = await collect(loader.epoch(1));
    assert.deepEqual(
      all.map((b) => b.indices[0]),
      [0, 1, 2, 3, 4, 5],
    );
    assert.equal(loader.activeWorkers, 2);
    await loader.close();
    assert.equal(loader.activeWorkers, 0);
    await assert.rejects(collect(loader.epoch(2)), /closed/);
  });

  test('option checks', async () => {
    const ds = await listDataset(2);
    const sampler = new DistributedBatchSampler({ size: 2, batchSize: 1, shuffle: false, dropLast: true });
    assert.throws(
      () => new DataLoader({ dataset: ds, transforms: [], sampler, numWorkers: -1, seed: 0 }),
      /numWorkers/,
    );
    assert.throws(
      () => new DataLoader({ dataset: ds, transforms: [], sampler, numWorkers: 1, prefetch: 0, seed: 0 }),
      /prefetch/,
    );
    const loader = new DataLoader({ dataset: ds, transforms: [], sampler, numWorkers: 0, seed: 0 });
    await assert.rejects(collect(loader.epoch(0, { skipBatches: -1 })), /skipBatches/);
  });
});
