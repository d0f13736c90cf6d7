import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { createDataset } from '../src/datasets.js';
import { readImage, readLabel } from '../src/decode.js';
import {
  DEMO_CLASSES,
  type DemoDatasetOptions,
  generateDemoDataset,
  isDemoDatasetComplete,
  renderDemoScene,
} from '../src/demo/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'segtrain-demo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SMALL = { trainCount: 4, valCount: 2, width: 128, height: 64, seed: 7 } as const;
const IDS = [0, 1, 2, 8, 10, 11, 13];
const ALLOWED = new Set([...IDS, 255]);

/** Every file under `dir`, relative to it, sorted. */
function walk(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) visit(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  visit(dir);
  return out.sort();
}

function pngs(root: string, kind: 'leftImg8bit' | 'gtFine'): string[] {
  return walk(join(root, kind)).map((f) => join(root, kind, f));
}

async function generate(name: string, options: Omit<DemoDatasetOptions, 'root'> = SMALL): Promise<string> {
  const root = join(tmp, name);
  const result = await generateDemoDataset({ root, ...options });
  assert.deepEqual(result, { train: options.trainCount, val: options.valCount, root });
  return root;
}

describe('demo dataset', () => {
  let root = '';
  beforeAll(async () => {
    root = await generate('a');
  });

  test('DEMO_CLASSES names the 7 Cityscapes trainIds', () => {
    assert.deepEqual(Object.keys(DEMO_CLASSES).map(Number), IDS);
    assert.deepEqual(Object.values(DEMO_CLASSES), [
      'road',
      'sidewalk',
      'building',
      'vegetation',
      'sky',
      'person',
      'car',
    ]);
  });

  test('writes the Cityscapes layout: images, trainId labels, README and marker', () => {
    const files = walk(root);
    const re =
      /^(leftImg8bit|gtFine)\/(train|val)\/([a-z-]+)\/\3_(\d{6})_000019_(leftImg8bit|gtFine_labelTrainIds)\.png$/;
    const images = files.filter((f) => f.startsWith('leftImg8bit/'));
    const labels = files.filter((f) => f.startsWith('gtFine/'));
    assert.deepEqual(
      files.filter((f) => !images.includes(f) && !labels.includes(f)),
      ['.complete', 'README.md'],
    );
    for (const f of [...images, ...labels]) {
      const m = re.exec(f);
      assert.ok(m, `unexpected file name ${f}`);
      assert.equal(m[1] === 'leftImg8bit', m[5] === 'leftImg8bit', f);
    }
    // Every image has its label, with the Cityscapes name mapping.
    assert.deepEqual(
      labels,
      images.map((f) =>
        f.replace(/^leftImg8bit/, 'gtFine').replace(/_leftImg8bit\.png$/, '_gtFine_labelTrainIds.png'),
      ),
    );
    assert.deepEqual(images.filter((f) => f.startsWith('leftImg8bit/train/')).length, 4);
    assert.deepEqual(images.filter((f) => f.startsWith('leftImg8bit/val/')).length, 2);
    // Two training cities, round-robin; validation cities differ from training ones.
    assert.deepEqual(readdirSync(join(root, 'leftImg8bit', 'train')).sort(), ['pixelstadt', 'synthburg']);
    assert.deepEqual(readdirSync(join(root, 'leftImg8bit', 'val')), ['renderheim']);
    assert.ok(images.includes('leftImg8bit/train/synthburg/synthburg_000001_000019_leftImg8bit.png'));
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const name of Object.values(DEMO_CLASSES)) assert.match(readme, new RegExp(`\\| ${name} \\|`));
  });

  test('images are 8-bit RGB, labels 8-bit gray of the same size with only the demo ids (+255)', () => {
    const images = pngs(root, 'leftImg8bit');
    const labels = pngs(root, 'gtFine');
    for (const [i, file] of images.entries()) {
      const img = decode(readFileSync(file));
      const lbl = decode(readFileSync(labels[i]!));
      assert.deepEqual([img.width, img.height, img.channels, img.depth], [128, 64, 3, 8], file);
      assert.deepEqual([lbl.width, lbl.height, lbl.channels, lbl.depth], [128, 64, 1, 8], labels[i]);
      assert.equal(lbl.palette, undefined);
      for (const v of new Set(lbl.data)) assert.ok(ALLOWED.has(v), `label value ${v} in ${labels[i]}`);
    }
  });

  test('every class appears, with plausible pixel shares over the set', () => {
    const counts = new Map<number, number>();
    let total = 0;
    for (const file of pngs(root, 'gtFine')) {
      const { data } = decode(readFileSync(file));
      for (const v of data) counts.set(v, (counts.get(v) ?? 0) + 1);
      total += data.length;
    }
    const share = (id: number): number => (counts.get(id) ?? 0) / total;
    for (const id of IDS) assert.ok(share(id) > 0, `class ${DEMO_CLASSES[id]} absent`);
    assert.ok(share(0) > 0.05, `road ${share(0)}`);
    assert.ok(share(10) > 0.05, `sky ${share(10)}`);
    assert.ok(share(11) > 0.005, `person ${share(11)}`);
    assert.ok(share(13) > 0.005, `car ${share(13)}`);
    assert.ok(share(255) < 0.05, `ignore ${share(255)}`);
  });

  test('class shares over 40 scenes stay in street-scene ranges', () => {
    const counts = new Map<number, number>();
    let total = 0;
    for (let i = 0; i < 40; i++) {
      const { label } = renderDemoScene('train', i, { width: 128, height: 64, seed: 3 });
      for (const v of label) counts.set(v, (counts.get(v) ?? 0) + 1);
      total += label.length;
    }
    const ranges: Record<number, [number, number]> = {
      0: [0.2, 0.45],
      1: [0.03, 0.15],
      2: [0.1, 0.4],
      8: [0.05, 0.35],
      10: [0.03, 0.15],
      11: [0.005, 0.04],
      13: [0.04, 0.2],
    };
    for (const [id, [lo, hi]] of Object.entries(ranges)) {
      const s = (counts.get(Number(id)) ?? 0) / total;
      assert.ok(s >= lo && s <= hi, `${DEMO_CLASSES[Number(id)]}: ${s.toFixed(4)} outside [${lo}, ${hi}]`);
    }
  });

  test('labels line up with the pixels: sky brightest, vegetation green, road grey', () => {
    const sum = new Map<number, [number, number, number, number]>();
    for (let i = 0; i < 10; i++) {
      const { rgb, label } = renderDemoScene('val', i, { width: 128, height: 64, seed: 3 });
      for (let p = 0; p < label.length; p++) {
        const s = sum.get(label[p]!) ?? [0, 0, 0, 0];
        s[0] += rgb[p * 3]!;
        s[1] += rgb[p * 3 + 1]!;
        s[2] += rgb[p * 3 + 2]!;
        s[3]++;
        sum.set(label[p]!, s);
      }
    }
    const mean = (id: number): [number, number, number] => {
      const [r, g, b, n] = sum.get(id)!;
      return [r / n, g / n, b / n];
    };
    const bright = (id: number): number => mean(id).reduce((a, b) => a + b);
    const [vr, vg, vb] = mean(8);
    assert.ok(vg > vr && vg > vb, `vegetation mean ${mean(8)}`);
    const [sr, , sb] = mean(10);
    assert.ok(sb > sr, `sky mean ${mean(10)}`);
    assert.ok(bright(10) > bright(0) && bright(10) > bright(2), 'sky is the brightest');
    const [rr, rg, rb] = mean(0);
    assert.ok(Math.max(rr, rg, rb) - Math.min(rr, rg, rb) < 20, `road mean ${mean(0)}`);
  });

  test('the Cityscapes loader reads it', async () => {
    for (const mode of ['train', 'val'] as const) {
      const ds = createDataset({ type: 'Cityscapes', dataset_root: root, transforms: [], mode, edge: false });
      assert.equal(ds.length, mode === 'train' ? 4 : 2);
      for (const e of ds.entries) {
        const img = await readImage(e.image);
        const lbl = await readLabel(e.label!);
        assert.deepEqual([img.height, img.width, img.channels], [64, 128, 3]);
        assert.deepEqual([lbl.height, lbl.width], [64, 128]);
      }
    }
  });

  test('same seed → byte-identical files; another seed → different images', async () => {
    const again = await generate('b');
    const files = walk(root);
    assert.deepEqual(walk(again), files);
    for (const f of files) assert.ok(readFileSync(join(root, f)).equals(readFileSync(join(again, f))), f);

    const other = await generate('c', { ...SMALL, seed: 8 });
    for (const f of files.filter((g) => g.endsWith('.png'))) {
      assert.ok(
        !readFileSync(join(root, f)).equals(readFileSync(join(other, f))),
        `${f} same for seeds 7 and 8`,
      );
    }
  });

  test('a sample does not depend on the size of its split', () => {
    const a = renderDemoScene('train', 2, { width: 128, height: 64, seed: 7 });
    const img = decode(
      readFileSync(join(root, 'leftImg8bit/train/synthburg/synthburg_000001_000019_leftImg8bit.png')),
    );
    assert.deepEqual(Buffer.from(img.data), Buffer.from(a.rgb));
  });

  test('the .complete marker records the options; its absence means incomplete', async () => {
    assert.equal(await isDemoDatasetComplete(root), true);
    assert.equal(await isDemoDatasetComplete(root, SMALL), true);
    assert.equal(await isDemoDatasetComplete(root, { ...SMALL, seed: 8 }), false);
    assert.equal(await isDemoDatasetComplete(root, {}), false); // defaults: 300 + 30 at 512×256
    assert.equal(await isDemoDatasetComplete(join(tmp, 'missing')), false);
    rmSync(join(root, '..', 'c', '.complete'));
    assert.equal(await isDemoDatasetComplete(join(tmp, 'c')), false);
  });

  test('a half-written dataset is replaced whole, and no temp directory is left behind', async () => {
    const half = join(tmp, 'half');
    mkdirSync(join(half, 'leftImg8bit', 'train', 'stale'), { recursive: true });
    writeFileSync(join(half, 'leftImg8bit', 'train', 'stale', 'stale_000000_000019_leftImg8bit.png'), 'x');
    assert.equal(await isDemoDatasetComplete(half), false);
    await generate('half', { ...SMALL, trainCount: 1, valCount: 1 });
    assert.equal(await isDemoDatasetComplete(half), true);
    assert.equal(existsSync(join(half, 'leftImg8bit', 'train', 'stale')), false);
    assert.equal(walk(join(half, 'leftImg8bit')).length, 2);
    // Generation happens in a hidden sibling that is renamed into place.
    assert.deepEqual(
      readdirSync(tmp).filter((e) => e.startsWith('.')),
      [],
    );
  });

  test('refuses to replace a directory that is not a demo dataset', async () => {
    const foreign = join(tmp, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'keep me');
    await assert.rejects(generateDemoDataset({ root: foreign, ...SMALL }), /refusing to replace/);
    assert.equal(readFileSync(join(foreign, 'notes.txt'), 'utf8'), 'keep me');
    assert.deepEqual(
      readdirSync(tmp).filter((e) => e.startsWith('.')),
      [],
    );
  });

  test('rejects invalid options before writing anything', async () => {
    const bad = join(tmp, 'bad');
    await assert.rejects(generateDemoDataset({ root: bad, width: 0 }), RangeError);
    await assert.rejects(generateDemoDataset({ root: bad, trainCount: -1 }), RangeError);
    await assert.rejects(
      generateDemoDataset({ root: bad, cities: { train: ['a_b'], val: ['c'] } }),
      RangeError,
    );
    assert.equal(existsSync(bad), false);
  });
});
