import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BatchNorm2d,
  Conv2d,
  type HostTensor,
  Module,
  type SafetensorsEntry,
  writeSafetensors,
} from '@segtrain/nn';
import { type Device, getDevice, type Tensor } from '@segtrain/tensor';
import { describe, it } from 'vitest';
import {
  type Backbone,
  buildModelWithPretrained,
  cachedPretrainedPath,
  cachedPretrainedPaths,
  loadPretrained,
  registerModel,
  type SegModel,
} from '../src/index.js';

class TinyBackbone extends Module implements Backbone {
  readonly featChannels = [4];
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(device: Device) {
    super(device);
    this.conv = this.addModule('conv', new Conv2d(device, 3, 4, { kernel: 3, padding: 1, bias: false }));
    this.bn = this.addModule('bn', new BatchNorm2d(device, 4));
  }
  forward(x: Tensor): Tensor[] {
    return [this.bn.forward(this.conv.forward(x))];
  }
}

class TinySeg extends Module implements SegModel {
  readonly backbone: TinyBackbone;
  readonly cls: Conv2d;
  constructor(device: Device, classes: number) {
    super(device);
    this.backbone = this.addModule('backbone', new TinyBackbone(device));
    this.cls = this.addModule('cls', new Conv2d(device, 4, classes, { kernel: 1, bias: true }));
  }
  forward(x: Tensor): Tensor[] {
    return [this.cls.forward(this.backbone.forward(x)[0] as Tensor)];
  }
}

registerModel('TinyPretrainedSeg', (device, config) => new TinySeg(device, config.num_classes as number));

const tmp = () => mkdtempSync(join(tmpdir(), 'segtrain-pretrained-'));

function filled(shape: number[], value: number): HostTensor {
  return { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value) };
}

async function writeState(path: string, values: Record<string, HostTensor>): Promise<void> {
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [k, v] of Object.entries(values)) tensors.set(k, { dtype: 'F32', shape: v.shape, data: v.data });
  await writeSafetensors(path, tensors);
}

async function values(module: Module): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [k, v] of await module.stateDictValues()) out.set(k, [...v.data]);
  return out;
}

function capture(): { log: (line: string) => void; lines: string[] } {
  const lines: string[] = [];
  return { log: (line) => lines.push(line), lines };
}

describe('loadPretrained', () => {
  it('loads a local safetensors file, listing missing and unexpected keys', async () => {
    const device = await getDevice();
    const model = new TinySeg(device, 2);
    const file = join(tmp(), 'weights.safetensors');
    await writeState(file, {
      'backbone.conv.weight': filled([4, 3, 3, 3], 0.5),
      'backbone.bn.weight': filled([4], 2),
      'backbone.bn.bias': filled([4], 3),
      'backbone.bn._mean': filled([4], 4),
      'backbone.bn._variance': filled([4], 5),
      'cls.weight': filled([2, 4, 1, 1], 6),
      // cls.bias is missing
      'fc.weight': filled([4, 10], 1),
    });
    const { log, lines } = capture();
    const report = await loadPretrained(model, file, { log });
    assert.equal(report.status, 'loaded');
    assert.deepEqual(report.missing, ['cls.bias']);
    assert.deepEqual(report.unexpected, ['fc.weight']);
    assert.equal(report.loaded.length, 6);
    assert.ok(lines.some((l) => l.includes('cls.bias') && l.includes('is not in pretrained model')));
    assert.ok(lines.some((l) => l.includes('fc.weight') && /not in TinySeg/.test(l)));
    assert.equal(lines.at(-1), 'There are 6/7 variables loaded into TinySeg.');
    const v = await values(model);
    assert.ok(v.get('backbone.conv.weight')?.every((x) => x === 0.5));
    assert.ok(v.get('backbone.bn._variance')?.every((x) => x === 5));
    assert.ok(v.get('cls.weight')?.every((x) => x === 6));
    assert.ok(v.get('cls.bias')?.every((x) => x === 0));
    model.dispose();
  });

  it('skips a shape mismatch with [SKIP] naming the key, loading the rest', async () => {
    const device = await getDevice();
    const model = new TinySeg(device, 2);
    const before = await values(model);
    const file = join(tmp(), 'weights.safetensors');
    const state = Object.fromEntries(
      [...(await model.stateDictValues())].map(([k, v]) => [k, filled([...v.shape], 7)]),
    );
    state['cls.weight'] = filled([19, 4, 1, 1], 7);
    await writeState(file, state);
    const { log, lines } = capture();
    const report = await loadPretrained(model, file, { log });
    assert.deepEqual(report.skipped, ['cls.weight']);
    const skip = lines.filter((l) => l.startsWith('[SKIP]'));
    assert.equal(skip.length, 1);
    assert.match(skip[0] ?? '', /cls\.weight.*Pretrained: \[19, 4, 1, 1\], Actual: \[2, 4, 1, 1\]/);
    assert.equal(lines.at(-1), 'There are 6/7 variables loaded into TinySeg.');
    const after = await values(model);
    assert.deepEqual(after.get('cls.weight'), before.get('cls.weight'));
    assert.ok(after.get('cls.bias')?.every((x) => x === 7));
    model.dispose();
  });

  it('a missing local file is an error naming it', async () => {
    const device = await getDevice();
    const model = new TinySeg(device, 2);
    const file = join(tmp(), 'nope.safetensors');
    await assert.rejects(loadPretrained(model, file, { log: () => {} }), (e: Error) =>
      e.message.includes(file),
    );
    model.dispose();
  });

  it('an uncached URL warns once and keeps the initialisers; nothing is downloaded', async () => {
    const device = await getDevice();
    const model = new TinySeg(device, 2);
    const before = await values(model);
    const cacheDir = tmp();
    const url = 'https://bj.bcebos.com/paddleseg/dygraph/PP_STDCNet1.tar.gz';
    const { log, lines } = capture();
    const report = await loadPretrained(model, url, { log, cacheDir });
    assert.equal(report.status, 'not-cached');
    assert.equal(report.file, join(cacheDir, 'PP_STDCNet1.safetensors'));
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /\[WARNING\].*PP_STDCNet1\.tar\.gz.*not in the local cache.*initialisers/);
    assert.deepEqual(await values(model), before);
    model.dispose();
  });

  it('a cached URL loads from $SEGTRAIN_CACHE / <basename>.safetensors', async () => {
    const device = await getDevice();
    const backbone = new TinyBackbone(device);
    const cacheDir = tmp();
    const url = 'https://example.com/models/mit_b0.pdparams';
    assert.equal(cachedPretrainedPath(url, cacheDir), join(cacheDir, 'mit_b0.safetensors'));
    assert.deepEqual(cachedPretrainedPaths(url, cacheDir), [
      join(cacheDir, 'mit_b0.safetensors'),
      join(cacheDir, 'mit_b0.pdparams'),
      join(cacheDir, 'mit_b0', 'model.pdparams'),
    ]);
    await writeState(
      join(cacheDir, 'mit_b0.safetensors'),
      Object.fromEntries(
        [...(await backbone.stateDictValues())].map(([k, v]) => [k, filled([...v.shape], 9)]),
      ),
    );
    const previous = process.env.SEGTRAIN_CACHE;
    process.env.SEGTRAIN_CACHE = cacheDir;
    try {
      const { log, lines } = capture();
      const report = await loadPretrained(backbone, url, { log });
      assert.equal(report.status, 'loaded');
      assert.deepEqual(lines, [
        `Loading pretrained model from ${join(cacheDir, 'mit_b0.safetensors')}`,
        'There are 5/5 variables loaded into TinyBackbone.',
      ]);
      for (const [, v] of await values(backbone)) assert.ok(v.every((x) => x === 9));
    } finally {
      if (previous === undefined) delete process.env.SEGTRAIN_CACHE;
      else process.env.SEGTRAIN_CACHE = previous;
      backbone.dispose();
    }
  });
});

describe('buildModelWithPretrained', () => {
  it('loads the backbone-level file into the backbone (no prefix), then the model-level one', async () => {
    const device = await getDevice();
    const dir = tmp();
    const bbFile = join(dir, 'backbone.safetensors');
    await writeState(bbFile, {
      'conv.weight': filled([4, 3, 3, 3], 1),
      'bn.weight': filled([4], 1),
      'bn.bias': filled([4], 1),
      'bn._mean': filled([4], 1),
      'bn._variance': filled([4], 1),
    });
    const modelFile = join(dir, 'model.safetensors');
    await writeState(modelFile, { 'cls.weight': filled([3, 4, 1, 1], 2), 'cls.bias': filled([3], 2) });
    const { log, lines } = capture();
    const model = await buildModelWithPretrained(
      device,
      {
        type: 'TinyPretrainedSeg',
        num_classes: 3,
        pretrained: modelFile,
        backbone: { type: 'TinyPretrainedBackbone', pretrained: bbFile },
      },
      log,
    );
    assert.ok(lines.includes('There are 5/5 variables loaded into TinyBackbone.'));
    assert.equal(lines.at(-1), 'There are 2/7 variables loaded into TinySeg.');
    const v = await values(model);
    assert.ok(v.get('backbone.conv.weight')?.every((x) => x === 1));
    assert.ok(v.get('cls.weight')?.every((x) => x === 2));
    model.dispose();
  });
});
