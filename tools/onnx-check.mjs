// Exports each seed model at full size (initial weights, BatchNorm statistics randomised so the
// folding matters), runs the file on onnxruntime (CPU) and compares with segtrain's eval forward.
//   node tools/onnx-check.mjs [N C H W]     (default 1 3 512 1024; needs `pnpm build`)
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const load = (p) => import(join(root, p));
const { loadConfig } = await load('packages/config/dist/index.js');
const { buildModel, withoutPretrained } = await load('packages/models/dist/index.js');
const T = await load('packages/tensor/dist/index.js');
const { exportOnnx, openOnnx } = await load('packages/onnx/dist/index.js');

const shape = process.argv.length >= 6 ? process.argv.slice(2, 6).map(Number) : [1, 3, 512, 1024];
const SEEDS = {
  'PP-LiteSeg-T': 'configs/pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml',
  'SegFormer-B0': 'configs/segformer/segformer_b0_cityscapes_1024x1024_160k.yml',
  'OCRNet-W18': 'configs/ocrnet/ocrnet_hrnetw18_cityscapes_1024x512_160k.yml',
};
const device = await T.getDevice();
let seed = 1;
const random = (n, lo, hi) =>
  Float32Array.from({ length: n }, () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * seed) / 2 ** 32;
  });
const xs = random(
  shape.reduce((a, b) => a * b, 1),
  -1,
  1,
);
for (const [name, config] of Object.entries(SEEDS)) {
  const model = buildModel(device, {
    num_classes: 19,
    ...withoutPretrained(loadConfig(join(root, config)).model),
  });
  for (const [key, t] of model.stateDict())
    if (key.endsWith('_mean')) device.write(t.buffer, random(t.size, -0.2, 0.2));
    else if (key.endsWith('_variance')) device.write(t.buffer, random(t.size, 0.5, 2));
  model.eval();
  const x = T.tensor(device, xs, shape);
  const t0 = performance.now();
  const logits = T.noGrad(() => model.forward(x))[0];
  const want = await logits.data();
  const t1 = performance.now();
  const { bytes } = await exportOnnx(model, { inputShape: shape, outputOp: 'none', log: console.log });
  const t2 = performance.now();
  const session = await openOnnx(bytes);
  const got = await session.run(xs, shape);
  const t3 = performance.now();
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got.data[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  console.log(
    `${name}: logits [${logits.shape.join(', ')}], model.onnx ${(bytes.length / 2 ** 20).toFixed(1)} MiB; ` +
      `max |onnxruntime − segtrain| = ${worst.toExponential(2)} (max |logit| ${scale.toFixed(3)}, relative ${(worst / scale).toExponential(2)}); ` +
      `segtrain forward ${((t1 - t0) / 1000).toFixed(1)} s, export ${((t2 - t1) / 1000).toFixed(1)} s, onnxruntime ${((t3 - t2) / 1000).toFixed(1)} s`,
  );
  await session.close();
  logits.dispose();
  x.dispose();
  model.dispose();
}
process.exit(0);
