import { type Conv2dLayerOptions, ConvBNAct, type Initializer, Module, normal } from '@segtrain/nn';
import { add, concat, type Device, relu, resizeBilinear, type Tensor } from '@segtrain/tensor';
import type { Backbone, ComponentConfig } from '../registry.js';

/**
 * HRNet as PaddleSeg builds it (paddleseg/models/backbones/hrnet.py): every conv bias-free, Paddle
 * 'same' padding (TF-style) unless `paddingSame` is false (then 3×3 convs pad 1), convs initialised
 * normal(0, 0.001), BN weight 1 / bias 0. Sub-layer names follow Paddle's `add_sublayer` names with
 * 1-based indices, so a PaddleSeg state dict maps key for key.
 */

/** One stage's layout: modules, blocks per branch and channels per branch. */
export interface HRNetStageSpec {
  readonly numModules: number;
  readonly numBlocks: readonly number[];
  readonly numChannels: readonly number[];
}

export interface HRNetOptions {
  readonly inChannels?: number;
  /** Output channels of the two stem convs (64 in PaddleSeg; an internal knob for tiny test models). */
  readonly stemChannels?: number;
  /** Layer1: Bottleneck blocks and their width (output = 4 × width). */
  readonly stage1: { readonly numBlocks: number; readonly numChannels: number };
  readonly stage2: HRNetStageSpec;
  readonly stage3: HRNetStageSpec;
  readonly stage4: HRNetStageSpec;
  readonly hasSe?: boolean;
  readonly alignCorners?: boolean;
  readonly paddingSame?: boolean;
  /** Kept for the trainer's pretrained loader; not loaded here. */
  readonly pretrained?: string | null;
}

/** Conv init of HRNet.init_weight / OCRHead.init_weight. */
export const convInit: Initializer = normal(0.001);

interface ConvGeometry {
  readonly kernel: number;
  readonly stride?: number;
  readonly paddingSame: boolean;
}

function convOptions(g: ConvGeometry): Omit<Conv2dLayerOptions, 'bias'> & { bias: false } {
  const padding = g.paddingSame || g.kernel === 1 ? ('same' as const) : Math.floor(g.kernel / 2);
  return { kernel: g.kernel, stride: g.stride ?? 1, padding, bias: false, weightInit: convInit };
}

/** PaddleSeg's ConvBNReLU / ConvBN with bias_attr=False. */
function cbr(device: Device, cin: number, cout: number, g: ConvGeometry, act: 'relu' | 'none'): ConvBNAct {
  return new ConvBNAct(device, cin, cout, convOptions(g), act);
}

/** BottleneckBlock (Layer1): conv1 1×1, conv2 3×3, conv3 1×1 (→ 4·filters, no ReLU), optional conv_down. */
export class BottleneckBlock extends Module {
  readonly conv1: ConvBNAct;
  readonly conv2: ConvBNAct;
  readonly conv3: ConvBNAct;
  readonly convDown: ConvBNAct | null;
  constructor(
    device: Device,
    numChannels: number,
    numFilters: number,
    downsample: boolean,
    paddingSame: boolean,
  ) {
    super(device);
    this.conv1 = this.addModule(
      'conv1',
      cbr(device, numChannels, numFilters, { kernel: 1, paddingSame }, 'relu'),
    );
    this.conv2 = this.addModule(
      'conv2',
      cbr(device, numFilters, numFilters, { kernel: 3, paddingSame }, 'relu'),
    );
    this.conv3 = this.addModule(
      'conv3',
      cbr(device, numFilters, numFilters * 4, { kernel: 1, paddingSame }, 'none'),
    );
    this.convDown = downsample
      ? this.addModule(
          'conv_down',
          cbr(device, numChannels, numFilters * 4, { kernel: 1, paddingSame }, 'none'),
        )
      : null;
  }

  forward(x: Tensor): Tensor {
    const y = this.conv3.forward(this.conv2.forward(this.conv1.forward(x)));
    const residual = this.convDown ? this.convDown.forward(x) : x;
    return relu(add(y, residual));
  }
}

/** BasicBlock: conv1 3×3 CBR, conv2 3×3 CB, + identity, ReLU. */
export class BasicBlock extends Module {
  readonly conv1: ConvBNAct;
  readonly conv2: ConvBNAct;
  constructor(device: Device, numChannels: number, numFilters: number, paddingSame: boolean) {
    super(device);
    if (numChannels !== numFilters)
      throw new Error(`HRNet BasicBlock: ${numChannels} → ${numFilters} channels needs a downsample branch`);
    this.conv1 = this.addModule(
      'conv1',
      cbr(device, numChannels, numFilters, { kernel: 3, paddingSame }, 'relu'),
    );
    this.conv2 = this.addModule(
      'conv2',
      cbr(device, numFilters, numFilters, { kernel: 3, paddingSame }, 'none'),
    );
  }

  forward(x: Tensor): Tensor {
    return relu(add(this.conv2.forward(this.conv1.forward(x)), x));
  }
}

/** Layer1 (`la1`): Bottleneck blocks named `bb_layer2_<n>`; the first one projects with conv_down. */
export class Layer1 extends Module {
  readonly blocks: BottleneckBlock[] = [];
  constructor(
    device: Device,
    numChannels: number,
    numFilters: number,
    numBlocks: number,
    paddingSame: boolean,
  ) {
    super(device);
    for (let i = 0; i < numBlocks; i++) {
      const cin = i === 0 ? numChannels : numFilters * 4;
      this.blocks.push(
        this.addModule(
          `bb_layer2_${i + 1}`,
          new BottleneckBlock(device, cin, numFilters, i === 0, paddingSame),
        ),
      );
    }
  }

  forward(x: Tensor): Tensor {
    return this.blocks.reduce((h, b) => b.forward(h), x);
  }
}

/**
 * TransitionLayer (`tr<k>`): for each output branch i, `transition_tr<k>_layer_<i+1>` is a 3×3 CBR
 * when the channel count changes (i < #in) or a new stride-2 3×3 CBR from the last input branch.
 */
export class TransitionLayer extends Module {
  readonly convs: Array<ConvBNAct | null> = [];
  constructor(
    device: Device,
    inChannels: readonly number[],
    outChannels: readonly number[],
    name: string,
    paddingSame: boolean,
  ) {
    super(device);
    const numIn = inChannels.length;
    const last = inChannels[numIn - 1] ?? 0;
    outChannels.forEach((cout, i) => {
      const key = `transition_${name}_layer_${i + 1}`;
      if (i < numIn) {
        const cin = inChannels[i] ?? 0;
        this.convs.push(
          cin !== cout
            ? this.addModule(key, cbr(device, cin, cout, { kernel: 3, paddingSame }, 'relu'))
            : null,
        );
      } else {
        this.convs.push(
          this.addModule(key, cbr(device, last, cout, { kernel: 3, stride: 2, paddingSame }, 'relu')),
        );
      }
    });
  }

  forward(xs: readonly Tensor[]): Tensor[] {
    return this.convs.map((conv, i) => {
      const x = (i < xs.length ? xs[i] : xs[xs.length - 1]) as Tensor;
      return conv ? conv.forward(x) : x;
    });
  }
}

/** Branches (`branches_func`): BasicBlocks named `bb_<name>_branch_layer_<b>_<n>`. */
export class Branches extends Module {
  readonly blocks: BasicBlock[][] = [];
  constructor(
    device: Device,
    numBlocks: readonly number[],
    inChannels: readonly number[],
    outChannels: readonly number[],
    name: string,
    paddingSame: boolean,
  ) {
    super(device);
    outChannels.forEach((cout, i) => {
      const list: BasicBlock[] = [];
      for (let j = 0; j < (numBlocks[i] ?? 0); j++) {
        const cin = j === 0 ? (inChannels[i] ?? 0) : cout;
        list.push(
          this.addModule(
            `bb_${name}_branch_layer_${i + 1}_${j + 1}`,
            new BasicBlock(device, cin, cout, paddingSame),
          ),
        );
      }
      this.blocks.push(list);
    });
  }

  forward(xs: readonly Tensor[]): Tensor[] {
    return this.blocks.map((list, i) => list.reduce((h, b) => b.forward(h), xs[i] as Tensor));
  }
}

/**
 * FuseLayers (`fuse_func`): output i sums x[i], for j > i a 1×1 CB (`residual_<name>_layer_<i>_<j>`)
 * upsampled bilinearly to branch i, and for j < i a chain of i−j stride-2 3×3 convs
 * (`residual_<name>_layer_<i>_<j>_<k>`: CBR keeping c_j, the last a CB to c_i); then ReLU.
 */
export class FuseLayers extends Module {
  /** Per output i, per input j: the chain of convs (empty for j = i). */
  readonly paths: ConvBNAct[][][] = [];
  constructor(
    device: Device,
    inChannels: readonly number[],
    outChannels: readonly number[],
    name: string,
    readonly alignCorners: boolean,
    paddingSame: boolean,
    multiScaleOutput = true,
  ) {
    super(device);
    const actual = multiScaleOutput ? inChannels.length : 1;
    for (let i = 0; i < actual; i++) {
      const row: ConvBNAct[][] = [];
      const ci = outChannels[i] ?? 0;
      inChannels.forEach((cj, j) => {
        if (j > i) {
          row.push([
            this.addModule(
              `residual_${name}_layer_${i + 1}_${j + 1}`,
              cbr(device, cj, ci, { kernel: 1, paddingSame }, 'none'),
            ),
          ]);
        } else if (j < i) {
          const chain: ConvBNAct[] = [];
          let pre = cj;
          for (let k = 0; k < i - j; k++) {
            const key = `residual_${name}_layer_${i + 1}_${j + 1}_${k + 1}`;
            const lastConv = k === i - j - 1;
            const cout = lastConv ? ci : (outChannels[j] ?? 0);
            chain.push(
              this.addModule(
                key,
                cbr(device, pre, cout, { kernel: 3, stride: 2, paddingSame }, lastConv ? 'none' : 'relu'),
              ),
            );
            pre = cout;
          }
          row.push(chain);
        } else {
          row.push([]);
        }
      });
      this.paths.push(row);
    }
  }

  forward(xs: readonly Tensor[]): Tensor[] {
    return this.paths.map((row, i) => {
      let residual = xs[i] as Tensor;
      const [h = 0, w = 0] = residual.shape.slice(-2);
      row.forEach((chain, j) => {
        if (j > i) {
          const y = (chain[0] as ConvBNAct).forward(xs[j] as Tensor);
          residual = add(residual, resizeBilinear(y, [h, w], { alignCorners: this.alignCorners }));
        } else if (j < i) {
          residual = add(
            residual,
            chain.reduce((t, conv) => conv.forward(t), xs[j] as Tensor),
          );
        }
      });
      return relu(residual);
    });
  }
}

/** HighResolutionModule (`stage_<name>_<m>`): branches_func then fuse_func. */
export class HighResolutionModule extends Module {
  readonly branchesFunc: Branches;
  readonly fuseFunc: FuseLayers;
  constructor(
    device: Device,
    numChannels: readonly number[],
    numBlocks: readonly number[],
    numFilters: readonly number[],
    name: string,
    alignCorners: boolean,
    paddingSame: boolean,
    multiScaleOutput = true,
  ) {
    super(device);
    this.branchesFunc = this.addModule(
      'branches_func',
      new Branches(device, numBlocks, numChannels, numFilters, name, paddingSame),
    );
    this.fuseFunc = this.addModule(
      'fuse_func',
      new FuseLayers(device, numFilters, numFilters, name, alignCorners, paddingSame, multiScaleOutput),
    );
  }

  forward(xs: readonly Tensor[]): Tensor[] {
    return this.fuseFunc.forward(this.branchesFunc.forward(xs));
  }
}

/** Stage (`st<k>`): modules named `stage_<name>_<m>`. */
export class Stage extends Module {
  readonly modules: HighResolutionModule[] = [];
  constructor(
    device: Device,
    spec: HRNetStageSpec,
    name: string,
    alignCorners: boolean,
    paddingSame: boolean,
  ) {
    super(device);
    for (let m = 0; m < spec.numModules; m++) {
      this.modules.push(
        this.addModule(
          `stage_${name}_${m + 1}`,
          new HighResolutionModule(
            device,
            spec.numChannels,
            spec.numBlocks,
            spec.numChannels,
            `${name}_${m + 1}`,
            alignCorners,
            paddingSame,
          ),
        ),
      );
    }
  }

  forward(xs: readonly Tensor[]): Tensor[] {
    return this.modules.reduce<Tensor[]>((h, m) => m.forward(h), [...xs]);
  }
}

/** The HRNet backbone: one output, the four branches upsampled to 1/4 and concatenated. */
export class HRNet extends Module implements Backbone {
  readonly featChannels: readonly number[];
  readonly alignCorners: boolean;
  readonly pretrained: string | null;
  readonly convLayer1_1: ConvBNAct;
  readonly convLayer1_2: ConvBNAct;
  readonly la1: Layer1;
  readonly tr1: TransitionLayer;
  readonly st2: Stage;
  readonly tr2: TransitionLayer;
  readonly st3: Stage;
  readonly tr3: TransitionLayer;
  readonly st4: Stage;

  constructor(device: Device, o: HRNetOptions) {
    super(device);
    if (o.hasSe) throw new Error('HRNet: has_se=True (SE blocks) is not implemented');
    const paddingSame = o.paddingSame ?? true;
    const inChannels = o.inChannels ?? 3;
    const stem = o.stemChannels ?? 64;
    this.alignCorners = o.alignCorners ?? false;
    this.pretrained = o.pretrained ?? null;
    this.convLayer1_1 = this.addModule(
      'conv_layer1_1',
      cbr(device, inChannels, stem, { kernel: 3, stride: 2, paddingSame }, 'relu'),
    );
    this.convLayer1_2 = this.addModule(
      'conv_layer1_2',
      cbr(device, stem, stem, { kernel: 3, stride: 2, paddingSame }, 'relu'),
    );
    this.la1 = this.addModule(
      'la1',
      new Layer1(device, stem, o.stage1.numChannels, o.stage1.numBlocks, paddingSame),
    );
    this.tr1 = this.addModule(
      'tr1',
      new TransitionLayer(device, [o.stage1.numChannels * 4], o.stage2.numChannels, 'tr1', paddingSame),
    );
    this.st2 = this.addModule('st2', new Stage(device, o.stage2, 'st2', this.alignCorners, paddingSame));
    this.tr2 = this.addModule(
      'tr2',
      new TransitionLayer(device, o.stage2.numChannels, o.stage3.numChannels, 'tr2', paddingSame),
    );
    this.st3 = this.addModule('st3', new Stage(device, o.stage3, 'st3', this.alignCorners, paddingSame));
    this.tr3 = this.addModule(
      'tr3',
      new TransitionLayer(device, o.stage3.numChannels, o.stage4.numChannels, 'tr3', paddingSame),
    );
    this.st4 = this.addModule('st4', new Stage(device, o.stage4, 'st4', this.alignCorners, paddingSame));
    this.featChannels = [o.stage4.numChannels.reduce((a, b) => a + b, 0)];
  }

  forward(x: Tensor): Tensor[] {
    const la1 = this.la1.forward(this.convLayer1_2.forward(this.convLayer1_1.forward(x)));
    const st2 = this.st2.forward(this.tr1.forward([la1]));
    const st3 = this.st3.forward(this.tr2.forward(st2));
    const st4 = this.st4.forward(this.tr3.forward(st3));
    const first = st4[0] as Tensor;
    const [h = 0, w = 0] = first.shape.slice(-2);
    const ups = st4.slice(1).map((t) => resizeBilinear(t, [h, w], { alignCorners: this.alignCorners }));
    return [concat([first, ...ups], 1)];
  }
}

/** PaddleSeg's HRNet_W<w> presets: stage1 4×Bottleneck(64); stages 2–4 with 4 blocks per branch, widths w·[1, 2, 4, 8]. */
export function hrnetWidthSpec(width: number): Pick<HRNetOptions, 'stage1' | 'stage2' | 'stage3' | 'stage4'> {
  const c = [width, width * 2, width * 4, width * 8];
  return {
    stage1: { numBlocks: 4, numChannels: 64 },
    stage2: { numModules: 1, numBlocks: [4, 4], numChannels: c.slice(0, 2) },
    stage3: { numModules: 4, numBlocks: [4, 4, 4], numChannels: c.slice(0, 3) },
    stage4: { numModules: 3, numBlocks: [4, 4, 4, 4], numChannels: c.slice(0, 4) },
  };
}

/** Widths of the registered HRNet_W<w> backbones (PaddleSeg's manager registers all of these). */
export const HRNET_WIDTHS = [18, 30, 32, 40, 44, 48, 60, 64] as const;

function optBool(config: ComponentConfig, key: string, fallback: boolean): boolean {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean')
    throw new Error(`${config.type}: '${key}' must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** Builds HRNet_W<width> from a backbone config block (in_channels, has_se, align_corners, padding_same, pretrained). */
export function hrnetFromConfig(device: Device, width: number, config: ComponentConfig): HRNet {
  const known = new Set(['type', 'in_channels', 'has_se', 'align_corners', 'padding_same', 'pretrained']);
  const extra = Object.keys(config).filter((k) => !known.has(k));
  if (extra.length) throw new Error(`${config.type}: unexpected argument(s) ${extra.join(', ')}`);
  const inChannels = config.in_channels ?? 3;
  if (typeof inChannels !== 'number' || !Number.isInteger(inChannels) || inChannels < 1)
    throw new Error(
      `${config.type}: 'in_channels' must be a positive integer, got ${JSON.stringify(inChannels)}`,
    );
  const pretrained = config.pretrained ?? null;
  if (pretrained !== null && typeof pretrained !== 'string')
    throw new Error(`${config.type}: 'pretrained' must be a path or null`);
  return new HRNet(device, {
    ...hrnetWidthSpec(width),
    inChannels,
    hasSe: optBool(config, 'has_se', false),
    alignCorners: optBool(config, 'align_corners', false),
    paddingSame: optBool(config, 'padding_same', true),
    pretrained,
  });
}
