import * as T from '@segtrain/tensor';
import type { Tfjs } from './tfjs.js';
import { medianMs, type Row } from './timing.js';

type Tf = Tfjs['tf'];

function randomData(size: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.2;
  }
  return out;
}

export interface KernelBenchOptions {
  readonly reps: number;
  readonly quick: boolean;
  /** GEMM sizes n (n³ products); default 1024 and 2048 (--quick: 1024). */
  readonly gemmSizes?: readonly number[];
}

interface Case {
  readonly name: string;
  readonly gflop: number;
  readonly images?: number;
  /** Prepares the inputs; the function returned records one call (the harness waits for the GPU). */
  readonly ours: () => Promise<() => void>;
  readonly theirs: ((tfjs: Tfjs) => Promise<() => Promise<void>>) | null;
}

const CONV = { n: 2, c: 64, h: 128, w: 256 };

function gemmCase(device: T.Device, n: number): Case {
  return {
    name: `GEMM ${n}x${n}x${n}`,
    gflop: (2 * n ** 3) / 1e9,
    ours: async () => {
      const a = T.tensor(device, randomData(n * n, 1), [n, n]).keep();
      const b = T.tensor(device, randomData(n * n, 2), [n, n]).keep();
      return () => T.matmul(a, b).dispose();
    },
    theirs: async ({ tf, sync }) => {
      const a = tf.tensor2d(randomData(n * n, 1), [n, n]);
      const b = tf.tensor2d(randomData(n * n, 2), [n, n]);
      return async () => {
        tf.matMul(a, b).dispose();
        await sync();
      };
    },
  };
}

function convCases(device: T.Device): Case[] {
  const { n, c, h, w } = CONV;
  const gflop = (2 * n * c * h * w * c * 9) / 1e9;
  const x = () => T.tensor(device, randomData(n * c * h * w, 3), [n, c, h, w]).keep();
  const wt = () => T.tensor(device, randomData(c * c * 9, 4), [c, c, 3, 3]).keep();
  const geometry = T.conv2dGeometry([n, c, h, w], [c, c, 3, 3], null, { padding: 1 });
  const nhwc = (tf: Tf) => tf.tensor4d(randomData(n * c * h * w, 3), [n, h, w, c]);
  const hwio = (tf: Tf) => tf.tensor4d(randomData(c * c * 9, 4), [3, 3, c, c]);
  const label = `${n}x${c}x${h}x${w}, 3x3 ${c}->${c}`;
  return [
    {
      name: `conv forward (${label})`,
      gflop,
      ours: async () => {
        const [xi, wi] = [x(), wt()];
        return () => T.conv2dForward(device, xi, wi, null, geometry).dispose();
      },
      theirs: async ({ tf, sync }) => {
        const [xi, wi] = [nhwc(tf), hwio(tf)];
        return async () => {
          tf.conv2d(xi, wi, 1, 'same').dispose();
          await sync();
        };
      },
    },
    {
      name: `conv dX (${label})`,
      gflop,
      ours: async () => {
        const [g, wi] = [x(), wt()];
        return () => T.conv2dInputGrad(device, g, wi, geometry).dispose();
      },
      theirs: async ({ tf, sync }) => {
        const [g, wi] = [nhwc(tf), hwio(tf)];
        return async () => {
          tf.conv2dTranspose(g, wi, [n, h, w, c], 1, 'same').dispose();
          await sync();
        };
      },
    },
    {
      name: `conv dW (${label})`,
      gflop,
      ours: async () => {
        const [g, xi] = [x(), x()];
        return () => T.conv2dWeightGrad(device, g, xi, geometry).dispose();
      },
      theirs: async ({ tf, sync }) => {
        const [g, xi] = [nhwc(tf), nhwc(tf)];
        return async () => {
          const dw = tf
            .engine()
            .runKernel(
              'Conv2DBackpropFilter',
              { x: xi, dy: g },
              { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, c, c] },
            ) as import('@tensorflow/tfjs').Tensor;
          dw.dispose();
          await sync();
        };
      },
    },
    {
      name: `depthwise 3x3 forward (${n}x${c}x${h}x${w})`,
      gflop: (2 * n * c * h * w * 9) / 1e9,
      ours: async () => {
        const xi = x();
        const wi = T.tensor(device, randomData(c * 9, 5), [c, 1, 3, 3]).keep();
        const dw = T.conv2dGeometry([n, c, h, w], [c, 1, 3, 3], null, { padding: 1, groups: c });
        return () => T.conv2dForward(device, xi, wi, null, dw).dispose();
      },
      theirs: async ({ tf, sync }) => {
        const xi = nhwc(tf);
        const wi = tf.tensor4d(randomData(c * 9, 5), [3, 3, c, 1]);
        return async () => {
          tf.depthwiseConv2d(xi, wi, 1, 'same').dispose();
          await sync();
        };
      },
    },
  ];
}

/** The tiny segmentation net of the tensor tests, at bench size: conv-BN-ReLU ×3, 1×1 head, resize, CE. */
function trainStepCase(device: T.Device, quick: boolean): Case {
  const [n, h, w, classes] = quick ? [2, 64, 128, 8] : [2, 128, 256, 8];
  const chans = [3, 32, 64, 64];
  const strides = [2, 2, 1];
  const labels = Int32Array.from(
    { length: n * h * w },
    (_, i) => (Math.floor((i % w) / 16) + Math.floor(i / w / 16)) % classes,
  );
  let gflop = 0;
  let hh = h;
  let ww = w;
  for (let i = 0; i < 3; i++) {
    hh = Math.ceil(hh / (strides[i] ?? 1));
    ww = Math.ceil(ww / (strides[i] ?? 1));
    gflop += (3 * 2 * n * hh * ww * (chans[i] ?? 0) * (chans[i + 1] ?? 0) * 9) / 1e9;
  }
  return {
    name: `conv-net training step (${n}x3x${h}x${w}, img/s)`,
    gflop,
    images: n,
    ours: async () => {
      const x = T.tensor(device, randomData(n * 3 * h * w, 7), [n, 3, h, w]).keep();
      const y = T.tensor(device, labels, [n, h, w], 'i32').keep();
      const layers = [0, 1, 2].map((i) => ({
        w: T.parameter(device, randomData((chans[i + 1] ?? 0) * (chans[i] ?? 0) * 9, 10 + i), [
          chans[i + 1] ?? 0,
          chans[i] ?? 0,
          3,
          3,
        ]),
        g: T.parameter(device, new Float32Array(chans[i + 1] ?? 0).fill(1), [chans[i + 1] ?? 0]),
        b: T.parameter(device, new Float32Array(chans[i + 1] ?? 0), [chans[i + 1] ?? 0]),
        m: T.persistent(device, new Float32Array(chans[i + 1] ?? 0), [chans[i + 1] ?? 0]),
        v: T.persistent(device, new Float32Array(chans[i + 1] ?? 0).fill(1), [chans[i + 1] ?? 0]),
        s: strides[i] ?? 1,
      }));
      const head = T.parameter(device, randomData(classes * 64, 20), [classes, 64, 1, 1]);
      const params = [...layers.flatMap((l) => [l.w, l.g, l.b]), head];
      const velocity = params.map((p) => T.persistent(device, new Float32Array(p.size), p.shape));
      return () => {
        T.tidy(() => {
          let t = x;
          for (const l of layers)
            t = T.relu(
              T.batchNorm2d(T.conv2d(t, l.w, null, { stride: l.s, padding: 1 }), l.g, l.b, l.m, l.v, {
                training: true,
              }),
            );
          const loss = T.softmaxCrossEntropy(T.resizeBilinear(T.conv2d(t, head, null), [h, w]), y, {});
          T.backward(loss);
          params.forEach((p, i) => {
            T.momentumUpdate(device, p, p.grad as T.Tensor, velocity[i] as T.Tensor, {
              lr: 0.01,
              momentum: 0.9,
              weightDecay: 0,
            });
            p.grad?.dispose();
            p.grad = null;
          });
        });
      };
    },
    theirs: async ({ tf, sync }) => {
      const x = tf.tensor4d(randomData(n * 3 * h * w, 7), [n, h, w, 3]);
      const onehot = tf.oneHot(tf.tensor3d(labels, [n, h, w], 'int32'), classes);
      const layers = [0, 1, 2].map((i) => ({
        w: tf.variable(
          tf.tensor4d(randomData((chans[i + 1] ?? 0) * (chans[i] ?? 0) * 9, 10 + i), [
            3,
            3,
            chans[i] ?? 0,
            chans[i + 1] ?? 0,
          ]),
        ),
        g: tf.variable(tf.ones([chans[i + 1] ?? 0])),
        b: tf.variable(tf.zeros([chans[i + 1] ?? 0])),
        s: strides[i] ?? 1,
      }));
      const head = tf.variable(tf.tensor4d(randomData(classes * 64, 20), [1, 1, 64, classes]));
      const sgd = tf.train.momentum(0.01, 0.9);
      return async () => {
        const cost = sgd.minimize(() => {
          let t = x as import('@tensorflow/tfjs').Tensor4D;
          for (const l of layers) {
            const c = tf.conv2d(t, l.w as import('@tensorflow/tfjs').Tensor4D, l.s, 'same');
            const { mean, variance } = tf.moments(c, [0, 1, 2]);
            t = tf.relu(
              tf.batchNorm(c, mean, variance, l.b, l.g, 1e-5),
            ) as import('@tensorflow/tfjs').Tensor4D;
          }
          const logits = tf.image.resizeBilinear(
            tf.conv2d(t, head as import('@tensorflow/tfjs').Tensor4D, 1, 'same'),
            [h, w],
          );
          return tf.losses.softmaxCrossEntropy(onehot, logits) as import('@tensorflow/tfjs').Scalar;
        }, true);
        cost?.dispose();
        await sync();
      };
    },
  };
}

/** A back-to-back run records this many milliseconds of calls before it waits. */
const BACK_TO_BACK_MS = 20;
const BACK_TO_BACK_MAX_CALLS = 32;

/**
 * Median time per call over `reps` runs of k calls recorded back to back and one wait, k filling
 * about BACK_TO_BACK_MS at the single-call time `singleMs`: what a kernel costs inside a training
 * step, where nothing waits between dispatches (a single call also pays the submit, lavapipe's
 * worker wake-up and the wait, ~0.3–0.4 ms here: a tenth of a 3 ms kernel, nothing to a GEMM).
 */
export async function backToBackMs(
  device: { sync(): Promise<void> },
  call: () => void,
  singleMs: number,
  reps: number,
): Promise<number> {
  const calls = Math.max(1, Math.min(BACK_TO_BACK_MAX_CALLS, Math.round(BACK_TO_BACK_MS / singleMs)));
  const perRun = await medianMs(async () => {
    for (let i = 0; i < calls; i++) call();
    await device.sync();
  }, reps);
  return perRun / calls;
}

/** Every kernel case, ours and tfjs-webgpu's, each timed as a median over `reps` runs. */
export async function runKernelBench(
  device: T.Device,
  tfjs: Tfjs | null,
  o: KernelBenchOptions,
  log: (line: string) => void,
): Promise<Row[]> {
  const cases: Case[] = [
    ...(o.gemmSizes ?? (o.quick ? [1024] : [1024, 2048])).map((n) => gemmCase(device, n)),
    ...convCases(device),
    trainStepCase(device, o.quick),
  ];
  const rows: Row[] = [];
  for (const c of cases) {
    const call = await c.ours();
    const ours = await medianMs(
      async () => {
        call();
        await device.sync();
      },
      o.reps,
      device,
    );
    const backToBack = c.images ? null : await backToBackMs(device, call, ours, o.reps);
    let theirs: number | null = null;
    if (tfjs && c.theirs) {
      const run = await c.theirs(tfjs);
      theirs = await medianMs(run, c.images ? Math.min(o.reps, 2) : o.reps);
    }
    const row: Row = {
      name: c.name,
      gflop: c.gflop,
      oursMs: ours,
      theirsMs: theirs,
      ...(backToBack === null ? {} : { backToBackMs: backToBack }),
      ...(c.images ? { images: c.images } : {}),
    };
    log(
      `${c.name}: ours ${ours.toFixed(1)} ms${backToBack === null ? '' : ` (back to back ${backToBack.toFixed(2)} ms)`}${theirs === null ? '' : `, tfjs-webgpu ${theirs.toFixed(1)} ms`}`,
    );
    rows.push(row);
  }
  return rows;
}
