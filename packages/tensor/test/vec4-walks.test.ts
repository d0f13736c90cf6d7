import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'vitest';
import * as T from '../src/index.js';
import { vec4LaunchConfig, vec4PerLane } from '../src/kernels/launch.js';
import { momentumUpdates } from '../src/kernels/optimizer.js';
import { assertClose, assertSameValues, rand, testDevice } from '../src/testing/index.js';

// One-pass vec4 kernels share their vec4s out among the dispatched lanes in runs of 8 lanes; a CPU
// adapter launches fewer lanes that walk longer. [3, 7, 41, 44] is 9471 vec4s: 5 per lane there,
// runs of 8 lanes taking 40 each, the last one partly past the end and the runs after it empty.
const SHAPE = [3, 7, 41, 44];
const SIZE = SHAPE.reduce((a, b) => a * b, 1);

/** Every output of a pass through the vec4 kernels: elementwise ops, their gradients, BatchNorm, momentum. */
async function outputs(device: T.Device): Promise<ArrayLike<number>[]> {
  const x = T.parameter(device, rand(SIZE, 1), SHAPE, 'x');
  const y = T.tensor(device, rand(SIZE, 2), SHAPE);
  const w = T.parameter(device, rand(7, 3, 0.5, 1.5), [7], 'w');
  const b = T.parameter(device, rand(7, 4), [7], 'b');
  const rm = T.persistent(device, new Float64Array(7), [7]);
  const rv = T.persistent(device, new Float64Array(7).fill(1), [7]);
  const velocity = T.persistent(device, new Float64Array(SIZE), SHAPE);
  // x feeds three ops, so its gradient accumulates; the BatchNorm with ReLU runs its vec4 apply
  // and input-gradient kernels.
  const bn = T.batchNorm2d(T.gelu(x), w, b, rm, rv, { training: true, activation: 'relu' });
  const out = T.add(T.add(bn, T.mul(x, y)), T.affine(x, 2, 1));
  T.backward(out, { grad: T.tensor(device, rand(SIZE, 5), SHAPE) });
  const grad = x.grad as T.Tensor;
  const values = [await out.data(), await grad.data(), await (w.grad as T.Tensor).data()];
  momentumUpdates(device, [{ param: x, grad, velocity }], { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
  values.push(await x.data(), await velocity.data());
  for (const t of [x, y, w, b, rm, rv, velocity, out, bn]) t.dispose();
  return values;
}

describe('vec4 kernels with long lane walks', () => {
  afterEach(() => {
    vec4LaunchConfig.longWalks = true;
  });

  it('a CPU adapter walks more than 4 vec4s per lane on large tensors, a GPU 4', async () => {
    const device = await testDevice();
    const perLane = vec4PerLane(device, SIZE / 4, 256);
    assert.equal(perLane, device.software ? 5 : 4);
    assert.equal(vec4PerLane(device, 64 * 1024 * 1024, 256), device.software ? 64 : 4);
    assert.equal(vec4PerLane(device, 100, 256), 4);
  });

  it('give the same bits as 4 vec4s per lane, and ReLU and add match float64', async () => {
    const device = await testDevice();
    const walked = await outputs(device);
    vec4LaunchConfig.longWalks = false;
    const short = await outputs(device);
    assert.equal(walked.length, short.length);
    walked.forEach((values, k) => {
      assertSameValues(values, short[k] ?? [], `output ${k}, long walks vs 4 vec4s a lane`);
    });

    vec4LaunchConfig.longWalks = true;
    const a = rand(SIZE, 6);
    const c = rand(SIZE, 7);
    const at = T.tensor(device, a, SHAPE);
    const ct = T.tensor(device, c, SHAPE);
    const relu = T.relu(at);
    const sum = T.add(at, ct);
    assertClose(
      await relu.data(),
      a.map((v) => Math.max(v, 0)),
      1e-7,
      'relu',
    );
    assertClose(
      await sum.data(),
      a.map((v, i) => v + (c[i] ?? 0)),
      1e-6,
      'add',
    );
    for (const t of [at, ct, relu, sum]) t.dispose();
  });
});
