import { Conv2d, ConvBNAct, Dropout, Linear, Module } from '@segtrain/nn';
import { concat, type Device, reshape, resizeBilinear, type Tensor, transpose } from '@segtrain/tensor';
import type { Backbone, SegModel } from '../registry.js';
import { mapToTokens } from './mix_transformer.js';

/** PaddleSeg's segformer.MLP: flatten the map to tokens, Linear(input_dim → embed_dim) (Paddle default init). */
export class SegFormerMLP extends Module {
  readonly proj: Linear;
  constructor(device: Device, inputDim: number, embedDim: number) {
    super(device);
    this.proj = this.addModule('proj', new Linear(device, inputDim, embedDim));
  }

  /** [N, C, H, W] → [N, E, H, W] (tokens through the Linear, then back to a map). */
  forward(x: Tensor): Tensor {
    const [n = 1, , h = 1, w = 1] = x.shape;
    const t = this.proj.forward(mapToTokens(x));
    return reshape(transpose(t, [0, 2, 1]), [n, t.shape[2] ?? 1, h, w]);
  }
}

export interface SegFormerOptions {
  readonly numClasses: number;
  readonly embeddingDim: number;
  readonly alignCorners?: boolean;
  /** Kept for the caller to load (PaddleSeg's load_entire_model); not read here. */
  readonly pretrained?: string | null;
}

/**
 * PaddleSeg's SegFormer (all-MLP decoder) over any backbone with one feature map per stage:
 * `linear_c<S>` … `linear_c1` (registered in that order, as Paddle does for c4…c1), maps resized to
 * the stage-1 size and concatenated as [c_S, …, c1] → `linear_fuse` (1×1 conv without bias + BN +
 * ReLU) → Dropout2D(0.1) → `linear_pred` (1×1 conv) → bilinear resize to the input's H×W. One output
 * in training and in eval.
 */
export class SegFormer extends Module implements SegModel {
  readonly backbone: Backbone;
  readonly linears: SegFormerMLP[];
  readonly dropout: Dropout;
  readonly linearFuse: ConvBNAct;
  readonly linearPred: Conv2d;
  readonly alignCorners: boolean;
  readonly pretrained: string | null;
  readonly numClasses: number;
  constructor(device: Device, backbone: Backbone, o: SegFormerOptions) {
    super(device);
    this.backbone = this.addModule('backbone', backbone);
    this.numClasses = o.numClasses;
    this.alignCorners = o.alignCorners ?? false;
    this.pretrained = o.pretrained ?? null;
    const chans = backbone.featChannels;
    const e = o.embeddingDim;
    // Paddle registers linear_c4, linear_c3, linear_c2, linear_c1 (state-dict order).
    const linears: SegFormerMLP[] = [];
    for (let s = chans.length; s >= 1; s--)
      linears[s - 1] = this.addModule(`linear_c${s}`, new SegFormerMLP(device, chans[s - 1] ?? 0, e));
    this.linears = linears;
    this.dropout = this.addModule('dropout', new Dropout(device, 0.1, 'channel'));
    this.linearFuse = this.addModule(
      'linear_fuse',
      new ConvBNAct(device, e * chans.length, e, { kernel: 1, bias: false }, 'relu'),
    );
    this.linearPred = this.addModule(
      'linear_pred',
      new Conv2d(device, e, o.numClasses, { kernel: 1, bias: true }),
    );
  }

  forward(x: Tensor): Tensor[] {
    const feats = this.backbone.forward(x);
    const c1 = feats[0];
    if (!c1 || feats.length !== this.linears.length)
      throw new Error(`SegFormer: the backbone gave ${feats.length} maps, expected ${this.linears.length}`);
    const size: [number, number] = [c1.shape[2] ?? 1, c1.shape[3] ?? 1];
    const opts = { alignCorners: this.alignCorners };
    const parts: Tensor[] = [];
    for (let s = feats.length - 1; s >= 0; s--) {
      const m = (this.linears[s] as SegFormerMLP).forward(feats[s] as Tensor);
      parts.push(s === 0 ? m : resizeBilinear(m, size, opts));
    }
    const fused = this.linearFuse.forward(concat(parts, 1));
    const logit = this.linearPred.forward(this.dropout.forward(fused));
    return [resizeBilinear(logit, [x.shape[2] ?? 1, x.shape[3] ?? 1], opts)];
  }
}
