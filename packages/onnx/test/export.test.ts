import assert from 'node:assert/strict';
import {
  HRNet,
  MixVisionTransformer,
  OCRNet,
  PPLiteSeg,
  SegFormer,
  type SegModel,
  STDCNet,
} from '@segtrain/models';
import { seedInitializers } from '@segtrain/nn';
import {
  type Device,
  getDevice,
  liveTensorCount,
  noGrad,
  type Tensor,
  tensor,
  tidy,
  where,
} from '@segtrain/tensor';
import { rand } from '@segtrain/tensor/testing';
import onnxProto from 'onnx-proto';
import { describe, it } from 'vitest';
import { exportOnnx, OnnxExportError, openOnnx } from '../src/index.js';

/** Random weights and BatchNorm statistics, so folding and every parameter matter. */
async function randomize(model: SegModel, seed: number): Promise<void> {
  let k = seed;
  for (const [name, t] of model.stateDict()) {
    const values = rand(t.size, k++, -0.5, 0.5);
    const data = name.endsWith('_variance')
      ? Float32Array.from(values, (v) => 0.5 + Math.abs(v))
      : name.endsWith('.weight') && t.rank === 1
        ? Float32Array.from(values, (v) => 1 + v)
        : Float32Array.from(values);
    t.device.write(t.buffer, data);
  }
}

const MODELS: Record<string, (device: Device) => SegModel> = {
  'PP-LiteSeg (tiny STDC)': (device) =>
    new PPLiteSeg(device, new STDCNet(device, [1, 1, 1], { base: 8, init: 'he' }), {
      numClasses: 3,
      armOutChs: [4, 8, 8],
      segHeadInterChs: [4, 4, 4],
      cmOutCh: 8,
    }),
  'SegFormer (tiny MiT)': (device) =>
    new SegFormer(
      device,
      new MixVisionTransformer(device, {
        embedDims: [8, 8, 16, 16],
        numHeads: [1, 2, 2, 4],
        depths: [1, 2, 1, 1],
        srRatios: [2, 2, 1, 1],
        mlpRatios: [2, 2, 2, 2],
        qkvBias: true,
        dropPathRate: 0.3,
      }),
      { numClasses: 3, embeddingDim: 8 },
    ),
  'OCRNet (tiny HRNet)': (device) =>
    new OCRNet(
      device,
      new HRNet(device, {
        stemChannels: 8,
        stage1: { numBlocks: 1, numChannels: 4 },
        stage2: { numModules: 1, numBlocks: [1, 1], numChannels: [4, 8] },
        stage3: { numModules: 1, numBlocks: [1, 1, 1], numChannels: [4, 8, 12] },
        stage4: { numModules: 1, numBlocks: [1, 1, 1, 1], numChannels: [4, 8, 12, 16] },
      }),
      { numClasses: 3, ocrMidChannels: 8, ocrKeyChannels: 4 },
    ),
};

describe('ONNX export, run by onnxruntime (CPU), against our eval-mode forward', () => {
  for (const [name, make] of Object.entries(MODELS))
    it(`${name}: logits within 1e-4, argmax and softmax outputs`, async () => {
      const device = await getDevice();
      seedInitializers(5);
      const model = make(device);
      await randomize(model, 11);
      model.eval();
      const shape = [2, 3, 64, 128] as const;
      const xs = Float32Array.from(
        rand(
          shape.reduce((a, b) => a * b, 1),
          3,
        ),
      );
      const x = tensor(device, xs, shape);
      const ours = (await tidy(() => noGrad(() => (model.forward(x) as [Tensor])[0]))).keep();
      const want = (await ours.data()) as Float32Array;
      try {
        // Traced at batch 1, run at batch 2: the batch dimension is dynamic.
        const session = await openOnnx(
          (await exportOnnx(model, { inputShape: [1, 3, 64, 128], outputOp: 'none' })).bytes,
        );
        assert.deepEqual(session.inputShape, [-1, 3, 64, 128]);
        const got = await session.run(xs, shape);
        assert.deepEqual(got.shape, [...ours.shape]);
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        let worst = 0;
        for (let i = 0; i < want.length; i++)
          worst = Math.max(worst, Math.abs((got.data[i] ?? 0) - (want[i] ?? 0)));
        assert.ok(worst <= 1e-4 * scale, `max |ONNX − segtrain| = ${worst} (max |logit| ${scale})`);
        await session.close();

        const argmax = await openOnnx(
          (await exportOnnx(model, { inputShape: shape, staticBatch: true })).bytes,
        );
        assert.deepEqual(argmax.inputShape, [2, 3, 64, 128]);
        const ids = await argmax.run(xs, shape);
        assert.ok(ids.data instanceof Int32Array);
        assert.deepEqual(ids.shape, [2, 64, 128]);
        await argmax.close();
      } finally {
        ours.dispose();
        x.dispose();
        model.dispose();
      }
    });

  it('writes standard ops only, with BatchNorm folded into the convolutions', async () => {
    const device = await getDevice();
    const model = MODELS['PP-LiteSeg (tiny STDC)']?.(device) as SegModel;
    const live = liveTensorCount();
    const { bytes, dynamicBatch } = await exportOnnx(model, {
      inputShape: [1, 3, 64, 64],
      outputOp: 'softmax',
    });
    assert.equal(liveTensorCount(), live, 'both traces free their activations');
    assert.ok(dynamicBatch);
    model.dispose();
    const proto = onnxProto.onnx.ModelProto.decode(bytes);
    const types = new Set(proto.graph?.node?.map((n) => n.opType));
    assert.ok(!types.has('BatchNormalization'), 'every BN follows a conv and is folded');
    assert.ok(types.has('Conv') && types.has('Resize') && types.has('Softmax'));
    assert.equal(Number(proto.opsetImport?.[0]?.version), 17);
  });

  it('an op without an ONNX mapping is an error naming it', async () => {
    const device = await getDevice();
    const model = {
      device,
      eval: () => {},
      stateDict: () => new Map<string, Tensor>(),
      forward: (x: Tensor) => [where(x, x, x)],
    };
    await assert.rejects(
      exportOnnx(model, { inputShape: [1, 3, 4, 4] }),
      (e: unknown) => e instanceof OnnxExportError && /the op 'where' has no ONNX export yet/.test(e.message),
    );
  });
});
