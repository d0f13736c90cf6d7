import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DatasetConfig } from '@segtrain/config';
import { encode } from 'fast-png';
import { afterAll, describe, test } from 'vitest';
import { createDataset, DatasetError } from '../src/datasets.js';
import {
  cityscapesPalette,
  colorMap,
  readImage,
  readLabel,
  writePalettePng,
  writePng,
} from '../src/decode.js';
import { SeededRandom } from '../src/random.js';
import { loadSample } from '../src/sample.js';
import { buildTransforms } from '../src/transforms/index.js';
import {
  buildListDataset,
  cityscapesBlock,
  genericBlock,
  H,
  labelPixels,
  rgbPixels,
  tempDir,
  W,
  writeGrayLabel,
  writePaletteLabel,
  writeRgb,
} from './fixtures.js';

const tmp = tempDir('datasets');
afterAll(tmp.cleanup);
let dirCount = 0;
function freshDir(name: string): string {
  const d = join(tmp.dir, `${name}-${dirCount++}`);
  mkdirSync(d, { recursive: true });
  return d;
}

const rng = () => new SeededRandom(1);

/** Asserts that `fn` rejects/throws a DatasetError whose message contains every fragment. */
async function rejectsWith(fn: () => unknown, ...fragments: string[]): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (e: unknown) => {
      assert.ok(e instanceof DatasetError, `expected DatasetError, got ${String(e)}`);
      for (const f of fragments) assert.ok(e.message.includes(f), `message lacks '${f}': ${e.message}`);
      return true;
    },
  );
}

describe('decode', () => {
  test('RGB PNG round-trips to HWC float32; gray derives with OpenCV weights', async () => {
    const dir = freshDir('decode');
    await writeRgb(join(dir, 'a.png'), 3);
    const img = await readImage(join(dir, 'a.png'), 3);
    assert.deepEqual([img.height, img.width, img.channels], [H, W, 3]);
    assert.deepEqual(img.data, Float32Array.from(rgbPixels(3)));
    const gray = await readImage(join(dir, 'a.png'), 1);
    assert.equal(gray.channels, 1);
    const p = rgbPixels(3);
    const y0 = ((p[0] ?? 0) * 4899 + (p[1] ?? 0) * 9617 + (p[2] ?? 0) * 1868 + 8192) >> 14;
    assert.equal(gray.data[0], y0);
  });

  test('a gray image read with 3 channels repeats the value', async () => {
    const dir = freshDir('decode');
    const data = labelPixels(1, 200);
    await writeGrayLabel(join(dir, 'g.png'), data);
    const img = await readImage(join(dir, 'g.png'), 3);
    assert.deepEqual([img.data[3], img.data[4], img.data[5]], [data[1], data[1], data[1]]);
  });

  test('palette PNGs decode to indices (8-bit and packed 4-bit), gray PNGs to values', async () => {
    const dir = freshDir('decode');
    const idx = labelPixels(2, 4);
    await writePaletteLabel(join(dir, 'p.png'), idx);
    const p = await readLabel(join(dir, 'p.png'));
    assert.deepEqual([p.height, p.width], [H, W]);
    assert.deepEqual(p.data, idx);
    assert.equal(p.data[0], 255);

    // PIL writes small palettes with 1/2/4-bit depth; rows are packed and byte-padded.
    const w = 5;
    const h = 2;
    const values = [1, 2, 3, 0, 15, 7, 6, 5, 4, 9];
    const packed = new Uint8Array(Math.ceil(w / 2) * h);
    values.forEach((v, i) => {
      const y = Math.floor(i / w);
      const x = i % w;
      const at = y * Math.ceil(w / 2) + (x >> 1);
      packed[at] = (packed[at] ?? 0) | (x % 2 === 0 ? v << 4 : v);
    });
    const palette = Array.from({ length: 16 }, (_, i) => [i * 16, 0, 0]);
    writeFileSync(
      join(dir, 'p4.png'),
      encode({ width: w, height: h, data: packed, channels: 1, depth: 4, palette }),
    );
    assert.deepEqual([...(await readLabel(join(dir, 'p4.png'))).data], values);

    const gray = labelPixels(5, 19);
    await writeGrayLabel(join(dir, 'g.png'), gray);
    assert.deepEqual((await readLabel(join(dir, 'g.png'))).data, gray);
  });

  test('an RGB label is an error naming the file', async () => {
    const dir = freshDir('decode');
    await writeRgb(join(dir, 'rgb.png'), 1);
    await rejectsWith(
      () => readLabel(join(dir, 'rgb.png')),
      'rgb.png',
      'single-channel index or palette PNGs',
    );
  });

  test('a truncated label says it is truncated, not where the decoder stopped', async () => {
    const dir = freshDir('truncated');
    await writeGrayLabel(join(dir, 'g.png'), labelPixels(5, 19));
    const whole = readFileSync(join(dir, 'g.png'));
    for (const cut of [40, whole.length - 20]) {
      writeFileSync(join(dir, 't.png'), whole.subarray(0, cut));
      await assert.rejects(readLabel(join(dir, 't.png')), (e: unknown) => {
        assert.ok(e instanceof DatasetError);
        assert.match(
          e.message,
          /^label '.*t\.png' cannot be decoded as PNG: it is truncated or corrupt \(.*[^:]\)\. /,
        );
        assert.ok(e.message.endsWith('Re-export the label, or take it out of the dataset'));
        return true;
      });
    }
  });

  test('writers leave no temp files and reject wrong sizes', async () => {
    const dir = freshDir('write');
    await writePalettePng(join(dir, 'x.png'), new Uint8Array(W * H), W, H, cityscapesPalette());
    await writePng(join(dir, 'y.png'), { data: new Uint8Array(W * H * 3), width: W, height: H, channels: 3 });
    assert.deepEqual(readdirSync(dir).sort(), ['x.png', 'y.png']);
    await assert.rejects(
      writePng(join(dir, 'z.png'), { data: new Uint8Array(5), width: W, height: H, channels: 1 }),
    );
    assert.deepEqual(readdirSync(dir).sort(), ['x.png', 'y.png']);
  });

  test('palettes: Cityscapes trainId colours and PaddleSeg get_color_map_list', () => {
    const cs = cityscapesPalette();
    assert.equal(cs.length, 19);
    assert.deepEqual(cs[0], [128, 64, 128]);
    assert.deepEqual(cs[13], [0, 0, 142]);
    assert.deepEqual(cs[18], [119, 11, 32]);
    const cm = colorMap(256);
    assert.equal(cm.length, 256);
    // get_color_map_list drops the black entry of label 0: class 0 is (128, 0, 0).
    assert.deepEqual(cm.slice(0, 4), [
      [128, 0, 0],
      [0, 128, 0],
      [128, 128, 0],
      [0, 0, 128],
    ]);
    // Reference values computed with PaddleSeg's Python function.
    assert.deepEqual(cm[6], [128, 128, 128]);
    assert.deepEqual(cm[8], [192, 0, 0]);
    assert.deepEqual(cm[20], [128, 64, 128]);
    assert.deepEqual(cm[255], [0, 0, 32]);
  });
});

async function buildCityscapes(
  root: string,
  files: Record<string, string[]>,
  split = 'train',
  labels = true,
) {
  let seed = 0;
  for (const [city, stems] of Object.entries(files)) {
    for (const stem of stems) {
      await writeRgb(join(root, 'leftImg8bit', split, city, `${stem}_leftImg8bit.png`), seed);
      if (labels) {
        await writeGrayLabel(
          join(root, 'gtFine', split, city, `${stem}_gtFine_labelTrainIds.png`),
          labelPixels(seed, 19),
        );
      }
      seed++;
    }
  }
  mkdirSync(join(root, 'gtFine'), { recursive: true });
}

describe('Cityscapes', () => {
  test('discovers <split>/<city>/*_leftImg8bit.png, sorted, paired by stem', async () => {
    const root = freshDir('cs');
    await buildCityscapes(root, {
      zurich: ['zurich_000001_000019'],
      aachen: ['aachen_000001_000019', 'aachen_000000_000019'],
    });
    // Unrelated files are ignored.
    writeFileSync(join(root, 'leftImg8bit', 'train', 'aachen', 'notes.txt'), 'x');
    const ds = createDataset(cityscapesBlock(root));
    assert.equal(ds.length, 3);
    assert.equal(ds.numClasses, 19);
    assert.equal(ds.ignoreIndex, 255);
    assert.deepEqual(
      ds.entries.map((e) => e.image.slice(root.length)),
      [
        '/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png',
        '/leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png',
        '/leftImg8bit/train/zurich/zurich_000001_000019_leftImg8bit.png',
      ],
    );
    for (const e of ds.entries) {
      assert.equal(
        e.label?.replace('/gtFine/', '/leftImg8bit/').replace('_gtFine_labelTrainIds', '_leftImg8bit'),
        e.image,
      );
    }
    const s = await loadSample(ds, 2, [], rng());
    assert.equal(s.transformLabel, true);
    assert.deepEqual(s.label, labelPixels(0, 19));
  });

  test('an image without a label is an error naming it (no silent shift)', async () => {
    const root = freshDir('cs');
    await buildCityscapes(root, { aachen: ['a_1', 'a_2', 'a_3'] });
    unlinkSync(join(root, 'gtFine', 'train', 'aachen', 'a_2_gtFine_labelTrainIds.png'));
    await rejectsWith(
      () => createDataset(cityscapesBlock(root)),
      'a_2_leftImg8bit.png',
      '1 image(s)',
      'labelTrainIds',
    );
  });

  test('test split without labels gives label-less entries', async () => {
    const root = freshDir('cs');
    await buildCityscapes(root, { berlin: ['b_1'] }, 'test', false);
    const ds = createDataset(cityscapesBlock(root, 'test'));
    assert.equal(ds.entries[0]?.label, null);
    const s = await loadSample(ds, 0, [], rng());
    assert.equal(s.label, null);
  });

  test('missing root, leftImg8bit, gtFine, split and empty split are errors', async () => {
    const missing = join(tmp.dir, 'nope');
    await rejectsWith(
      () => createDataset(cityscapesBlock(missing)),
      `dataset_root '${missing}' does not exist`,
      `segtrain data demo --out ${missing}`,
      'train_dataset.dataset_root',
    );
    await rejectsWith(() => createDataset(cityscapesBlock(missing, 'val')), 'val_dataset.dataset_root');
    const root = freshDir('cs');
    await rejectsWith(() => createDataset(cityscapesBlock(root)), 'leftImg8bit');
    mkdirSync(join(root, 'leftImg8bit'));
    await rejectsWith(() => createDataset(cityscapesBlock(root)), 'gtFine', 'createTrainIdLabelImgs');
    mkdirSync(join(root, 'gtFine'));
    await rejectsWith(() => createDataset(cityscapesBlock(root)), join(root, 'leftImg8bit', 'train'));
    mkdirSync(join(root, 'leftImg8bit', 'train', 'x'), { recursive: true });
    await rejectsWith(() => createDataset(cityscapesBlock(root)), 'no images found');
  });
});

describe('generic Dataset', () => {
  test('list lines relative to dataset_root (absolute wins), trailing blank lines skipped', async () => {
    const root = freshDir('list');
    await buildListDataset(root, 2);
    const abs = join(root, 'img', '1.png');
    writeFileSync(join(root, 'l.txt'), `img/0.png lbl/0.png\r\n${abs} lbl/1.png\n  \n\n`);
    const ds = createDataset(genericBlock(root, { train_path: join(root, 'l.txt') }));
    assert.deepEqual(ds.entries, [
      { image: join(root, 'img/0.png'), label: join(root, 'lbl/0.png') },
      { image: abs, label: join(root, 'lbl/1.png') },
    ]);
    assert.equal(ds.numClasses, 4);
    assert.equal(ds.imgChannels, 3);
    // A list path relative to dataset_root is found too.
    assert.equal(createDataset(genericBlock(root, { train_path: 'l.txt' })).length, 2);
  });

  test('custom separator; test mode takes image-only lines', async () => {
    const root = freshDir('list');
    await buildListDataset(root, 2);
    writeFileSync(join(root, 'v.txt'), 'img/0.png|lbl/0.png\nimg/1.png|lbl/1.png\n');
    const val = createDataset(
      genericBlock(root, { mode: 'val', val_path: join(root, 'v.txt'), separator: '|' }),
    );
    assert.equal(val.length, 2);
    const s = await loadSample(val, 1, [], rng());
    assert.equal(s.transformLabel, false);
    writeFileSync(join(root, 't.txt'), 'img/0.png\nimg/1.png lbl/1.png\n');
    const t = createDataset(genericBlock(root, { mode: 'test', test_path: join(root, 't.txt') }));
    assert.deepEqual(
      t.entries.map((e) => e.label),
      [null, join(root, 'lbl/1.png')],
    );
  });

  test('malformed, blank and dangling lines are errors naming file:line', async () => {
    const root = freshDir('list');
    await buildListDataset(root, 2);
    const list = join(root, 'bad.txt');
    const block = genericBlock(root, { train_path: list });
    writeFileSync(list, 'img/0.png lbl/0.png\nimg/1.png\n');
    await rejectsWith(() => createDataset(block), `${list}:2`, '"<image> <label>"', '1 field(s)');
    writeFileSync(list, 'img/0.png lbl/0.png\n\nimg/1.png lbl/1.png\n');
    await rejectsWith(() => createDataset(block), `${list}:2`, 'empty line');
    writeFileSync(list, 'img/0.png lbl/0.png\nimg/9.png lbl/1.png\n');
    await rejectsWith(
      () => createDataset(block),
      `${list}:2`,
      `image '${join(root, 'img/9.png')}' does not exist`,
    );
    writeFileSync(list, 'img/0.png lbl/7.png\n');
    await rejectsWith(
      () => createDataset(block),
      `${list}:1`,
      `label '${join(root, 'lbl/7.png')}' does not exist`,
    );
    writeFileSync(list, '\n\n');
    await rejectsWith(() => createDataset(block), 'lists no images');
    await rejectsWith(
      () => createDataset(genericBlock(root, { train_path: join(root, 'none.txt') })),
      `train_path '${join(root, 'none.txt')}' does not exist`,
    );
  });

  test('image/label size mismatch names both files and sizes', async () => {
    const root = freshDir('list');
    await buildListDataset(root, 1);
    await writeGrayLabel(join(root, 'lbl', '0.png'), new Uint8Array(4 * 6), 4, 6);
    const ds = createDataset(genericBlock(root, { train_path: join(root, 'train.txt') }));
    await rejectsWith(
      () => loadSample(ds, 0, [], rng()),
      join(root, 'img/0.png'),
      join(root, 'lbl/0.png'),
      `${W}×${H}`,
      '6×4',
    );
  });

  test('label values outside [0, num_classes) ∪ {ignore_index} name the file and value', async () => {
    const root = freshDir('list');
    await buildListDataset(root, 1);
    const bad = labelPixels(0, 4);
    bad[21] = 7;
    await writeGrayLabel(join(root, 'lbl', '0.png'), bad);
    const ds = createDataset(genericBlock(root, { train_path: join(root, 'train.txt') }));
    await rejectsWith(
      () => loadSample(ds, 0, [], rng()),
      join(root, 'lbl/0.png'),
      'value 7',
      '0…3',
      'ignore_index 255',
    );
    // A custom ignore_index replaces 255.
    const ds2 = createDataset(genericBlock(root, { train_path: join(root, 'train.txt'), ignore_index: 7 }));
    await rejectsWith(() => loadSample(ds2, 0, [], rng()), 'value 255');
  });

  test('loadSample runs the transforms with the sample random stream', async () => {
    const root = freshDir('list');
    await buildListDataset(root, 1);
    const ds = createDataset(genericBlock(root, { train_path: join(root, 'train.txt') }));
    const s = await loadSample(
      ds,
      0,
      buildTransforms([{ type: 'Normalize', mean: [0.5], std: [0.5] }]),
      rng(),
    );
    assert.equal(s.img[0], (rgbPixels(0)[0] ?? 0) / 127.5 - 1);
    assert.equal(s.channels, 3);
    await assert.rejects(loadSample(ds, 1, [], rng()), RangeError);
  });
});

describe('PascalVOC and ADE20K layouts', () => {
  test('PascalVOC: VOC2012 ImageSets lists, 21 classes, trainaug needs aug.txt', async () => {
    const root = freshDir('voc');
    const base = join(root, 'VOC2012');
    for (const id of ['2007_000032', '2007_000033']) {
      await writeRgb(join(base, 'JPEGImages', `${id}.jpg`), 1);
      await writePaletteLabel(join(base, 'SegmentationClass', `${id}.png`), labelPixels(1, 4));
    }
    mkdirSync(join(base, 'ImageSets', 'Segmentation'), { recursive: true });
    writeFileSync(join(base, 'ImageSets', 'Segmentation', 'train.txt'), '2007_000032\n2007_000033\n');
    const block: DatasetConfig = {
      type: 'PascalVOC',
      dataset_root: root,
      transforms: [],
      mode: 'train',
      edge: false,
    };
    const ds = createDataset(block);
    assert.equal(ds.length, 2);
    assert.equal(ds.numClasses, 21);
    assert.equal(ds.entries[1]?.label, join(base, 'SegmentationClass', '2007_000033.png'));
    // JPEGImages holds a PNG here; decoding goes by content, not extension.
    assert.deepEqual((await loadSample(ds, 0, [], rng())).label, labelPixels(1, 4));
    await rejectsWith(() => createDataset({ ...block, mode: 'trainaug' }), 'aug.txt', 'voc_augment');
    await rejectsWith(() => createDataset({ ...block, mode: 'val' }), 'val.txt');
  });

  test('ADE20K: images/annotations, labels shifted by −1 (0 → 255)', async () => {
    const root = freshDir('ade');
    await writeRgb(join(root, 'images', 'training', 'ADE_train_00000001.jpg'), 1);
    const lbl = new Uint8Array(H * W);
    for (let i = 0; i < lbl.length; i++) lbl[i] = i % 3;
    lbl[127] = 150;
    await writeGrayLabel(join(root, 'annotations', 'training', 'ADE_train_00000001.png'), lbl);
    const block: DatasetConfig = {
      type: 'ADE20K',
      dataset_root: root,
      transforms: [],
      mode: 'train',
      edge: false,
    };
    const ds = createDataset(block);
    assert.equal(ds.numClasses, 150);
    const s = await loadSample(ds, 0, [], rng());
    assert.deepEqual([...(s.label ?? []).slice(0, 3)], [255, 0, 1]);
    assert.equal(s.label?.[127], 149);
    await rejectsWith(() => createDataset({ ...block, mode: 'val' }), join(root, 'images', 'validation'));
  });
});

// Debian's labelme-examples ships a real 3-image VOC-format sample (spec h).
const LABELME_VOC =
  process.env.SEGTRAIN_LABELME_VOC ??
  '/usr/share/doc/labelme-examples/examples/semantic_segmentation/data_dataset_voc';

test.skipIf(!existsSync(LABELME_VOC))(
  'labelme-examples VOC data through a generic Dataset list',
  async () => {
    const dir = freshDir('labelme');
    const ids = ['2011_000003', '2011_000006', '2011_000025'];
    const list = join(dir, 'train.txt');
    writeFileSync(list, ids.map((id) => `JPEGImages/${id}.jpg SegmentationClassPNG/${id}.png`).join('\n'));
    const ds = createDataset(genericBlock(LABELME_VOC, { num_classes: 21, train_path: list }));
    assert.equal(ds.length, 3);
    const expected = [
      { h: 338, w: 500, classes: [0, 5, 15, 255] },
      { h: 375, w: 500, classes: [0, 9, 15, 18, 255] },
      { h: 375, w: 500, classes: [0, 6, 7] },
    ];
    for (const [i, exp] of expected.entries()) {
      const s = await loadSample(ds, i, [], rng());
      assert.deepEqual([s.height, s.width, s.channels], [exp.h, exp.w, 3]);
      assert.deepEqual([s.labelHeight, s.labelWidth], [exp.h, exp.w]);
      assert.deepEqual(
        [...new Set(s.label)].sort((a, b) => a - b),
        exp.classes,
      );
    }
  },
);
