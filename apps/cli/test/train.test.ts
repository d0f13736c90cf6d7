import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readLabel } from '@segtrain/data';
import { beforeAll, describe, it } from 'vitest';
import { demoArgs, run, tinyProject } from './helpers.js';

let dir = '';
let data = '';
let config = '';
let out = '';

describe('segtrain data demo → train → val → predict (tiny, lavapipe)', () => {
  beforeAll(async () => {
    ({ dir, data, config } = await tinyProject());
    out = join(dir, 'out');
  });

  it('data demo skips a complete dataset and names what it wrote', async () => {
    const again = await run(demoArgs(data));
    assert.equal(again.code, 0);
    assert.match(again.out, /already complete/);
    assert.equal(readdirSync(join(data, 'leftImg8bit', 'train')).length > 0, true);
  });

  it('train prints the banner, the log lines and the evaluation; val and predict use the checkpoint', async () => {
    const trained = await run([
      'train',
      '--config',
      config,
      '--iters',
      '2',
      '--batch_size',
      '2',
      '--save_interval',
      '2',
      '--log_iters',
      '1',
      '--do_eval',
      '--save_dir',
      out,
      '--seed',
      '3',
    ]);
    assert.equal(trained.code, 0, trained.err);
    assert.match(trained.out, /Environment Information/);
    assert.match(trained.out, /Config Information[\s\S]*batch_size: 2\n/);
    assert.match(trained.out, /\[TRAIN\] epoch: 1, iter: 2\/2, loss: /);
    const evalLine = /\[EVAL\] #Images: 2 mIoU: (\d\.\d{4}) Acc: (\d\.\d{4})/.exec(trained.out);
    assert.ok(evalLine, trained.out);
    assert.ok(existsSync(join(out, 'best_model', 'model.safetensors')));

    const val = await run(['val', '--config', config, '--model_path', join(out, 'iter_2')]);
    assert.equal(val.code, 0, val.err);
    // The same weights on the same images: the same numbers as the evaluation during training.
    assert.match(val.out, new RegExp(`\\[EVAL\\] #Images: 2 mIoU: ${evalLine[1]} Acc: ${evalLine[2]}`));
    assert.match(val.out, /\[EVAL\] mIoU over \d+ classes present: /);

    const flipped = await run([
      'val',
      '--config',
      config,
      '--model_path',
      join(out, 'best_model'),
      '--aug_eval',
      '--flip_horizontal',
      '--is_slide',
      '--crop_size',
      '48',
      '32',
      '--stride',
      '16',
      '16',
    ]);
    assert.equal(flipped.code, 0, flipped.err);
    assert.match(flipped.out, /\[EVAL\] #Images: 2 mIoU: /);

    const predicted = await run([
      'predict',
      '--config',
      config,
      '--model_path',
      join(out, 'best_model'),
      '--image_path',
      join(data, 'leftImg8bit', 'val'),
      '--save_dir',
      join(dir, 'pred'),
    ]);
    assert.equal(predicted.code, 0, predicted.err);
    assert.match(predicted.out, /Predicted 2 image\(s\)/);
    const city = readdirSync(join(data, 'leftImg8bit', 'val'))[0] as string;
    const image = readdirSync(join(data, 'leftImg8bit', 'val', city))[0] as string;
    const mask = await readLabel(join(dir, 'pred', 'pseudo_color_prediction', city, image));
    assert.deepEqual([mask.height, mask.width], [32, 64]);
    assert.ok(mask.data.every((v) => v < 19));
    assert.ok(existsSync(join(dir, 'pred', 'added_prediction', city, image)));

    // The same weights exported to ONNX and run on onnxruntime give the same masks.
    const exportDir = join(dir, 'exported');
    const exported = await run([
      'export',
      '--config',
      config,
      '--model_path',
      join(out, 'best_model'),
      '--save_dir',
      exportDir,
      '--input_shape',
      '1',
      '3',
      '32',
      '64',
    ]);
    assert.equal(exported.code, 0, exported.err);
    assert.match(exported.out, /Exported PPLiteSeg to .*model\.onnx .*input \[N, 3, 32, 64\], output argmax/);
    const deploy = readFileSync(join(exportDir, 'deploy.yaml'), 'utf8');
    assert.match(
      deploy,
      /^Deploy:\n {2}input_shape: \[null, 3, 32, 64\]\n {2}model: model\.onnx\n {2}output_dtype: int32\n {2}output_op: argmax\n {2}transforms:\n/,
    );
    // No --config: the transforms come from the deploy.yaml beside model.onnx.
    const viaOnnx = await run([
      'predict',
      '--model_path',
      join(exportDir, 'model.onnx'),
      '--image_path',
      join(data, 'leftImg8bit', 'val'),
      '--save_dir',
      join(dir, 'pred-onnx'),
    ]);
    assert.equal(viaOnnx.code, 0, viaOnnx.err);
    assert.match(viaOnnx.out, /Running .*model\.onnx on onnxruntime \(CPU\), input \[N, 3, 32, 64\]/);
    for (const name of readdirSync(join(data, 'leftImg8bit', 'val', city))) {
      const ours = await readLabel(join(dir, 'pred', 'pseudo_color_prediction', city, name));
      const theirs = await readLabel(join(dir, 'pred-onnx', 'pseudo_color_prediction', city, name));
      assert.deepEqual(theirs.data, ours.data, name);
    }
    const badOp = await run([
      'export',
      '--config',
      config,
      '--model_path',
      join(out, 'best_model'),
      '--output_op',
      'max',
    ]);
    assert.equal(badOp.code, 2);
    assert.match(badOp.err, /--output_op must be argmax, softmax or none, got 'max'/);
    const noModel = await run([
      'predict',
      '--config',
      config,
      '--model_path',
      join(dir, 'nope.onnx'),
      '--image_path',
      join(data, 'leftImg8bit', 'val'),
    ]);
    assert.equal(noModel.code, 1);
    assert.match(noModel.err, /model_path '.*nope\.onnx' does not exist/);
  });

  it('names the missing dataset root, the missing checkpoint and the missing image path', async () => {
    const noData = await run([
      'train',
      '--config',
      config,
      '--opts',
      `train_dataset.dataset_root=${join(dir, 'nope')}`,
    ]);
    assert.equal(noData.code, 1);
    assert.match(noData.err, /nope/);
    assert.match(noData.err, /segtrain data demo/);
    const noModel = await run(['val', '--config', config, '--model_path', join(dir, 'missing')]);
    assert.equal(noModel.code, 1);
    assert.match(noModel.err, /model_path '.*missing' does not exist/);
    const noResume = await run(['train', '--config', config, '--resume_model', join(out, 'iter_9')]);
    assert.equal(noResume.code, 1);
    assert.match(noResume.err, /resume_model '.*iter_9' does not exist/);
    const noImages = await run([
      'predict',
      '--config',
      config,
      '--model_path',
      join(out, 'best_model'),
      '--image_path',
      join(dir, 'none'),
    ]);
    assert.equal(noImages.code, 1);
    assert.match(noImages.err, /image_path '.*none' does not exist/);
    const badDevice = await run(['train', '--config', config, '--device', 'npu']);
    assert.equal(badDevice.code, 2);
    assert.match(badDevice.err, /--device npu is not supported/);
  });
});
