import {
  AvgPool2d,
  BatchNorm2d,
  Conv2d,
  type Initializer,
  Layer,
  Module,
  ModuleList,
  normal,
  Sequential,
} from '@segtrain/nn';
import { concat, type Device, type Tensor } from '@segtrain/tensor';
import type { Backbone, ComponentConfig } from '../registry.js';

/** How fresh STDC convs are initialised: PaddleSeg's N(0, 0.001) (meant to be overwritten by pretrained weights) or He. */
export type StdcInit = 'paddle' | 'he';

function convInit(init: StdcInit): Initializer | undefined {
  return init === 'paddle' ? normal(0.001) : undefined;
}

/** STDC's own ConvBNRelu: children `conv` (bias-free, padding k//2) and `bn`. */
class StdcConvBNRelu extends Layer {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(device: Device, cin: number, cout: number, kernel: number, stride: number, init: StdcInit) {
    super(device);
    const weightInit = convInit(init);
    this.conv = this.addModule(
      'conv',
      new Conv2d(device, cin, cout, {
        kernel,
        stride,
        padding: Math.floor(kernel / 2),
        bias: false,
        ...(weightInit ? { weightInit } : {}),
      }),
    );
    this.bn = this.addModule('bn', new BatchNorm2d(device, cout));
  }

  forward(x: Tensor): Tensor {
    return this.bn.forward(this.conv.forward(x), 'relu');
  }
}

/**
 * STDC's CatBottleneck (block_num 4): b0 = 1×1 to out/2; with stride 2 a depthwise 3×3 s2 + BN
 * (`avd_layer`) feeds b1 and a 3×3 s2 avg-pool (`skip`) shrinks b0; b1..b3 halve the channels
 * (the last keeps them); the output concatenates [b0, b1, b2, b3].
 */
class CatBottleneck extends Layer {
  readonly convs: ModuleList<StdcConvBNRelu>;
  readonly avd: Sequential | null;
  readonly skip: AvgPool2d | null;
  constructor(device: Device, cin: number, cout: number, stride: number, init: StdcInit, blockNum = 4) {
    super(device);
    const layers: StdcConvBNRelu[] = [];
    for (let idx = 0; idx < blockNum; idx++) {
      if (idx === 0) layers.push(new StdcConvBNRelu(device, cin, cout / 2, 1, 1, init));
      else if (idx === 1 && blockNum === 2)
        layers.push(new StdcConvBNRelu(device, cout / 2, cout / 2, 3, 1, init));
      else if (idx === 1) layers.push(new StdcConvBNRelu(device, cout / 2, cout / 4, 3, 1, init));
      else if (idx < blockNum - 1)
        layers.push(new StdcConvBNRelu(device, cout / 2 ** idx, cout / 2 ** (idx + 1), 3, 1, init));
      else layers.push(new StdcConvBNRelu(device, cout / 2 ** idx, cout / 2 ** idx, 3, 1, init));
    }
    this.convs = this.addModule('conv_list', new ModuleList(device, layers));
    if (stride === 2) {
      const weightInit = convInit(init);
      this.avd = this.addModule(
        'avd_layer',
        new Sequential(device, [
          new Conv2d(device, cout / 2, cout / 2, {
            kernel: 3,
            stride: 2,
            padding: 1,
            groups: cout / 2,
            bias: false,
            ...(weightInit ? { weightInit } : {}),
          }),
          new BatchNorm2d(device, cout / 2),
        ]),
      );
      this.skip = new AvgPool2d(device, { kernel: 3, stride: 2, padding: 1 });
    } else {
      this.avd = null;
      this.skip = null;
    }
  }

  forward(x: Tensor): Tensor {
    const [first, ...rest] = this.convs.items;
    if (!first) throw new Error('CatBottleneck without convs');
    const b0 = first.forward(x);
    const outs: Tensor[] = [];
    let h = this.avd ? this.avd.forward(b0) : b0;
    for (const conv of rest) {
      h = conv.forward(h);
      outs.push(h);
    }
    return concat([this.skip ? this.skip.forward(b0) : b0, ...outs], 1);
  }
}

/** STDCNet (type "cat", base 64): features at strides 2, 4, 8, 16, 32 with [32, 64, 256, 512, 1024] channels. */
export class STDCNet extends Module implements Backbone {
  readonly featChannels: readonly number[];
  readonly features: ModuleList<Layer>;
  private readonly stageEnds: number[];

  constructor(
    device: Device,
    layers: readonly number[],
    options: { base?: number; inChannels?: number; init?: StdcInit } = {},
  ) {
    super(device);
    const base = options.base ?? 64;
    const init = options.init ?? 'paddle';
    this.featChannels = [base / 2, base, base * 4, base * 8, base * 16];
    const features: Layer[] = [
      new StdcConvBNRelu(device, options.inChannels ?? 3, base / 2, 3, 2, init),
      new StdcConvBNRelu(device, base / 2, base, 3, 2, init),
    ];
    this.stageEnds = [1, 2];
    layers.forEach((count, i) => {
      for (let j = 0; j < count; j++) {
        if (i === 0 && j === 0) features.push(new CatBottleneck(device, base, base * 4, 2, init));
        else if (j === 0)
          features.push(new CatBottleneck(device, base * 2 ** (i + 1), base * 2 ** (i + 2), 2, init));
        else features.push(new CatBottleneck(device, base * 2 ** (i + 2), base * 2 ** (i + 2), 1, init));
      }
      this.stageEnds.push(features.length);
    });
    this.features = this.addModule('features', new ModuleList(device, features));
  }

  /** [x2, x4, x8, x16, x32]. */
  forward(x: Tensor): Tensor[] {
    const outs: Tensor[] = [];
    let h = x;
    let start = 0;
    for (const end of this.stageEnds) {
      for (let i = start; i < end; i++) h = (this.features.items[i] as Layer).forward(h);
      outs.push(h);
      start = end;
    }
    return outs;
  }
}

export function stdcFromConfig(device: Device, config: ComponentConfig, layers: readonly number[]): STDCNet {
  const inChannels = typeof config.in_channels === 'number' ? config.in_channels : 3;
  const init = config.init === 'he' ? 'he' : 'paddle';
  return new STDCNet(device, layers, { inChannels, init });
}
