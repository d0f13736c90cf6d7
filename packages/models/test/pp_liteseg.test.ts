import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seedInitializers } from '@segtrain/nn';
import {
  adamUpdate,
  add as addLoss,
  argmax,
  backward,
  getDevice,
  noGrad,
  persistent,
  softmaxCrossEntropy,
  type Tensor,
  tensor,
  tidy,
} from '@segtrain/tensor';
import { buildModel, type PPLiteSeg, PPLiteSeg as PPLiteSegModel, STDCNet } from '../src/index.js';

// PP-LiteSeg-T (STDC1) narrows the head; the STDC2 config replaces the model block
// (`_inherited_: False`), so its head keeps the class defaults (arm [64, 96, 128], heads [64, 64, 64]).
const seedModel = (backbone: 'STDC1' | 'STDC2') => ({
  type: 'PPLiteSeg',
  num_classes: 19,
  backbone: { type: backbone, pretrained: null, in_channels: 3 },
  ...(backbone === 'STDC1' ? { arm_out_chs: [32, 64, 128], seg_head_inter_chs: [32, 64, 64] } : {}),
});

describe('PP-LiteSeg', () => {
  it('trainable parameter counts equal PaddleSeg layer lists (STDC1 8,141,600 / backbone 5,318,304; STDC2 12,366,464 / 9,348,768)', async () => {
    const device = await getDevice();
    for (const [backbone, total, bb] of [
      ['STDC1', 8_141_600, 5_318_304],
      ['STDC2', 12_366_464, 9_348_768],
    ] as const) {
      const model = buildModel(device, seedModel(backbone)) as PPLiteSeg;
      assert.equal(model.backbone.parameterCount(), bb, `${backbone} backbone`);
      assert.equal(model.parameterCount(), total, `PP-LiteSeg ${backbone}`);
      model.dispose();
    }
  });

  it('state-dict names follow PaddleSeg', async () => {
    const device = await getDevice();
    const model = buildModel(device, seedModel('STDC1'));
    const keys = [...model.stateDict().keys()];
    for (const key of [
      'backbone.features.0.conv.weight',
      'backbone.features.0.bn._variance',
      'backbone.features.2.conv_list.0.conv.weight',
      'backbone.features.2.avd_layer.0.weight',
      'backbone.features.2.avd_layer.1._mean',
      'ppseg_head.cm.stages.0.1._conv.weight',
      'ppseg_head.cm.stages.2.1._conv.bias',
      'ppseg_head.cm.conv_out._conv.bias',
      'ppseg_head.arm_list.0.conv_x._conv.weight',
      'ppseg_head.arm_list.2.conv_xy_atten.1._batch_norm.weight',
      'ppseg_head.arm_list.1._scale',
      'seg_heads.0.conv._conv.weight',
      'seg_heads.2.conv_out.weight',
    ])
      assert.ok(keys.includes(key), `missing ${key}`);
    assert.equal(keys.includes('seg_heads.0.conv._conv.bias'), false, 'seg head convs are bias-free');
    assert.equal(
      keys.includes('backbone.features.3.avd_layer.0.weight'),
      false,
      'stride-1 blocks have no avd layer',
    );
    model.dispose();
  });

  it('three logits at input size in training, one in eval', async () => {
    const device = await getDevice();
    const model = buildModel(device, seedModel('STDC1'));
    const x = tensor(
      device,
      new Float32Array(1 * 3 * 64 * 96).map((_, i) => Math.sin(i)),
      [1, 3, 64, 96],
    );
    const train = model.forward(x);
    assert.deepEqual(
      train.map((t) => t.shape),
      [
        [1, 19, 64, 96],
        [1, 19, 64, 96],
        [1, 19, 64, 96],
      ],
    );
    model.eval();
    const evalOut = model.forward(x);
    assert.equal(evalOut.length, 1);
    assert.deepEqual(evalOut[0]?.shape, [1, 19, 64, 96]);
    const values = await evalOut[0]?.data();
    assert.ok(values?.every(Number.isFinite));
    model.dispose();
  });
});

/** Σ CE over every head's logits: the loss a gradient check and an overfit run can share. */
function totalLoss(model: PPLiteSegModel, x: Tensor, y: Tensor): Tensor {
  const logits = model.forward(x);
  return logits
    .slice(1)
    .reduce(
      (acc, l) => addLoss(acc, softmaxCrossEntropy(l, y, {})),
      softmaxCrossEntropy(logits[0] as Tensor, y, {}),
    );
}

/** A fixed batch: big class blocks (so the 1/8 head can resolve them), coloured per class, plus noise. */
function blockBatch(n: number, h: number, w: number, classes: number) {
  const labels = new Int32Array(n * h * w);
  const image = new Float32Array(n * 3 * h * w);
  let s = 12345;
  const noise = () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return (s / 4294967296 - 0.5) * 0.8;
  };
  for (let b = 0; b < n; b++)
    for (let yy = 0; yy < h; yy++)
      for (let xx = 0; xx < w; xx++) {
        const cls = (Math.floor(yy / 16) * 3 + Math.floor(xx / 32) + b) % classes;
        labels[(b * h + yy) * w + xx] = cls;
        for (let c = 0; c < 3; c++)
          image[((b * 3 + c) * h + yy) * w + xx] = Math.cos(cls * 1.7 + c * 2.1) + noise();
      }
  return { labels, image };
}

describe('PP-LiteSeg training', () => {
  // Eval mode (BN on running statistics): in training, the SPPM's 1×1 bins normalise two values per
  // channel, which makes the loss too ill-conditioned for float32 finite differences.
  it('whole-model gradients of a tiny-width variant match finite differences (eval mode)', async () => {
    const device = await getDevice();
    seedInitializers(3);
    const model = new PPLiteSegModel(device, new STDCNet(device, [1, 1, 1], { base: 8, init: 'he' }), {
      numClasses: 3,
      armOutChs: [4, 8, 8],
      segHeadInterChs: [4, 4, 4],
      cmOutCh: 8,
    });
    const { labels, image } = blockBatch(2, 32, 32, 3);
    const x = tensor(device, image, [2, 3, 32, 32]);
    const y = tensor(device, labels, [2, 32, 32], 'i32');
    model.eval();
    const named = new Map(model.namedParameters());
    const checks = [
      'backbone.features.0.conv.weight',
      'backbone.features.2.conv_list.1.conv.weight',
      'backbone.features.4.avd_layer.0.weight',
      'ppseg_head.cm.stages.1.1._conv.bias',
      'ppseg_head.arm_list.0.conv_xy_atten.0._conv.weight',
      'ppseg_head.arm_list.2.conv_out._batch_norm.weight',
      'seg_heads.0.conv_out.weight',
    ];
    tidy(() => backward(totalLoss(model, x, y)));
    for (const name of checks) {
      const p = named.get(name) as Tensor;
      const analytic = (await (p.grad as Tensor).data()) as Float32Array;
      const values = (await p.data()) as Float32Array;
      const eps = 3e-3;
      for (const k of [0, Math.floor(p.size / 2), p.size - 1]) {
        const at = async (v: number) => {
          const copy = Float32Array.from(values);
          copy[k] = v;
          device.write(p.buffer, copy);
          const loss = noGrad(() => tidy(() => totalLoss(model, x, y)));
          const r = await loss.item();
          loss.dispose();
          return r;
        };
        const numeric = ((await at((values[k] ?? 0) + eps)) - (await at((values[k] ?? 0) - eps))) / (2 * eps);
        device.write(p.buffer, values);
        const a = analytic[k] ?? 0;
        assert.ok(
          Math.abs(a - numeric) <= 0.05 * Math.max(Math.abs(numeric), Math.abs(a)) + 2e-3,
          `${name}[${k}]: analytic ${a}, numeric ${numeric}`,
        );
      }
    }
    model.dispose();
  });

  it('PP-LiteSeg-T overfits one 64×128 batch to ≥ 0.95 pixel accuracy (eval mode)', async () => {
    const device = await getDevice();
    seedInitializers(5);
    const model = buildModel(device, {
      ...seedModel('STDC1'),
      num_classes: 6,
      backbone: { type: 'STDC1', init: 'he' },
    }) as PPLiteSegModel;
    const { labels, image } = blockBatch(2, 64, 128, 6);
    const x = tensor(device, image, [2, 3, 64, 128]);
    const y = tensor(device, labels, [2, 64, 128], 'i32');
    const params = model.parameters();
    const moments = params.map(
      (p) =>
        [
          persistent(device, new Float32Array(p.size), p.shape),
          persistent(device, new Float32Array(p.size), p.shape),
        ] as const,
    );
    const opts = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, decoupled: true };
    for (let step = 1; step <= 120; step++) {
      tidy(() => {
        backward(totalLoss(model, x, y));
        params.forEach((p, i) => {
          const [m, v] = moments[i] as readonly [Tensor, Tensor];
          adamUpdate(device, p, p.grad as Tensor, m, v, 2e-3, step, opts);
          p.grad?.dispose();
          p.grad = null;
        });
      });
      if (step % 20 === 0) await device.sync();
    }
    model.eval();
    const predicted = (await noGrad(() =>
      tidy(() => argmax(model.forward(x)[0] as Tensor, 1)),
    ).data()) as Int32Array;
    let correct = 0;
    for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
    const accuracy = correct / labels.length;
    assert.ok(accuracy >= 0.95, `pixel accuracy ${accuracy.toFixed(4)}`);
    model.dispose();
  });
});
