import {
  AdaptiveAvgPool2d,
  Conv2d,
  ConvBNAct,
  constant,
  Layer,
  Module,
  ModuleList,
  Sequential,
} from '@segtrain/nn';
import {
  add,
  blendByMap,
  type Device,
  meanMaxOverChannels,
  resizeBilinear,
  resizeNearest,
  sigmoid,
  type Tensor,
} from '@segtrain/tensor';
import { type Backbone, buildBackbone, type ComponentConfig, type SegModel } from '../registry.js';

type ResizeMode = 'bilinear' | 'nearest';

function resizeTo(x: Tensor, like: readonly number[], mode: ResizeMode): Tensor {
  const size: [number, number] = [like.at(-2) ?? 1, like.at(-1) ?? 1];
  if (x.shape.at(-2) === size[0] && x.shape.at(-1) === size[1]) return x;
  return mode === 'bilinear' ? resizeBilinear(x, size) : resizeNearest(x, size);
}

/**
 * SPPM (PPContextModule): per bin b, adaptive-avg-pool to b×b → ConvBNReLU 1×1 (with conv bias) →
 * upsample to the input map; the branches are summed, then ConvBNReLU 3×3 (with bias).
 */
class PPContextModule extends Module {
  readonly stages: ModuleList<Sequential>;
  readonly convOut: ConvBNAct;
  constructor(
    device: Device,
    cin: number,
    inter: number,
    cout: number,
    bins: readonly number[],
    readonly mode: ResizeMode,
  ) {
    super(device);
    this.stages = this.addModule(
      'stages',
      new ModuleList(
        device,
        bins.map(
          (b) =>
            new Sequential(device, [
              new AdaptiveAvgPool2d(device, b),
              new ConvBNAct(device, cin, inter, { kernel: 1, bias: true }),
            ]),
        ),
      ),
    );
    this.convOut = this.addModule(
      'conv_out',
      new ConvBNAct(device, inter, cout, { kernel: 3, padding: 1, bias: true }),
    );
  }

  forward(x: Tensor): Tensor {
    let sum: Tensor | null = null;
    for (const stage of this.stages.items) {
      const y = resizeTo(stage.forward(x), x.shape, this.mode);
      sum = sum ? add(sum, y) : y;
    }
    return this.convOut.forward(sum as Tensor);
  }
}

/**
 * UAFM with spatial attention: x = ConvBNReLU(low); y = upsample(high);
 * α = sigmoid(ConvBN(ConvBNReLU([mean_c x, max_c x, mean_c y, max_c y]))); out = ConvBNReLU(x·α + y·(s − α)),
 * s a saved, untrained parameter `_scale` = 1.
 */
class UafmSpAtten extends Module {
  readonly convX: ConvBNAct;
  readonly convOut: ConvBNAct;
  readonly atten: Sequential;
  readonly scale: Tensor;
  constructor(
    device: Device,
    xCh: number,
    yCh: number,
    outCh: number,
    readonly mode: ResizeMode,
  ) {
    super(device);
    this.convX = this.addModule(
      'conv_x',
      new ConvBNAct(device, xCh, yCh, { kernel: 3, padding: 1, bias: false }),
    );
    this.convOut = this.addModule(
      'conv_out',
      new ConvBNAct(device, yCh, outCh, { kernel: 3, padding: 1, bias: false }),
    );
    this.atten = this.addModule(
      'conv_xy_atten',
      new Sequential(device, [
        new ConvBNAct(device, 4, 2, { kernel: 3, padding: 1, bias: false }),
        new ConvBNAct(device, 2, 1, { kernel: 3, padding: 1, bias: false }, 'none'),
      ]),
    );
    this.scale = this.addFrozenParameter('_scale', [1], constant(1));
  }

  forward(low: Tensor, high: Tensor): Tensor {
    const x = this.convX.forward(low);
    const y = resizeTo(high, x.shape, this.mode);
    // [mean_c x, max_c x, mean_c y, max_c y] and the blend: one dispatch each way per op.
    const alpha = sigmoid(this.atten.forward(meanMaxOverChannels([x, y])));
    return this.convOut.forward(blendByMap(x, y, alpha, this.scale));
  }
}

class PPLiteSegHead extends Module {
  readonly cm: PPContextModule;
  readonly arms: ModuleList<UafmSpAtten>;
  constructor(
    device: Device,
    backboneChs: readonly number[],
    armChs: readonly number[],
    bins: readonly number[],
    cmCh: number,
    mode: ResizeMode,
  ) {
    super(device);
    this.cm = this.addModule(
      'cm',
      new PPContextModule(device, backboneChs.at(-1) ?? 0, cmCh, cmCh, bins, mode),
    );
    this.arms = this.addModule(
      'arm_list',
      new ModuleList(
        device,
        backboneChs.map(
          (low, i) =>
            new UafmSpAtten(
              device,
              low,
              i === backboneChs.length - 1 ? cmCh : (armChs[i + 1] ?? 0),
              armChs[i] ?? 0,
              mode,
            ),
        ),
      ),
    );
  }

  /** Deep to shallow: each UAFM fuses a backbone feature with the previous (coarser) output. */
  forward(feats: readonly Tensor[]): Tensor[] {
    let high = this.cm.forward(feats.at(-1) as Tensor);
    const outs: Tensor[] = [];
    for (let i = feats.length - 1; i >= 0; i--) {
      high = (this.arms.items[i] as UafmSpAtten).forward(feats[i] as Tensor, high);
      outs.unshift(high);
    }
    return outs;
  }
}

/** ConvBNReLU 3×3 (bias-free) then a bias-free 1×1 classifier (`conv`, `conv_out`). */
class SegHead extends Layer {
  readonly conv: ConvBNAct;
  readonly convOut: Conv2d;
  constructor(device: Device, cin: number, mid: number, classes: number) {
    super(device);
    this.conv = this.addModule(
      'conv',
      new ConvBNAct(device, cin, mid, { kernel: 3, padding: 1, bias: false }),
    );
    this.convOut = this.addModule('conv_out', new Conv2d(device, mid, classes, { kernel: 1, bias: false }));
  }

  forward(x: Tensor): Tensor {
    return this.convOut.forward(this.conv.forward(x));
  }
}

export interface PPLiteSegOptions {
  readonly numClasses: number;
  readonly backboneIndices?: readonly number[];
  readonly armOutChs?: readonly number[];
  readonly segHeadInterChs?: readonly number[];
  readonly cmBinSizes?: readonly number[];
  readonly cmOutCh?: number;
  readonly resizeMode?: ResizeMode;
}

/** PP-LiteSeg: training returns the 1/8, 1/16 and 1/32 heads' logits at input size; eval only the 1/8 head's. */
export class PPLiteSeg extends Module implements SegModel {
  readonly backbone: Backbone;
  readonly head: PPLiteSegHead;
  readonly segHeads: ModuleList<SegHead>;
  private readonly indices: readonly number[];
  private readonly mode: ResizeMode;

  constructor(device: Device, backbone: Backbone, o: PPLiteSegOptions) {
    super(device);
    this.indices = o.backboneIndices ?? [2, 3, 4];
    this.mode = o.resizeMode ?? 'bilinear';
    const armChs = o.armOutChs ?? [64, 96, 128];
    const interChs = o.segHeadInterChs ?? [64, 64, 64];
    const chans = this.indices.map((i) => backbone.featChannels[i] ?? 0);
    this.backbone = this.addModule('backbone', backbone);
    this.head = this.addModule(
      'ppseg_head',
      new PPLiteSegHead(device, chans, armChs, o.cmBinSizes ?? [1, 2, 4], o.cmOutCh ?? 128, this.mode),
    );
    this.segHeads = this.addModule(
      'seg_heads',
      new ModuleList(
        device,
        armChs.map((c, i) => new SegHead(device, c, interChs[i] ?? 0, o.numClasses)),
      ),
    );
  }

  forward(x: Tensor): Tensor[] {
    const feats = this.backbone.forward(x);
    const selected = this.indices.map((i) => feats[i] as Tensor);
    const fused = this.head.forward(selected);
    const heads = this.training
      ? this.segHeads.items.map((h, i) => h.forward(fused[i] as Tensor))
      : [(this.segHeads.items[0] as SegHead).forward(fused[0] as Tensor)];
    return heads.map((logit) => resizeTo(logit, x.shape, this.mode));
  }
}

const numbers = (v: unknown): number[] | undefined => (Array.isArray(v) ? v.map(Number) : undefined);

export function ppLiteSegFromConfig(device: Device, config: ComponentConfig): PPLiteSeg {
  const backboneConfig = config.backbone as ComponentConfig | undefined;
  if (!backboneConfig) throw new Error('PPLiteSeg: model.backbone is required');
  if (typeof config.num_classes !== 'number') throw new Error('PPLiteSeg: model.num_classes is required');
  const options: PPLiteSegOptions = {
    numClasses: config.num_classes,
    ...(numbers(config.backbone_indices) ? { backboneIndices: numbers(config.backbone_indices) } : {}),
    ...(numbers(config.arm_out_chs) ? { armOutChs: numbers(config.arm_out_chs) } : {}),
    ...(numbers(config.seg_head_inter_chs) ? { segHeadInterChs: numbers(config.seg_head_inter_chs) } : {}),
    ...(numbers(config.cm_bin_sizes) ? { cmBinSizes: numbers(config.cm_bin_sizes) } : {}),
    ...(typeof config.cm_out_ch === 'number' ? { cmOutCh: config.cm_out_ch } : {}),
    ...(config.resize_mode === 'nearest' ? { resizeMode: 'nearest' as const } : {}),
  };
  if (config.arm_type !== undefined && config.arm_type !== 'UAFM_SpAtten')
    throw new Error(
      `PPLiteSeg: arm_type '${String(config.arm_type)}' is not implemented (only UAFM_SpAtten)`,
    );
  return new PPLiteSeg(device, buildBackbone(device, backboneConfig), options);
}
