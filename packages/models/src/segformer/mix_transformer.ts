import {
  Conv2d,
  constant,
  Dropout,
  kaimingNormalFanOut,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  truncNormal,
} from '@segtrain/nn';
import {
  add,
  type Device,
  gelu,
  matmul,
  reshape,
  scale,
  slice,
  softmax,
  type Tensor,
  transpose,
} from '@segtrain/tensor';
import type { Backbone } from '../registry.js';

/*
 * PaddleSeg's MixVisionTransformer (paddleseg/models/backbones/mix_transformer.py), module for module
 * and name for name. Tokens are kept as [N, H·W, C] tensors between layers, as Paddle does.
 */

/** The MiT encoder initialisers (`_init_weights`): trunc-normal 0.02 Linear, normal(0, √(2/fan_out)) conv, zero biases. */
const mitLinear = (device: Device, inF: number, outF: number, bias = true) =>
  new Linear(device, inF, outF, { bias, weightInit: truncNormal(0.02) });

/** [N, C, H, W] → [N, H·W, C] (Paddle `x.flatten(2).transpose([0, 2, 1])`). */
export function mapToTokens(x: Tensor): Tensor {
  const [n = 1, c = 1, h = 1, w = 1] = x.shape;
  return transpose(reshape(x, [n, c, h * w]), [0, 2, 1]);
}

/** [N, H·W, C] → [N, C, H, W] (Paddle `x.transpose([0, 2, 1]).reshape([B, C, H, W])`). */
export function tokensToMap(x: Tensor, h: number, w: number): Tensor {
  const [n = 1, , c = 1] = x.shape;
  return reshape(transpose(x, [0, 2, 1]), [n, c, h, w]);
}

/** Conv patch embedding with overlap (kernel k, stride s, padding k//2), then LayerNorm (eps 1e-5). */
export class OverlapPatchEmbed extends Module {
  readonly proj: Conv2d;
  readonly norm: LayerNorm;
  constructor(device: Device, patchSize: number, stride: number, inChans: number, embedDim: number) {
    super(device);
    this.proj = this.addModule(
      'proj',
      new Conv2d(device, inChans, embedDim, {
        kernel: patchSize,
        stride,
        padding: Math.floor(patchSize / 2),
        bias: true,
        weightInit: kaimingNormalFanOut(1),
        biasInit: constant(0),
      }),
    );
    this.norm = this.addModule('norm', new LayerNorm(device, embedDim, 1e-5));
  }

  /** Returns tokens [N, H·W, C] and the token grid H×W. */
  forward(x: Tensor): { tokens: Tensor; h: number; w: number } {
    const y = this.proj.forward(x);
    const [, , h = 1, w = 1] = y.shape;
    return { tokens: this.norm.forward(mapToTokens(y)), h, w };
  }
}

/** Efficient self-attention: keys/values from a sr×sr strided-conv reduced map (+ LayerNorm 1e-5) when sr > 1. */
export class Attention extends Module {
  readonly q: Linear;
  readonly kv: Linear;
  readonly attnDrop: Dropout;
  readonly proj: Linear;
  readonly projDrop: Dropout;
  readonly sr: Conv2d | null = null;
  readonly norm: LayerNorm | null = null;
  readonly scale: number;
  constructor(
    device: Device,
    readonly dim: number,
    readonly numHeads: number,
    o: { qkvBias: boolean; qkScale: number | null; attnDrop: number; projDrop: number; srRatio: number },
  ) {
    super(device);
    if (dim % numHeads) throw new Error(`Attention: dim ${dim} should be divided by num_heads ${numHeads}`);
    const headDim = dim / numHeads;
    this.scale = o.qkScale || headDim ** -0.5;
    this.q = this.addModule('q', mitLinear(device, dim, dim, o.qkvBias));
    this.kv = this.addModule('kv', mitLinear(device, dim, dim * 2, o.qkvBias));
    this.attnDrop = this.addModule('attn_drop', new Dropout(device, o.attnDrop));
    this.proj = this.addModule('proj', mitLinear(device, dim, dim));
    this.projDrop = this.addModule('proj_drop', new Dropout(device, o.projDrop));
    if (o.srRatio > 1) {
      this.sr = this.addModule(
        'sr',
        new Conv2d(device, dim, dim, {
          kernel: o.srRatio,
          stride: o.srRatio,
          padding: 0,
          bias: true,
          weightInit: kaimingNormalFanOut(1),
          biasInit: constant(0),
        }),
      );
      this.norm = this.addModule('norm', new LayerNorm(device, dim, 1e-5));
    }
  }

  forward(x: Tensor, h: number, w: number): Tensor {
    const [b = 1, n = 1] = x.shape;
    const heads = this.numHeads;
    const c = this.dim;
    const d = c / heads;
    // q: [B, N, heads, d] → [B, heads, N, d] → [B·heads, N, d]
    const q = reshape(transpose(reshape(this.q.forward(x), [b, n, heads, d]), [0, 2, 1, 3]), [
      b * heads,
      n,
      d,
    ]);
    let src = x;
    if (this.sr && this.norm) src = this.norm.forward(mapToTokens(this.sr.forward(tokensToMap(x, h, w))));
    const nk = src.shape[1] ?? 1;
    // kv: [B, Nk, 2, heads, d] → [2, B, heads, Nk, d] → [2·B·heads, Nk, d]; k = kv[0], v = kv[1]
    const kv = reshape(transpose(reshape(this.kv.forward(src), [b, nk, 2, heads, d]), [2, 0, 3, 1, 4]), [
      2 * b * heads,
      nk,
      d,
    ]);
    const k = slice(kv, 0, 0, b * heads);
    const v = slice(kv, 0, b * heads, b * heads);
    let attn = softmax(scale(matmul(q, transpose(k, [0, 2, 1])), this.scale), -1);
    attn = this.attnDrop.forward(attn);
    // [B·heads, N, d] → [B, heads, N, d] → [B, N, heads, d] → [B, N, C]
    const out = reshape(transpose(reshape(matmul(attn, v), [b, heads, n, d]), [0, 2, 1, 3]), [b, n, c]);
    return this.projDrop.forward(this.proj.forward(out));
  }
}

/** Depthwise 3×3 conv (bias) on the token grid; child named `dwconv` as in Paddle's DWConv. */
export class DWConv extends Module {
  readonly dwconv: Conv2d;
  constructor(device: Device, dim: number) {
    super(device);
    this.dwconv = this.addModule(
      'dwconv',
      new Conv2d(device, dim, dim, {
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: dim,
        bias: true,
        weightInit: kaimingNormalFanOut(dim),
        biasInit: constant(0),
      }),
    );
  }

  forward(x: Tensor, h: number, w: number): Tensor {
    return mapToTokens(this.dwconv.forward(tokensToMap(x, h, w)));
  }
}

/** Mix-FFN: fc1 → depthwise 3×3 → GELU (erf) → dropout → fc2 → dropout. */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly dwconv: DWConv;
  readonly fc2: Linear;
  readonly drop: Dropout;
  constructor(device: Device, inFeatures: number, hiddenFeatures: number, drop: number) {
    super(device);
    this.fc1 = this.addModule('fc1', mitLinear(device, inFeatures, hiddenFeatures));
    this.dwconv = this.addModule('dwconv', new DWConv(device, hiddenFeatures));
    this.fc2 = this.addModule('fc2', mitLinear(device, hiddenFeatures, inFeatures));
    this.drop = this.addModule('drop', new Dropout(device, drop));
  }

  forward(x: Tensor, h: number, w: number): Tensor {
    const y = this.drop.forward(gelu(this.dwconv.forward(this.fc1.forward(x), h, w)));
    return this.drop.forward(this.fc2.forward(y));
  }
}

export interface BlockOptions {
  readonly mlpRatio: number;
  readonly qkvBias: boolean;
  readonly qkScale: number | null;
  readonly drop: number;
  readonly attnDrop: number;
  readonly dropPath: number;
  readonly srRatio: number;
  /** LayerNorm eps of norm1/norm2 (MiT-B*: 1e-6). */
  readonly normEps: number;
}

/** Pre-norm transformer block: x += DropPath(Attn(LN(x))); x += DropPath(MixFFN(LN(x))). */
export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly dropPath: Dropout;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  constructor(device: Device, dim: number, numHeads: number, o: BlockOptions) {
    super(device);
    this.norm1 = this.addModule('norm1', new LayerNorm(device, dim, o.normEps));
    this.attn = this.addModule(
      'attn',
      new Attention(device, dim, numHeads, {
        qkvBias: o.qkvBias,
        qkScale: o.qkScale,
        attnDrop: o.attnDrop,
        projDrop: o.drop,
        srRatio: o.srRatio,
      }),
    );
    this.dropPath = this.addModule('drop_path', new Dropout(device, o.dropPath, 'path'));
    this.norm2 = this.addModule('norm2', new LayerNorm(device, dim, o.normEps));
    this.mlp = this.addModule('mlp', new Mlp(device, dim, Math.trunc(dim * o.mlpRatio), o.drop));
  }

  forward(x: Tensor, h: number, w: number): Tensor {
    const y = add(x, this.dropPath.forward(this.attn.forward(this.norm1.forward(x), h, w)));
    return add(y, this.dropPath.forward(this.mlp.forward(this.norm2.forward(y), h, w)));
  }
}

export interface MixVisionTransformerOptions {
  /** Channels per stage (MiT-B0: [32, 64, 160, 256]); the number of stages is its length (PaddleSeg: 4). */
  readonly embedDims: readonly number[];
  readonly numHeads: readonly number[];
  readonly depths: readonly number[];
  readonly srRatios: readonly number[];
  readonly mlpRatios?: readonly number[];
  readonly inChannels?: number;
  readonly qkvBias?: boolean;
  readonly qkScale?: number | null;
  readonly dropRate?: number;
  readonly attnDropRate?: number;
  readonly dropPathRate?: number;
  /** LayerNorm eps of the blocks and stage-end norms (MiT-B*: 1e-6). */
  readonly normEps?: number;
  /** Kept for the caller to load (PaddleSeg loads it in init_weight); not read here. */
  readonly pretrained?: string | null;
}

/** paddle.linspace(0, end, n) (float32 values, as Paddle computes them). */
export function dropPathRates(end: number, n: number): number[] {
  if (n <= 1) return n === 1 ? [0] : [];
  return Array.from({ length: n }, (_, i) => Math.fround((end * i) / (n - 1)));
}

/**
 * The MiT encoder. State names `patch_embed<s>.{proj,norm}.*`, `block<s>.<i>.*`, `norm<s>.*`
 * (s from 1), in Paddle's order: all patch embeds first, then block1, norm1, block2, norm2, ...
 * Outputs one NCHW map per stage (strides 4, 8, 16, 32).
 */
export class MixVisionTransformer extends Module implements Backbone {
  readonly featChannels: readonly number[];
  readonly patchEmbeds: OverlapPatchEmbed[];
  readonly blocks: ModuleList<Block>[];
  readonly norms: LayerNorm[];
  readonly pretrained: string | null;
  constructor(device: Device, o: MixVisionTransformerOptions) {
    super(device);
    const stages = o.embedDims.length;
    for (const [name, list] of [
      ['numHeads', o.numHeads],
      ['depths', o.depths],
      ['srRatios', o.srRatios],
      ['mlpRatios', o.mlpRatios ?? o.embedDims],
    ] as const) {
      if (list.length !== stages)
        throw new Error(`MixVisionTransformer: ${name} has ${list.length} entries for ${stages} stages`);
    }
    this.featChannels = [...o.embedDims];
    this.pretrained = o.pretrained ?? null;
    const normEps = o.normEps ?? 1e-6;
    const dims = o.embedDims;
    this.patchEmbeds = dims.map((dim, s) =>
      this.addModule(
        `patch_embed${s + 1}`,
        s === 0
          ? new OverlapPatchEmbed(device, 7, 4, o.inChannels ?? 3, dim)
          : new OverlapPatchEmbed(device, 3, 2, dims[s - 1] ?? 0, dim),
      ),
    );
    const total = o.depths.reduce((a, b) => a + b, 0);
    const dpr = dropPathRates(o.dropPathRate ?? 0, total);
    let cur = 0;
    this.blocks = [];
    this.norms = [];
    for (let s = 0; s < stages; s++) {
      const dim = dims[s] ?? 0;
      const depth = o.depths[s] ?? 0;
      const blocks = Array.from(
        { length: depth },
        (_, i) =>
          new Block(device, dim, o.numHeads[s] ?? 1, {
            mlpRatio: o.mlpRatios?.[s] ?? 4,
            qkvBias: o.qkvBias ?? false,
            qkScale: o.qkScale ?? null,
            drop: o.dropRate ?? 0,
            attnDrop: o.attnDropRate ?? 0,
            dropPath: dpr[cur + i] ?? 0,
            srRatio: o.srRatios[s] ?? 1,
            normEps,
          }),
      );
      this.blocks.push(this.addModule(`block${s + 1}`, new ModuleList(device, blocks)));
      this.norms.push(this.addModule(`norm${s + 1}`, new LayerNorm(device, dim, normEps)));
      cur += depth;
    }
  }

  forward(x: Tensor): Tensor[] {
    const outs: Tensor[] = [];
    let map = x;
    for (let s = 0; s < this.patchEmbeds.length; s++) {
      const embed = this.patchEmbeds[s] as OverlapPatchEmbed;
      const { tokens, h, w } = embed.forward(map);
      let t = tokens;
      for (const blk of (this.blocks[s] as ModuleList<Block>).items) t = blk.forward(t, h, w);
      t = (this.norms[s] as LayerNorm).forward(t);
      map = tokensToMap(t, h, w);
      outs.push(map);
    }
    return outs;
  }
}

/** The MiT-B0…B5 presets (PaddleSeg `MixVisionTransformer_B<k>`). */
export const MIT_VARIANTS = {
  MixVisionTransformer_B0: { embedDims: [32, 64, 160, 256], depths: [2, 2, 2, 2] },
  MixVisionTransformer_B1: { embedDims: [64, 128, 320, 512], depths: [2, 2, 2, 2] },
  MixVisionTransformer_B2: { embedDims: [64, 128, 320, 512], depths: [3, 4, 6, 3] },
  MixVisionTransformer_B3: { embedDims: [64, 128, 320, 512], depths: [3, 4, 18, 3] },
  MixVisionTransformer_B4: { embedDims: [64, 128, 320, 512], depths: [3, 8, 27, 3] },
  MixVisionTransformer_B5: { embedDims: [64, 128, 320, 512], depths: [3, 6, 40, 3] },
} as const satisfies Record<string, { embedDims: readonly number[]; depths: readonly number[] }>;

export type MitVariant = keyof typeof MIT_VARIANTS;

/** Options of a preset: heads [1, 2, 5, 8], sr [8, 4, 2, 1], mlp ratio 4, qkv bias, LN eps 1e-6, drop path 0.1. */
export function mitPreset(variant: MitVariant): MixVisionTransformerOptions {
  const v = MIT_VARIANTS[variant];
  return {
    embedDims: v.embedDims,
    depths: v.depths,
    numHeads: [1, 2, 5, 8],
    srRatios: [8, 4, 2, 1],
    mlpRatios: [4, 4, 4, 4],
    qkvBias: true,
    qkScale: null,
    normEps: 1e-6,
    inChannels: 3,
    dropRate: 0,
    attnDropRate: 0,
    dropPathRate: 0.1,
    pretrained: null,
  };
}
