import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Device, getDevice, tensor } from '@segtrain/tensor';
import { describe, it, onTestFinished } from 'vitest';
import { loadModule, loadStateFile, saveModule, saveStateFile } from '../src/checkpoint.js';
import { BatchNorm2d, Conv2d } from '../src/layers.js';
import { Module } from '../src/module.js';
import { createOptimizer } from '../src/optimizer.js';
import { readSafetensors } from '../src/safetensors.js';

class Small extends Module {
  constructor(device: Device, mid = 4) {
    super(device);
    this.addModule('conv1', new Conv2d(device, 3, mid, { kernel: 3, bias: false }));
    this.addModule('bn1', new BatchNorm2d(device, mid));
    this.addModule('conv2', new Conv2d(device, mid, 2, { kernel: 1, bias: true }));
    this.addModule('bn2', new BatchNorm2d(device, 2));
  }
}

const bits = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

describe('checkpoint', () => {
  it('round-trips a module bit-exactly through safetensors', async () => {
    const device = await getDevice();
    const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const a = new Small(device);
    // Odd values in every entry, BN statistics included: NaN payload, −0, subnormal.
    for (const [name, tensor] of a.stateDict()) {
      const v = Float32Array.from({ length: tensor.size }, (_, k) =>
        Math.fround(Math.sin(name.length * 31 + k) * 3),
      );
      const u = new Uint32Array(v.buffer);
      u[0] = 0x7fc01234;
      if (v.length > 2) {
        u[1] = 0x80000000;
        u[2] = 0x00000003;
      }
      device.write(tensor.buffer, v);
    }
    const path = join(dir, 'model.safetensors');
    await saveModule(a, path, { iter: '1000' });
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
    const file = await readSafetensors(path);
    assert.deepEqual(
      [...file.tensors.keys()],
      [
        'conv1.weight',
        'bn1.weight',
        'bn1.bias',
        'bn1._mean',
        'bn1._variance',
        'conv2.weight',
        'conv2.bias',
        'bn2.weight',
        'bn2.bias',
        'bn2._mean',
        'bn2._variance',
      ],
    );

    const b = new Small(device);
    const report = await loadModule(b, path, { strict: true });
    assert.deepEqual(report.metadata, { iter: '1000' });
    assert.equal(report.loaded.length, 11);
    const want = await a.stateDictValues();
    for (const [name, v] of await b.stateDictValues()) {
      const w = want.get(name);
      assert.ok(w, name);
      assert.deepEqual(v.shape, w.shape, name);
      assert.deepEqual(bits(v.data), bits(w.data), name);
    }
    a.dispose();
    b.dispose();
  });

  it('names the key on a shape mismatch, and reports missing/unexpected keys', async () => {
    const device = await getDevice();
    const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'model.safetensors');
    const a = new Small(device, 4);
    await saveModule(a, path);
    const wider = new Small(device, 5);
    await assert.rejects(
      loadModule(wider, path),
      /'conv1\.weight' has shape \[4, 3, 3, 3\] in the state dict but \[5, 3, 3, 3\]/,
    );

    class Bigger extends Small {
      constructor(device: Device) {
        super(device);
        this.addModule('extra', new BatchNorm2d(device, 2));
      }
    }
    const big = new Bigger(device);
    await assert.rejects(loadModule(big, path, { strict: true }), /4 missing key\(s\) \(extra\.weight/);
    const report = await loadModule(big, path);
    assert.deepEqual(report.missing, ['extra.weight', 'extra.bias', 'extra._mean', 'extra._variance']);
    assert.deepEqual(report.unexpected, []);
    for (const m of [a, wider, big]) m.dispose();
  });

  it('saves and restores optimizer state through a state file', async () => {
    const device = await getDevice();
    const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const m = new Small(device);
    const opt = createOptimizer(m.namedParameters(), { type: 'SGD', momentum: 0.9, weight_decay: 4e-5 });
    for (const p of m.parameters()) p.grad = tensor(device, new Array(p.size).fill(0.5), p.shape);
    opt.step(0.01);
    opt.zeroGrad();
    const state = await opt.stateValues();
    const path = join(dir, 'model.pdopt.safetensors');
    await saveStateFile(path, state, { iter: '1' });
    const { values, metadata } = await loadStateFile(path);
    assert.deepEqual(metadata, { iter: '1' });
    assert.deepEqual([...values.keys()], [...state.keys()]);
    const opt2 = createOptimizer(m.namedParameters(), { type: 'SGD', momentum: 0.9, weight_decay: 4e-5 });
    opt2.loadStateValues(values);
    assert.deepEqual(await opt2.stateValues(), state);
    opt.dispose();
    opt2.dispose();
    m.dispose();
  });
});
