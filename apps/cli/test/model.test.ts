import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@segtrain/config';
import { buildModel, type ComponentConfig } from '@segtrain/models';
import { readSafetensors, saveStateFile, writeSafetensors } from '@segtrain/nn';
import { getDevice } from '@segtrain/tensor';
import { paddlesegConfig } from '@segtrain/tensor/testing';
import { beforeAll, describe, it } from 'vitest';
import { PP_LITESEG, run } from './helpers.js';

describe('segtrain model summary', () => {
  it('prints the layer tree, the exact trainable parameter count and MACs per top-level block', async () => {
    const r = await run(['model', 'summary', '--config', PP_LITESEG, '--input', '1x3x64x128']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^PPLiteSeg \(8141600\)$/m);
    assert.match(r.out, /^ {2}backbone: STDCNet \(5318304\)$/m);
    assert.match(r.out, /^Trainable parameters: 8141600$/m);
    assert.match(r.out, /Multiply-adds for input 1x3x64x128 .*attention are not counted/);
    const macs = new Map<string, number>();
    for (const m of r.out.matchAll(/^ {2}(\w+) +(\d+) {2}\(/gm)) macs.set(m[1] as string, Number(m[2]));
    assert.deepEqual([...macs.keys()], ['backbone', 'ppseg_head', 'seg_heads', 'total']);
    assert.ok((macs.get('backbone') ?? 0) > 0);
    assert.equal(
      macs.get('total'),
      (macs.get('backbone') ?? 0) + (macs.get('ppseg_head') ?? 0) + (macs.get('seg_heads') ?? 0),
    );
    // The stem conv alone: 32 out × 32×64 output × 3 in × 3×3 kernel.
    assert.ok((macs.get('backbone') ?? 0) > 32 * 32 * 64 * 27);
  });

  it('rejects a malformed --input and a missing --config', async () => {
    const bad = await run(['model', 'summary', '--config', PP_LITESEG, '--input', '3x64x64']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--input expects NxCxHxW/);
    const none = await run(['model', 'summary']);
    assert.equal(none.code, 2);
    assert.match(none.err, /^segtrain model summary: required option '--config' not specified/);
    const sub = await run(['model', 'frobnicate']);
    assert.equal(sub.code, 2);
    assert.match(sub.err, /^segtrain model: unknown command 'frobnicate'/);
  });
});

describe('segtrain model run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'segtrain-model-'));
  const config = join(dir, 'tiny.yml');
  const weights = join(dir, 'weights.safetensors');
  const input = join(dir, 'x.safetensors');
  const label = join(dir, 'y.safetensors');
  const H = 64;
  const W = 64;
  let paramShape: number[] = [];

  beforeAll(async () => {
    writeFileSync(
      config,
      `_base_: ${JSON.stringify(PP_LITESEG)}\nloss:\n  types:\n    - type: CrossEntropyLoss\n  coef: [1, 0.5, 0.25]\n`,
    );
    const device = await getDevice();
    const model = buildModel(device, loadConfig(config).model as unknown as ComponentConfig);
    const state = await model.stateDictValues();
    paramShape = [...(state.get('backbone.features.0.conv.weight')?.shape ?? [])];
    await saveStateFile(weights, state);
    model.dispose();
    const x = new Float32Array(3 * H * W);
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 1.5;
    const y = new Int32Array(H * W);
    for (let i = 0; i < y.length; i++) y[i] = i % 97 === 0 ? 255 : (i * 7) % 19;
    await writeSafetensors(input, new Map([['x', { dtype: 'F32', shape: [1, 3, H, W], data: x }]]));
    await writeSafetensors(label, new Map([['y', { dtype: 'I32', shape: [1, H, W], data: y }]]));
  });

  it('train mode with a label writes every logit, the configured loss and every parameter gradient', async () => {
    const out = join(dir, 'train.safetensors');
    const r = await run([
      'model',
      'run',
      '--config',
      config,
      '--weights',
      weights,
      '--input',
      input,
      '--label',
      label,
      '--mode',
      'train',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    const { tensors } = await readSafetensors(out);
    for (const k of ['logits.0', 'logits.1', 'logits.2'])
      assert.deepEqual(tensors.get(k)?.shape, [1, 19, H, W], k);
    assert.equal(tensors.has('logits.3'), false);
    const loss = tensors.get('loss');
    assert.ok(loss, 'loss written');
    assert.equal(loss.data.length, 1);
    assert.ok(Number.isFinite(loss.data[0]) && (loss.data[0] as number) > 0, `loss ${loss.data[0]}`);
    const grad = tensors.get('grad.backbone.features.0.conv.weight');
    assert.ok(grad, 'grad of the stem conv written');
    assert.deepEqual(grad.shape, paramShape);
    assert.ok(grad.data.every(Number.isFinite));
    assert.ok(grad.data.some((v) => v !== 0));
    assert.ok(tensors.has('grad.seg_heads.2.conv_out.weight'));
    assert.equal(
      [...tensors.keys()].some((k) => k.startsWith('grad.') && k.endsWith('._mean')),
      false,
    );
  });

  it('eval mode without a label writes only the main logit', async () => {
    const out = join(dir, 'eval.safetensors');
    const r = await run([
      'model',
      'run',
      '--config',
      config,
      '--weights',
      weights,
      '--input',
      input,
      '--mode',
      'eval',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    const { tensors } = await readSafetensors(out);
    assert.deepEqual([...tensors.keys()], ['logits.0']);
    assert.deepEqual(tensors.get('logits.0')?.shape, [1, 19, H, W]);
  });

  it('a missing file, a missing x and a wrong shape name the file and tensor and exit 1', async () => {
    const out = join(dir, 'never.safetensors');
    const base = ['model', 'run', '--config', config, '--weights', weights, '--out', out];
    const missing = join(dir, 'nope.safetensors');
    const r1 = await run([...base, '--input', missing]);
    assert.equal(r1.code, 1);
    assert.ok(r1.err.includes(missing), r1.err);

    const noX = join(dir, 'nox.safetensors');
    await writeSafetensors(noX, new Map([['z', { dtype: 'F32', shape: [1], data: [0] }]]));
    const r2 = await run([...base, '--input', noX]);
    assert.equal(r2.code, 1);
    assert.ok(r2.err.includes(noX) && r2.err.includes("'x'"), r2.err);

    const flat = join(dir, 'flat.safetensors');
    await writeSafetensors(
      flat,
      new Map([['x', { dtype: 'F32', shape: [3, H, W], data: new Float32Array(3 * H * W) }]]),
    );
    const r3 = await run([...base, '--input', flat]);
    assert.equal(r3.code, 1);
    assert.ok(r3.err.includes(flat) && r3.err.includes("'x'") && r3.err.includes('[3, 64, 64]'), r3.err);

    const badY = join(dir, 'bady.safetensors');
    await writeSafetensors(
      badY,
      new Map([['y', { dtype: 'I32', shape: [1, H, 32], data: new Int32Array(H * 32) }]]),
    );
    const r4 = await run([...base, '--input', input, '--label', badY]);
    assert.equal(r4.code, 1);
    assert.ok(r4.err.includes(badY) && r4.err.includes("'y'"), r4.err);

    const missingW = join(dir, 'nope-weights.safetensors');
    const r5 = await run([
      'model',
      'run',
      '--config',
      config,
      '--weights',
      missingW,
      '--input',
      input,
      '--out',
      out,
    ]);
    assert.equal(r5.code, 1);
    assert.ok(r5.err.includes(missingW), r5.err);
  });
});

describe('segtrain model run: dropout and drop-path are off in train mode', () => {
  it('two train-mode runs of SegFormer-B0 (drop_path 0.1, head dropout 0.1) give identical logits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segtrain-model-'));
    const config = paddlesegConfig('segformer/segformer_b0_cityscapes_1024x1024_160k.yml');
    const weights = join(dir, 'weights.safetensors');
    const input = join(dir, 'x.safetensors');
    const device = await getDevice();
    const model = buildModel(device, loadConfig(config).model as unknown as ComponentConfig);
    await saveStateFile(weights, await model.stateDictValues());
    model.dispose();
    const x = new Float32Array(3 * 32 * 32);
    for (let i = 0; i < x.length; i++) x[i] = Math.cos(i * 0.11);
    await writeSafetensors(input, new Map([['x', { dtype: 'F32', shape: [1, 3, 32, 32], data: x }]]));
    const outs: Float32Array[] = [];
    for (const name of ['a', 'b']) {
      const out = join(dir, `${name}.safetensors`);
      const args = ['--config', config, '--weights', weights, '--input', input, '--out', out];
      const r = await run(['model', 'run', ...args, '--mode', 'train']);
      assert.equal(r.code, 0, r.err);
      const logits = (await readSafetensors(out)).tensors.get('logits.0');
      assert.deepEqual(logits?.shape, [1, 19, 32, 32]);
      outs.push(logits?.data as Float32Array);
    }
    assert.deepEqual(outs[0], outs[1]);
  });
});
