import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { momentumUpdate } from '../src/kernels/optimizer.js';
import { rand, testDevice } from '../src/testing/index.js';

const [N, H, W, CLASSES] = [2, 32, 64, 4];

/** He-normal-ish seeded weights. */
function init(size: number, fanIn: number, seed: number): Float64Array {
  const u = rand(size, seed, -1, 1);
  const scale = Math.sqrt(6 / fanIn);
  return u.map((v) => v * scale);
}

describe('a tiny conv net trains on the GPU with flat memory', () => {
  it('conv-BN-ReLU ×3, resize, cross-entropy: loss falls over 100 steps; no compiles, buffers or pool growth after warm-up', async () => {
    const device = await testDevice();
    // Labels: a class per pixel from a blocky pattern; the image carries the class as a colour plus noise.
    const labels = new Int32Array(N * H * W);
    const image = new Float32Array(N * 3 * H * W);
    const noise = rand(image.length, 3, -0.6, 0.6);
    const palette = [
      [1, -1, -1],
      [-1, 1, -1],
      [-1, -1, 1],
      [1, 1, -1],
    ];
    for (let n = 0; n < N; n++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          const cls = (Math.floor(x / 16) + Math.floor(y / 8) + n) % CLASSES;
          labels[n * H * W + y * W + x] = y === 0 && x < 8 ? 255 : cls;
          for (let c = 0; c < 3; c++) {
            const i = ((n * 3 + c) * H + y) * W + x;
            image[i] = (palette[cls]?.[c] ?? 0) + (noise[i] ?? 0);
          }
        }
    const xs = T.tensor(device, image, [N, 3, H, W]).keep();
    const ys = T.tensor(device, labels, [N, H, W], 'i32').keep();
    const channels = [3, 8, 16, 16];
    const layers = [0, 1, 2].map((i) => {
      const cin = channels[i] ?? 0;
      const cout = channels[i + 1] ?? 0;
      return {
        w: T.parameter(device, init(cout * cin * 9, cin * 9, 10 + i), [cout, cin, 3, 3]),
        gamma: T.parameter(device, new Float32Array(cout).fill(1), [cout]),
        beta: T.parameter(device, new Float32Array(cout), [cout]),
        mean: T.persistent(device, new Float32Array(cout), [cout]),
        variance: T.persistent(device, new Float32Array(cout).fill(1), [cout]),
        stride: i < 2 ? 2 : 1,
      };
    });
    const head = T.parameter(device, init(CLASSES * 16, 16, 20), [CLASSES, 16, 1, 1]);
    const headBias = T.parameter(device, new Float32Array(CLASSES), [CLASSES]);
    const params = [...layers.flatMap((l) => [l.w, l.gamma, l.beta]), head, headBias];
    const velocity = params.map((p) => T.persistent(device, new Float32Array(p.size), p.shape));

    const losses: number[] = [];
    const snapshots: T.DeviceStats[] = [];
    let liveAfterWarmup = 0;
    for (let step = 0; step < 100; step++) {
      const loss = T.tidy(() => {
        let h = xs;
        for (const l of layers) {
          h = T.conv2d(h, l.w, null, { stride: l.stride, padding: 1 });
          h = T.batchNorm2d(h, l.gamma, l.beta, l.mean, l.variance, { training: true });
          h = T.relu(h);
        }
        const logits = T.resizeBilinear(T.conv2d(h, head, headBias), [H, W]);
        const l = T.softmaxCrossEntropy(logits, ys, { ignoreIndex: 255 });
        T.backward(l);
        T.noGrad(() => {
          params.forEach((p, i) => {
            momentumUpdate(device, p, p.grad as T.Tensor, velocity[i] as T.Tensor, {
              lr: 0.1,
              momentum: 0.9,
              weightDecay: 1e-4,
            });
            p.grad?.dispose();
            p.grad = null;
          });
        });
        return l;
      });
      if (step % 10 === 0 || step === 99) losses.push(await loss.item());
      loss.dispose();
      device.flush();
      if (step === 9) liveAfterWarmup = T.liveTensorCount();
      if (step >= 9) snapshots.push(device.stats());
    }
    console.log(`losses every 10 steps: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
    const first = losses[0] ?? 0;
    const last = losses.at(-1) ?? 0;
    assert.ok(Number.isFinite(last), `loss became ${last}`);
    assert.ok(last < first * 0.3, `loss should fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
    const [warm] = snapshots;
    assert.ok(warm);
    for (const s of snapshots) {
      assert.equal(s.pipelinesCompiled, warm.pipelinesCompiled, 'pipelines compiled after warm-up');
      assert.equal(s.storageBuffersCreated, warm.storageBuffersCreated, 'GPU buffers created after warm-up');
      assert.equal(s.storageBytesOwned, warm.storageBytesOwned, 'pool bytes grew after warm-up');
      assert.equal(s.paramBytes, warm.paramBytes, 'parameter bytes changed');
      // The pool hands out the same buffers every step, so every dispatch finds its bind group.
      assert.equal(s.bindGroupsCreated, warm.bindGroupsCreated, 'bind groups created after warm-up');
    }
    assert.ok((snapshots.at(-1)?.bindGroupsReused ?? 0) > warm.bindGroupsReused, 'no bind group was reused');
    assert.equal(T.liveTensorCount(), liveAfterWarmup, 'tensors leaked across steps');
    for (const t of [
      xs,
      ys,
      head,
      headBias,
      ...velocity,
      ...layers.flatMap((l) => [l.w, l.gamma, l.beta, l.mean, l.variance]),
    ])
      t.dispose();
  });
});
