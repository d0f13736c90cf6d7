import assert from 'node:assert/strict';
import { getDevice, type Tensor, tensor } from '@segtrain/tensor';
import { describe, it } from 'vitest';
import {
  BatchNorm2d,
  Conv2d,
  ConvBNAct,
  Layer,
  Linear,
  Module,
  ModuleList,
  Rng,
  Sequential,
  seedInitializers,
} from '../src/index.js';

class Block extends Layer {
  readonly convs: ModuleList<ConvBNAct>;
  readonly fc: Linear;
  constructor(device: Awaited<ReturnType<typeof getDevice>>) {
    super(device);
    this.convs = this.addModule(
      'conv_list',
      new ModuleList(device, [
        new ConvBNAct(device, 3, 4, { kernel: 3, bias: false }),
        new ConvBNAct(device, 4, 4, { kernel: 1, bias: true }),
      ]),
    );
    this.fc = this.addModule('fc', new Linear(device, 4, 2));
  }
  forward(x: Tensor): Tensor {
    return this.convs.items.reduce((h, c) => c.forward(h), x);
  }
}

describe('Module', () => {
  it('names parameters and buffers as Paddle state dicts do, counts trainable values', async () => {
    const device = await getDevice();
    seedInitializers(1);
    const m = new Block(device);
    assert.deepEqual(
      [...m.stateDict().keys()],
      [
        'conv_list.0._conv.weight',
        'conv_list.0._batch_norm.weight',
        'conv_list.0._batch_norm.bias',
        'conv_list.0._batch_norm._mean',
        'conv_list.0._batch_norm._variance',
        'conv_list.1._conv.weight',
        'conv_list.1._conv.bias',
        'conv_list.1._batch_norm.weight',
        'conv_list.1._batch_norm.bias',
        'conv_list.1._batch_norm._mean',
        'conv_list.1._batch_norm._variance',
        'fc.weight',
        'fc.bias',
      ],
    );
    assert.equal(m.parameterCount(), 4 * 3 * 9 + 4 + 4 + (16 + 4) + 4 + 4 + (4 * 2 + 2));
    assert.deepEqual(m.fc.weight.shape, [4, 2], 'Linear stores Paddle [in, out]');
    m.eval();
    assert.equal(m.convs.items[0]?.bn.training, false);
    m.dispose();
  });

  it('a state dict round-trips and a wrong shape names the key', async () => {
    const device = await getDevice();
    const a = new Block(device);
    const b = new Block(device);
    const values = await a.stateDictValues();
    const report = b.loadStateDict(values, { strict: true });
    assert.equal(report.loaded.length, 13);
    const back = await b.stateDictValues();
    for (const [k, v] of values) assert.deepEqual(back.get(k)?.data, v.data, k);
    const bad = new Map(values);
    bad.set('fc.weight', { shape: [2, 4], data: new Float32Array(8) });
    assert.throws(
      () => b.loadStateDict(bad),
      /'fc\.weight' has shape \[2, 4\] in the state dict but \[4, 2\] in the model/,
    );
    const partial = new Map([...values].filter(([k]) => k !== 'fc.bias'));
    partial.set('extra.weight', { shape: [1], data: new Float32Array(1) });
    assert.deepEqual(b.loadStateDict(partial), {
      loaded: [...values.keys()].filter((k) => k !== 'fc.bias'),
      missing: ['fc.bias'],
      unexpected: ['extra.weight'],
    });
    assert.throws(
      () => b.loadStateDict(partial, { strict: true }),
      /1 missing key\(s\) \(fc\.bias\) and 1 unexpected key\(s\) \(extra\.weight\)/,
    );
    a.dispose();
    b.dispose();
  });

  it('initialisers are seeded and Paddle-shaped', async () => {
    const device = await getDevice();
    seedInitializers(7);
    const c1 = new Conv2d(device, 8, 16, { kernel: 3, bias: true });
    seedInitializers(7);
    const c2 = new Conv2d(device, 8, 16, { kernel: 3, bias: true });
    const [w1, w2] = [(await c1.weight.data()) as Float32Array, (await c2.weight.data()) as Float32Array];
    assert.deepEqual(w1, w2);
    const std = Math.sqrt(w1.reduce((s, v) => s + v * v, 0) / w1.length);
    assert.ok(Math.abs(std - Math.sqrt(2 / 72)) < 0.02, `std ${std}`);
    assert.deepEqual(await (c1.bias as Tensor).data(), new Float32Array(16));
    const rng = new Rng(3);
    const n = Array.from({ length: 20000 }, () => rng.normal());
    const mean = n.reduce((a, b) => a + b, 0) / n.length;
    assert.ok(Math.abs(mean) < 0.03);
    c1.dispose();
    c2.dispose();
  });

  it('Sequential chains layers and BatchNorm2d switches statistics with train/eval', async () => {
    const device = await getDevice();
    const seq = new Sequential(device, [
      new Conv2d(device, 2, 3, { kernel: 1, bias: false }),
      new BatchNorm2d(device, 3),
    ]);
    const x = tensor(
      device,
      Float32Array.from({ length: 2 * 2 * 2 * 2 }, (_, i) => i),
      [2, 2, 2, 2],
    );
    const y = seq.forward(x);
    assert.deepEqual(y.shape, [2, 3, 2, 2]);
    const train = (await y.data()) as Float32Array;
    const mean = train.reduce((a, b) => a + b, 0) / train.length;
    assert.ok(Math.abs(mean) < 1e-4, 'batch statistics normalise the output');
    seq.eval();
    const evalOut = await seq.forward(x).data();
    assert.notDeepEqual(evalOut, train);
    assert.ok(seq instanceof Module);
    seq.dispose();
  });
});
