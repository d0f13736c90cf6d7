import assert from 'node:assert/strict';
import {
  add,
  backward,
  type Device,
  getDevice,
  manualSeed,
  mul,
  noGrad,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '@segtrain/tensor';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { buildModel, type ComponentConfig, HRNet, OCRNet } from '../src/index.js';
import { rand } from './fixtures.js';

function ocrnetConfig(backbone: string, numClasses = 19): ComponentConfig {
  return {
    type: 'OCRNet',
    num_classes: numClasses,
    backbone_indices: [0],
    ocr_mid_channels: 512,
    ocr_key_channels: 256,
    align_corners: false,
    pretrained: null,
    backbone: {
      type: backbone,
      pretrained: null,
      in_channels: 3,
      has_se: false,
      align_corners: false,
      padding_same: true,
    },
  };
}

/** A tiny OCRNet (same structure, small widths, one block per branch, one module per stage). */
function tinyOcrnet(device: Device, numClasses: number): OCRNet {
  const backbone = new HRNet(device, {
    stemChannels: 8,
    stage1: { numBlocks: 1, numChannels: 4 },
    stage2: { numModules: 1, numBlocks: [1, 1], numChannels: [4, 8] },
    stage3: { numModules: 1, numBlocks: [1, 1, 1], numChannels: [4, 8, 12] },
    stage4: { numModules: 1, numBlocks: [1, 1, 1, 1], numChannels: [4, 8, 12, 16] },
  });
  return new OCRNet(device, backbone, { numClasses, ocrMidChannels: 8, ocrKeyChannels: 4 });
}

describe('OCRNet + HRNet', () => {
  let device: Device;
  let w18: OCRNet;
  beforeAll(async () => {
    device = await getDevice();
    w18 = buildModel(device, ocrnetConfig('HRNet_W18')) as OCRNet;
  });
  afterAll(() => w18?.dispose());

  it('trainable parameter counts (19 classes): W18 12,083,122 (backbone 9,562,260); W48 reported', () => {
    assert.equal(w18.backbone.parameterCount(), 9_562_260);
    assert.equal(w18.parameterCount(), 12_083_122);
    assert.deepEqual(w18.backbone.featChannels, [270]);
    // A whole state dict (with BN _mean/_variance) holds 12,123,230 numbers (spec j).
    let total = 0;
    for (const [, t] of w18.stateDict()) total += t.size;
    assert.equal(total, 12_123_230);

    const w48 = buildModel(device, ocrnetConfig('HRNet_W48'));
    try {
      const backbone = (w48 as OCRNet).backbone;
      assert.deepEqual(backbone.featChannels, [720]);
      // Closed form, computed independently of the module tree (see the report): backbone 65,325,120.
      assert.equal(backbone.parameterCount(), 65_325_120);
      assert.equal(w48.parameterCount(), 70_374_982);
      console.log(
        `HRNet_W48: OCRNet ${w48.parameterCount()} trainable, backbone ${backbone.parameterCount()}`,
      );
    } finally {
      w48.dispose();
    }
  });

  it('state-dict names follow PaddleSeg (1-based indices) with Paddle shapes', () => {
    const sd = w18.stateDict();
    const shape = (k: string) => {
      const t = sd.get(k);
      assert.ok(t, `missing state-dict key ${k}`);
      return [...t.shape];
    };
    const b = 'backbone.';
    assert.deepEqual(shape(`${b}conv_layer1_1._conv.weight`), [64, 3, 3, 3]);
    assert.deepEqual(shape(`${b}conv_layer1_2._conv.weight`), [64, 64, 3, 3]);
    assert.deepEqual(shape(`${b}conv_layer1_1._batch_norm._mean`), [64]);
    assert.deepEqual(shape(`${b}conv_layer1_1._batch_norm._variance`), [64]);
    assert.ok(!sd.has(`${b}conv_layer1_1._conv.bias`), 'HRNet convs are bias-free');
    assert.deepEqual(shape(`${b}la1.bb_layer2_1.conv1._conv.weight`), [64, 64, 1, 1]);
    assert.deepEqual(shape(`${b}la1.bb_layer2_1.conv_down._conv.weight`), [256, 64, 1, 1]);
    assert.deepEqual(shape(`${b}la1.bb_layer2_4.conv3._conv.weight`), [256, 64, 1, 1]);
    assert.ok(!sd.has(`${b}la1.bb_layer2_2.conv_down._conv.weight`));
    assert.ok(![...sd.keys()].some((k) => k.includes('bb_layer2_0') || k.includes('bb_layer2_5')));
    assert.deepEqual(shape(`${b}tr1.transition_tr1_layer_1._conv.weight`), [18, 256, 3, 3]);
    assert.deepEqual(shape(`${b}tr1.transition_tr1_layer_2._conv.weight`), [36, 256, 3, 3]);
    assert.ok(![...sd.keys()].some((k) => k.startsWith(`${b}tr2.transition_tr2_layer_1.`)));
    assert.deepEqual(shape(`${b}tr2.transition_tr2_layer_3._conv.weight`), [72, 36, 3, 3]);
    assert.deepEqual(shape(`${b}tr3.transition_tr3_layer_4._conv.weight`), [144, 72, 3, 3]);
    assert.deepEqual(
      shape(`${b}st2.stage_st2_1.branches_func.bb_st2_1_branch_layer_1_1.conv1._conv.weight`),
      [18, 18, 3, 3],
    );
    assert.deepEqual(
      shape(`${b}st3.stage_st3_4.branches_func.bb_st3_4_branch_layer_3_4.conv2._batch_norm.weight`),
      [72],
    );
    assert.deepEqual(
      shape(`${b}st2.stage_st2_1.fuse_func.residual_st2_1_layer_1_2._conv.weight`),
      [18, 36, 1, 1],
    );
    assert.deepEqual(
      shape(`${b}st2.stage_st2_1.fuse_func.residual_st2_1_layer_2_1_1._conv.weight`),
      [36, 18, 3, 3],
    );
    assert.deepEqual(
      shape(`${b}st4.stage_st4_3.fuse_func.residual_st4_3_layer_4_1_1._conv.weight`),
      [18, 18, 3, 3],
    );
    assert.deepEqual(
      shape(`${b}st4.stage_st4_3.fuse_func.residual_st4_3_layer_4_1_3._conv.weight`),
      [144, 18, 3, 3],
    );
    assert.deepEqual(
      shape(`${b}st4.stage_st4_3.fuse_func.residual_st4_3_layer_3_2_1._conv.weight`),
      [72, 36, 3, 3],
    );
    assert.deepEqual(
      shape(`${b}st4.stage_st4_3.fuse_func.residual_st4_3_layer_4_2_1._conv.weight`),
      [36, 36, 3, 3],
    );
    assert.deepEqual(
      shape(`${b}st4.stage_st4_3.fuse_func.residual_st4_3_layer_4_2_2._conv.weight`),
      [144, 36, 3, 3],
    );
    assert.deepEqual(
      shape(`${b}st4.stage_st4_3.fuse_func.residual_st4_3_layer_1_4._conv.weight`),
      [18, 144, 1, 1],
    );
    assert.ok(![...sd.keys()].some((k) => /stage_st4_4|stage_st3_5|stage_st2_2|_0[._]/.test(k)));
    assert.ok(![...sd.keys()].some((k) => k.startsWith('backbone.') && k.endsWith('_conv.bias')));

    const h = 'head.';
    assert.deepEqual(shape(`${h}conv3x3_ocr._conv.weight`), [512, 270, 3, 3]);
    assert.deepEqual(shape(`${h}conv3x3_ocr._conv.bias`), [512]);
    assert.deepEqual(shape(`${h}aux_head.0._conv.weight`), [270, 270, 1, 1]);
    assert.deepEqual(shape(`${h}aux_head.0._conv.bias`), [270]);
    assert.deepEqual(shape(`${h}aux_head.1.weight`), [19, 270, 1, 1]);
    assert.deepEqual(shape(`${h}aux_head.1.bias`), [19]);
    const att = `${h}spatial_ocr.attention_block.`;
    assert.deepEqual(shape(`${att}f_pixel.0._conv.weight`), [256, 512, 1, 1]);
    assert.deepEqual(shape(`${att}f_pixel.1._conv.weight`), [256, 256, 1, 1]);
    assert.deepEqual(shape(`${att}f_object.0._conv.bias`), [256]);
    assert.deepEqual(shape(`${att}f_object.1._batch_norm._variance`), [256]);
    assert.deepEqual(shape(`${att}f_down._conv.weight`), [256, 512, 1, 1]);
    assert.deepEqual(shape(`${att}f_up._conv.weight`), [512, 256, 1, 1]);
    assert.deepEqual(shape(`${h}spatial_ocr.conv1x1.0._conv.weight`), [512, 1024, 1, 1]);
    assert.deepEqual(shape(`${h}cls_head.weight`), [19, 512, 1, 1]);
    assert.deepEqual(shape(`${h}cls_head.bias`), [19]);
    assert.ok(![...sd.keys()].some((k) => k.includes('spatial_gather') || k.includes('conv1x1.1')));
  });

  it('init: HRNet and head conv weights normal(0, 0.001), biases 0, BN 1/0', async () => {
    const sd = w18.stateDict();
    for (const key of [
      'backbone.st3.stage_st3_2.branches_func.bb_st3_2_branch_layer_1_1.conv1._conv.weight',
      'head.spatial_ocr.conv1x1.0._conv.weight',
    ]) {
      const v = (await (sd.get(key) as Tensor).data()) as Float32Array;
      let s = 0;
      let s2 = 0;
      for (const x of v) {
        s += x;
        s2 += x * x;
      }
      const mean = s / v.length;
      const std = Math.sqrt(s2 / v.length - mean * mean);
      assert.ok(Math.abs(mean) < 1e-4 && Math.abs(std - 0.001) < 1e-4, `${key}: mean ${mean}, std ${std}`);
    }
    const bias = (await (sd.get('head.cls_head.bias') as Tensor).data()) as Float32Array;
    assert.ok(bias.every((x) => x === 0));
    const bnW = (await (sd.get('head.conv3x3_ocr._batch_norm.weight') as Tensor).data()) as Float32Array;
    assert.ok(bnW.every((x) => x === 1));
  });

  it('W18 on 1×3×64×64: train → [main, aux], eval → [main], logits at the input size', async () => {
    const x = tensor(device, rand(3 * 64 * 64, 5), [1, 3, 64, 64]);
    try {
      w18.train();
      const trainShapes = noGrad(() =>
        tidy(() => {
          const outs = w18.forward(x);
          const shapes = outs.map((o) => [...o.shape]);
          return shapes.map((s) => s.join('x'));
        }),
      );
      assert.deepEqual(trainShapes, ['1x19x64x64', '1x19x64x64']);
      w18.eval();
      const [main] = noGrad(() => tidy(() => w18.forward(x)));
      assert.ok(main);
      assert.deepEqual([...main.shape], [1, 19, 64, 64]);
      const values = (await main.data()) as Float32Array;
      assert.ok(values.every(Number.isFinite));
      main.dispose();
      const evalCount = noGrad(() => tidy(() => w18.forward(x).length));
      assert.equal(evalCount, 1);
    } finally {
      w18.train();
      x.dispose();
    }
  });

  it('tiny OCRNet: train-mode gradients match central finite differences of the float32 forward', async () => {
    const K = 3;
    const model = tinyOcrnet(device, K);
    // Batch 2 at 64×64: the deepest branch (2×2) and the object BN (2·K values) see several values per channel.
    const [N, H, W] = [2, 64, 64];
    const x = tensor(device, rand(N * 3 * H * W, 11), [N, 3, H, W]);
    const proj = [0, 1].map((i) => tensor(device, rand(N * K * H * W, 21 + i), [N, K, H, W]));
    const projHost = await Promise.all(proj.map(async (p) => (await p.data()) as Float32Array));
    try {
      // Well-conditioned weights: convs U(±√(3/fan_in)), BN scale in [0.5, 1.5], biases small.
      let seed = 100;
      for (const [name, t] of model.namedParameters()) {
        let v: Float32Array;
        if (t.rank === 4) {
          const fanIn = t.size / (t.shape[0] ?? 1);
          v = rand(t.size, seed++, -1, 1).map((a) => a * Math.sqrt(3 / fanIn));
        } else if (name.endsWith('_batch_norm.weight')) v = rand(t.size, seed++, 0.5, 1.5);
        else v = rand(t.size, seed++, -0.1, 0.1);
        device.write(t.buffer, v);
      }
      model.train(); // batch statistics, Dropout2D with a fixed mask seed, both outputs
      const DROP_SEED = 1234;
      // Host float64 loss of the float32 forward: Σ_i Σ out_i · proj_i.
      const lossAt = async (): Promise<number> => {
        manualSeed(DROP_SEED);
        const outs = noGrad(() => tidy(() => model.forward(x)));
        let loss = 0;
        for (let i = 0; i < outs.length; i++) {
          const v = (await (outs[i] as Tensor).data()) as Float32Array;
          const p = projHost[i] as Float32Array;
          for (let j = 0; j < v.length; j++) loss += (v[j] ?? 0) * (p[j] ?? 0);
          (outs[i] as Tensor).dispose();
        }
        return loss;
      };

      manualSeed(DROP_SEED);
      const outCount = tidy(() => {
        const outs = model.forward(x);
        const terms = outs.map((o, i) => sum(mul(o, proj[i] as Tensor)));
        const root = terms.reduce((a, b) => add(a, b));
        backward(root);
        return outs.length;
      });
      assert.equal(outCount, 2);

      const params = new Map(model.namedParameters());
      const checked = [
        'backbone.conv_layer1_1._conv.weight',
        'backbone.la1.bb_layer2_1.conv_down._batch_norm.weight',
        'backbone.st4.stage_st4_1.fuse_func.residual_st4_1_layer_4_1_3._conv.weight',
        'backbone.st4.stage_st4_1.branches_func.bb_st4_1_branch_layer_4_1.conv2._conv.weight',
        'head.aux_head.0._conv.weight',
        'head.conv3x3_ocr._conv.weight',
        'head.spatial_ocr.attention_block.f_pixel.1._conv.weight',
        'head.spatial_ocr.attention_block.f_object.0._conv.weight',
        'head.spatial_ocr.attention_block.f_down._batch_norm.weight',
        'head.spatial_ocr.attention_block.f_up._conv.weight',
        'head.spatial_ocr.conv1x1.0._conv.weight',
        'head.cls_head.weight',
      ];
      // eps 3e-4, not 1e-2: this loss is strongly curved (the stem conv's gradient norm is ~6e3), and
      // at 1e-2 the truncation error alone reaches 20% (1e-3: 4%, 3e-4: <0.5%). The loss is summed
      // in float64 on the host, so the float32 forward's rounding stays far below the tolerance.
      const eps = 3e-4;
      const failures: string[] = [];
      const report: string[] = [];
      for (const name of checked) {
        const p = params.get(name);
        assert.ok(p, `no parameter ${name}`);
        assert.ok(p.grad, `${name} has no gradient`);
        const grad = (await p.grad.data()) as Float32Array;
        const orig = (await p.data()) as Float32Array;
        let norm2 = 0;
        for (const g of grad) norm2 += g * g;
        const gnorm = Math.sqrt(norm2);
        assert.ok(gnorm > 0, `${name}: gradient is all zero`);
        // Central differences along whole-tensor directions of length eps: the normalised gradient
        // (derivative = |g|), a random unit direction (derivative = g·r) and the largest element.
        const r = rand(grad.length, 7 + report.length, -1, 1);
        const rnorm = Math.sqrt(r.reduce((a, v) => a + v * v, 0));
        const top = grad.reduce((best, g, i) => (Math.abs(g) > Math.abs(grad[best] ?? 0) ? i : best), 0);
        const dirs: Array<[string, (i: number) => number]> = [
          ['grad', (i) => (grad[i] ?? 0) / gnorm],
          ['random', (i) => (r[i] ?? 0) / rnorm],
          [`[${top}]`, (i) => (i === top ? 1 : 0)],
        ];
        for (const [label, dir] of dirs) {
          let analytic = 0;
          const plus = new Float32Array(orig.length);
          const minus = new Float32Array(orig.length);
          for (let i = 0; i < orig.length; i++) {
            analytic += (grad[i] ?? 0) * dir(i);
            plus[i] = (orig[i] ?? 0) + eps * dir(i);
            minus[i] = (orig[i] ?? 0) - eps * dir(i);
          }
          device.write(p.buffer, plus);
          const lp = await lossAt();
          device.write(p.buffer, minus);
          const lm = await lossAt();
          device.write(p.buffer, orig);
          const fd = (lp - lm) / (2 * eps);
          // Error relative to |g|, the largest directional derivative of this tensor.
          const err = Math.abs(fd - analytic) / gnorm;
          const line = `${name} ${label}: analytic ${analytic.toExponential(4)} fd ${fd.toExponential(4)} err ${err.toExponential(2)}`;
          report.push(line);
          if (!(err <= 5e-2)) failures.push(line);
        }
      }
      console.log(report.join('\n'));
      assert.deepEqual(failures, []);
    } finally {
      model.dispose();
      x.dispose();
      for (const p of proj) p.dispose();
    }
  });
});
