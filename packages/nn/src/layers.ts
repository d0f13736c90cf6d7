import {
  adaptiveAvgPool2d,
  avgPool2d,
  type BatchNormSync,
  batchNorm2d,
  type Conv2dOptions,
  conv2d,
  type Device,
  dropout,
  dropout2d,
  dropPath,
  gelu,
  layerNorm,
  linear,
  maxPool2d,
  type PoolOptions,
  relu,
  resizeBilinear,
  sigmoid,
  type Tensor,
} from '@segtrain/tensor';
import {
  constant,
  currentRng,
  type Initializer,
  kaimingNormalFanIn,
  type Rng,
  xavierUniform,
} from './init.js';
import { Layer, type Module } from './module.js';

export interface Conv2dLayerOptions {
  readonly kernel: number | readonly [number, number];
  readonly stride?: number | readonly [number, number];
  /** Symmetric per side, `[h, w]`, `[top, bottom, left, right]` or Paddle's TF-style `'same'`. */
  readonly padding?: Conv2dOptions['padding'];
  readonly dilation?: number | readonly [number, number];
  readonly groups?: number;
  readonly bias: boolean;
  readonly weightInit?: Initializer;
  readonly biasInit?: Initializer;
}

/** Paddle's Conv2D: weight [out, in/groups, kh, kw] (init normal(0, √(2/fan_in))), bias [out] (0). */
export class Conv2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly options: Conv2dOptions;
  constructor(device: Device, inChannels: number, outChannels: number, o: Conv2dLayerOptions) {
    super(device);
    const [kh, kw] = typeof o.kernel === 'number' ? [o.kernel, o.kernel] : o.kernel;
    const groups = o.groups ?? 1;
    if (inChannels % groups || outChannels % groups)
      throw new Error(`Conv2d: channels ${inChannels}->${outChannels} are not divisible by groups ${groups}`);
    this.weight = this.addParameter(
      'weight',
      [outChannels, inChannels / groups, kh, kw],
      o.weightInit ?? kaimingNormalFanIn,
    );
    this.bias = o.bias ? this.addParameter('bias', [outChannels], o.biasInit ?? constant(0)) : null;
    this.options = { stride: o.stride ?? 1, padding: o.padding ?? 0, dilation: o.dilation ?? 1, groups };
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.options);
  }
}

/**
 * Paddle's BatchNorm2D (momentum 0.9 = weight of the old statistic, eps 1e-5): parameters `weight`
 * and `bias`, buffers `_mean` and `_variance`. `sync` makes it a SyncBatchNorm
 * (set by data-parallel training).
 */
export class BatchNorm2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  sync: BatchNormSync | undefined;
  constructor(
    device: Device,
    channels: number,
    readonly momentum = 0.9,
    readonly eps = 1e-5,
  ) {
    super(device);
    this.weight = this.addParameter('weight', [channels], constant(1));
    this.bias = this.addParameter('bias', [channels], constant(0));
    this.runningMean = this.addBuffer('_mean', [channels], constant(0));
    this.runningVar = this.addBuffer('_variance', [channels], constant(1));
  }

  /** `activation: 'relu'` fuses the ReLU into BatchNorm's kernels (the same values, one pass less each way). */
  forward(x: Tensor, activation?: 'relu'): Tensor {
    return batchNorm2d(x, this.weight, this.bias, this.runningMean, this.runningVar, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
      ...(this.sync ? { sync: this.sync } : {}),
      ...(activation ? { activation } : {}),
    });
  }
}

/** Paddle's Linear: weight [in, out] (the transpose of PyTorch's), Xavier-uniform; bias [out] (0). */
export class Linear extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    device: Device,
    inFeatures: number,
    outFeatures: number,
    o: { bias?: boolean; weightInit?: Initializer } = {},
  ) {
    super(device);
    this.weight = this.addParameter('weight', [inFeatures, outFeatures], o.weightInit ?? xavierUniform);
    this.bias = (o.bias ?? true) ? this.addParameter('bias', [outFeatures], constant(0)) : null;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class LayerNorm extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(
    device: Device,
    dim: number,
    readonly eps = 1e-5,
  ) {
    super(device);
    this.weight = this.addParameter('weight', [dim], constant(1));
    this.bias = this.addParameter('bias', [dim], constant(0));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** Dropout variants: active in training only, scaled by 1/(1 − p) ("upscale in train"). */
export class Dropout extends Layer {
  constructor(
    device: Device,
    readonly p: number,
    readonly kind: 'element' | 'channel' | 'path' = 'element',
  ) {
    super(device);
  }

  forward(x: Tensor): Tensor {
    const o = { training: this.training };
    if (this.kind === 'channel') return dropout2d(x, this.p, o);
    if (this.kind === 'path') return dropPath(x, this.p, o);
    return dropout(x, this.p, o);
  }
}

export type ActivationName = 'relu' | 'gelu' | 'sigmoid' | 'none';

function activate(x: Tensor, kind: ActivationName): Tensor {
  if (kind === 'relu') return relu(x);
  if (kind === 'gelu') return gelu(x);
  if (kind === 'sigmoid') return sigmoid(x);
  return x;
}

export class Activation extends Layer {
  constructor(
    device: Device,
    readonly kind: ActivationName,
  ) {
    super(device);
  }

  forward(x: Tensor): Tensor {
    return activate(x, this.kind);
  }
}

export class AvgPool2d extends Layer {
  constructor(
    device: Device,
    readonly options: PoolOptions,
  ) {
    super(device);
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.options);
  }
}

export class MaxPool2d extends Layer {
  constructor(
    device: Device,
    readonly options: PoolOptions,
  ) {
    super(device);
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.options);
  }
}

export class AdaptiveAvgPool2d extends Layer {
  constructor(
    device: Device,
    readonly size: number | readonly [number, number],
  ) {
    super(device);
  }
  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.size);
  }
}

/** Bilinear (half-pixel) resize to a fixed size or by a scale factor. */
export class Upsample extends Layer {
  constructor(
    device: Device,
    readonly target: { size: readonly [number, number] } | { scale: number },
  ) {
    super(device);
  }
  forward(x: Tensor): Tensor {
    const [h = 0, w = 0] = x.shape.slice(-2);
    const size: [number, number] =
      'size' in this.target
        ? [this.target.size[0], this.target.size[1]]
        : [Math.floor(h * this.target.scale), Math.floor(w * this.target.scale)];
    return resizeBilinear(x, size);
  }
}

export interface ConvBNOptions extends Omit<Conv2dLayerOptions, 'bias'> {
  /** PaddleSeg's ConvBN/ConvBNReLU keep Paddle's conv bias unless the caller passes bias_attr=False. */
  readonly bias: boolean;
}

/**
 * PaddleSeg's `layers.ConvBN` / `ConvBNReLU` / `ConvBNAct`: children `_conv` and `_batch_norm` (state
 * names `x._conv.weight`, `x._batch_norm._mean`, ...), padding 'same' by default.
 */
export class ConvBNAct extends Layer {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(
    device: Device,
    inChannels: number,
    outChannels: number,
    o: ConvBNOptions,
    readonly activation: ActivationName = 'relu',
  ) {
    super(device);
    this.conv = this.addModule(
      '_conv',
      new Conv2d(device, inChannels, outChannels, { padding: 'same', ...o }),
    );
    this.bn = this.addModule('_batch_norm', new BatchNorm2d(device, outChannels));
  }

  forward(x: Tensor): Tensor {
    const y = this.conv.forward(x);
    if (this.activation === 'relu') return this.bn.forward(y, 'relu');
    return activate(this.bn.forward(y), this.activation);
  }
}

/**
 * Re-draws every Conv2d weight of a model with `init` (e.g. He for training from scratch, where
 * PaddleSeg's N(0, 0.001) backbone init expects pretrained weights to overwrite it).
 */
export function reinitializeConvs(
  root: Module,
  init: Initializer = kaimingNormalFanIn,
  rng: Rng = currentRng(),
): number {
  let count = 0;
  for (const [, m] of root.namedModules()) {
    if (m instanceof Conv2d) {
      root.device.write(m.weight.buffer, init(m.weight.shape, rng));
      count++;
    }
  }
  return count;
}
