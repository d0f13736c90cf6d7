import { Conv2d, ConvBNAct, Dropout, Module, Sequential } from '@segtrain/nn';
import {
  concat,
  type Device,
  matmul,
  reshape,
  resizeBilinear,
  scale,
  softmax,
  type Tensor,
  transpose,
} from '@segtrain/tensor';
import type { Backbone, SegModel } from '../registry.js';
import { convInit } from './hrnet.js';

/**
 * OCRNet as PaddleSeg builds it (paddleseg/models/ocrnet.py). The head's ConvBNReLU convs keep
 * Paddle's default conv bias; every head conv weight is initialised normal(0, 0.001), biases 0.
 */

/** PaddleSeg's layers.ConvBNReLU with a conv bias ('same' padding unless given). */
function convBNReLU(device: Device, cin: number, cout: number, kernel: number, padding?: number): ConvBNAct {
  return new ConvBNAct(
    device,
    cin,
    cout,
    { kernel, bias: true, weightInit: convInit, ...(padding === undefined ? {} : { padding }) },
    'relu',
  );
}

/**
 * SpatialGatherBlock: soft object regions (softmax of each region map over all H·W positions) times
 * the pixel representations → object representations [N, C, K, 1]. No parameters.
 */
export function spatialGather(pixels: Tensor, regions: Tensor): Tensor {
  const [n = 0, c = 0] = pixels.shape;
  const k = regions.shape[1] ?? 0;
  const p = transpose(reshape(pixels, [n, c, -1]), [0, 2, 1]); // [N, HW, C]
  const r = softmax(reshape(regions, [n, k, -1]), 2); // [N, K, HW]
  const feats = transpose(matmul(r, p), [0, 2, 1]); // [N, C, K]
  return reshape(feats, [n, c, k, 1]);
}

/** ObjectAttentionBlock: pixels attend over the K object representations. */
export class ObjectAttentionBlock extends Module {
  readonly fPixel: Sequential;
  readonly fObject: Sequential;
  readonly fDown: ConvBNAct;
  readonly fUp: ConvBNAct;
  constructor(
    device: Device,
    readonly inChannels: number,
    readonly keyChannels: number,
  ) {
    super(device);
    this.fPixel = this.addModule(
      'f_pixel',
      new Sequential(device, [
        convBNReLU(device, inChannels, keyChannels, 1),
        convBNReLU(device, keyChannels, keyChannels, 1),
      ]),
    );
    this.fObject = this.addModule(
      'f_object',
      new Sequential(device, [
        convBNReLU(device, inChannels, keyChannels, 1),
        convBNReLU(device, keyChannels, keyChannels, 1),
      ]),
    );
    this.fDown = this.addModule('f_down', convBNReLU(device, inChannels, keyChannels, 1));
    this.fUp = this.addModule('f_up', convBNReLU(device, keyChannels, inChannels, 1));
  }

  forward(x: Tensor, proxy: Tensor): Tensor {
    const [n = 0, , h = 0, w = 0] = x.shape;
    const kc = this.keyChannels;
    const query = transpose(reshape(this.fPixel.forward(x), [n, kc, -1]), [0, 2, 1]); // [N, HW, key]
    const key = reshape(this.fObject.forward(proxy), [n, kc, -1]); // [N, key, K]
    const value = transpose(reshape(this.fDown.forward(proxy), [n, kc, -1]), [0, 2, 1]); // [N, K, key]
    const sim = softmax(scale(matmul(query, key), kc ** -0.5), -1); // [N, HW, K]
    const context = reshape(transpose(matmul(sim, value), [0, 2, 1]), [n, kc, h, w]);
    return this.fUp.forward(context);
  }
}

/** SpatialOCRModule: concat[context, pixels] → ConvBNReLU 1×1 → Dropout2D. */
export class SpatialOCRModule extends Module {
  readonly attentionBlock: ObjectAttentionBlock;
  readonly conv1x1: Sequential;
  constructor(
    device: Device,
    inChannels: number,
    keyChannels: number,
    outChannels: number,
    dropoutRate = 0.1,
  ) {
    super(device);
    this.attentionBlock = this.addModule(
      'attention_block',
      new ObjectAttentionBlock(device, inChannels, keyChannels),
    );
    this.conv1x1 = this.addModule(
      'conv1x1',
      new Sequential(device, [
        convBNReLU(device, 2 * inChannels, outChannels, 1),
        new Dropout(device, dropoutRate, 'channel'),
      ]),
    );
  }

  forward(pixels: Tensor, regions: Tensor): Tensor {
    const context = this.attentionBlock.forward(pixels, regions);
    return this.conv1x1.forward(concat([context, pixels], 1));
  }
}

export interface OCRHeadOptions {
  readonly numClasses: number;
  readonly inChannels: readonly number[];
  readonly ocrMidChannels?: number;
  readonly ocrKeyChannels?: number;
  readonly dropoutRate?: number;
}

/** OCRHead: aux soft regions, pixel rep, gather, object attention, classifier → [logit, soft_regions]. */
export class OCRHead extends Module {
  readonly indices: readonly [number, number];
  readonly spatialOcr: SpatialOCRModule;
  readonly conv3x3Ocr: ConvBNAct;
  readonly clsHead: Conv2d;
  readonly auxHead: Sequential;
  constructor(device: Device, o: OCRHeadOptions) {
    super(device);
    const mid = o.ocrMidChannels ?? 512;
    const key = o.ocrKeyChannels ?? 256;
    const ch = o.inChannels;
    this.indices = ch.length > 1 ? [-2, -1] : [-1, -1];
    const shallow = ch.at(this.indices[0]) ?? 0;
    const deep = ch.at(this.indices[1]) ?? 0;
    // Registration order as Paddle's __init__: spatial_gather (no params), spatial_ocr, conv3x3_ocr, cls_head, aux_head.
    this.spatialOcr = this.addModule(
      'spatial_ocr',
      new SpatialOCRModule(device, mid, key, mid, o.dropoutRate ?? 0.1),
    );
    this.conv3x3Ocr = this.addModule('conv3x3_ocr', convBNReLU(device, deep, mid, 3, 1));
    this.clsHead = this.addModule(
      'cls_head',
      new Conv2d(device, mid, o.numClasses, { kernel: 1, bias: true, weightInit: convInit }),
    );
    this.auxHead = this.addModule(
      'aux_head',
      new Sequential(device, [
        convBNReLU(device, shallow, shallow, 1),
        new Conv2d(device, shallow, o.numClasses, { kernel: 1, bias: true, weightInit: convInit }),
      ]),
    );
  }

  forward(feats: readonly Tensor[]): [Tensor, Tensor] {
    const shallow = feats.at(this.indices[0]) as Tensor;
    const deep = feats.at(this.indices[1]) as Tensor;
    const softRegions = this.auxHead.forward(shallow);
    const pixels = this.conv3x3Ocr.forward(deep);
    const objectRegions = spatialGather(pixels, softRegions);
    const ocr = this.spatialOcr.forward(pixels, objectRegions);
    return [this.clsHead.forward(ocr), softRegions];
  }
}

export interface OCRNetOptions {
  readonly numClasses: number;
  readonly backboneIndices?: readonly number[];
  readonly ocrMidChannels?: number;
  readonly ocrKeyChannels?: number;
  readonly alignCorners?: boolean;
  /** Kept for the trainer's pretrained loader; not loaded here. */
  readonly pretrained?: string | null;
}

/** OCRNet: backbone → OCR head; logits resized to the input (train [main, aux], eval [main]). */
export class OCRNet extends Module implements SegModel {
  readonly backbone: Backbone;
  readonly head: OCRHead;
  readonly backboneIndices: readonly number[];
  readonly alignCorners: boolean;
  readonly pretrained: string | null;
  constructor(device: Device, backbone: Backbone, o: OCRNetOptions) {
    super(device);
    this.backboneIndices = o.backboneIndices ?? [0];
    this.alignCorners = o.alignCorners ?? false;
    this.pretrained = o.pretrained ?? null;
    const inChannels = this.backboneIndices.map((i) => {
      const c = backbone.featChannels[i];
      if (c === undefined)
        throw new Error(
          `OCRNet: backbone_indices ${JSON.stringify(this.backboneIndices)} out of range for ${backbone.featChannels.length} backbone feature(s)`,
        );
      return c;
    });
    this.backbone = this.addModule('backbone', backbone);
    this.head = this.addModule(
      'head',
      new OCRHead(device, {
        numClasses: o.numClasses,
        inChannels,
        ocrMidChannels: o.ocrMidChannels ?? 512,
        ocrKeyChannels: o.ocrKeyChannels ?? 256,
      }),
    );
  }

  forward(x: Tensor): Tensor[] {
    const all = this.backbone.forward(x);
    const feats = this.backboneIndices.map((i) => all[i] as Tensor);
    let logits: Tensor[] = this.head.forward(feats);
    if (!this.training) logits = [logits[0] as Tensor];
    const [h = 0, w = 0] = x.shape.slice(-2);
    return logits.map((l) => resizeBilinear(l, [h, w], { alignCorners: this.alignCorners }));
  }
}
