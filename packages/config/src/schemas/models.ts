import { z } from 'zod';
import { component, positiveInt, pretrained, unionOf } from './common.js';

const inChannels = z.union([z.literal(1), z.literal(3)]).default(3);
const mitBackbone = <const N extends string>(name: N) =>
  component(name, {
    pretrained,
    in_channels: inChannels,
    drop_rate: z.number().min(0).max(1).default(0),
    attn_drop_rate: z.number().min(0).max(1).default(0),
    drop_path_rate: z.number().min(0).max(1).default(0.1),
  });
const hrnetBackbone = <const N extends string>(name: N) =>
  component(name, {
    pretrained,
    in_channels: inChannels,
    has_se: z.boolean().default(false),
    align_corners: z.boolean().default(false),
    padding_same: z.boolean().default(true),
  });
const stdcBackbone = <const N extends string>(name: N) =>
  component(name, {
    pretrained,
    in_channels: inChannels,
    use_conv_last: z.boolean().default(false),
    // segtrain extension: 'paddle' keeps PaddleSeg's N(0, 0.001) conv init (made to be overwritten by
    // pretrained weights); 'he' trains from scratch (spec: FIELD-NOTES, the embedded demo).
    init: z.enum(['paddle', 'he']).default('paddle'),
  });

export const backboneSchemas = {
  STDC1: stdcBackbone('STDC1'),
  STDC2: stdcBackbone('STDC2'),
  HRNet_W18: hrnetBackbone('HRNet_W18'),
  HRNet_W48: hrnetBackbone('HRNet_W48'),
  MixVisionTransformer_B0: mitBackbone('MixVisionTransformer_B0'),
  MixVisionTransformer_B1: mitBackbone('MixVisionTransformer_B1'),
  MixVisionTransformer_B2: mitBackbone('MixVisionTransformer_B2'),
  MixVisionTransformer_B3: mitBackbone('MixVisionTransformer_B3'),
  MixVisionTransformer_B4: mitBackbone('MixVisionTransformer_B4'),
  MixVisionTransformer_B5: mitBackbone('MixVisionTransformer_B5'),
};
export const backboneConfig = unionOf(backboneSchemas);
export type BackboneConfig = z.output<typeof backboneConfig>;

const channelList = z.array(positiveInt).min(1);

export const modelSchemas = {
  PPLiteSeg: component('PPLiteSeg', {
    num_classes: positiveInt.optional(),
    backbone: backboneConfig,
    backbone_indices: z.array(z.int().min(0)).default([2, 3, 4]),
    arm_type: z
      .enum(['UAFM_SpAtten', 'UAFM_ChAtten', 'UAFM_SpAtten_S', 'UAFM_ChAtten_S', 'UAFM'])
      .default('UAFM_SpAtten'),
    cm_bin_sizes: channelList.default([1, 2, 4]),
    cm_out_ch: positiveInt.default(128),
    arm_out_chs: channelList.default([64, 96, 128]),
    seg_head_inter_chs: channelList.default([64, 64, 64]),
    resize_mode: z.enum(['bilinear', 'nearest']).default('bilinear'),
    pretrained,
  }).superRefine((m, ctx) => {
    const n = m.backbone_indices.length;
    for (const key of ['arm_out_chs', 'seg_head_inter_chs'] as const) {
      if (m[key].length !== n) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `needs one entry per backbone index (${n}), has ${m[key].length}`,
        });
      }
    }
  }),
  OCRNet: component('OCRNet', {
    num_classes: positiveInt.optional(),
    backbone: backboneConfig,
    backbone_indices: z.array(z.int().min(0)).min(1).max(2).default([0]),
    ocr_mid_channels: positiveInt.default(512),
    ocr_key_channels: positiveInt.default(256),
    align_corners: z.boolean().default(false),
    pretrained,
  }),
  SegFormer: component('SegFormer', {
    num_classes: positiveInt.optional(),
    backbone: backboneConfig,
    embedding_dim: positiveInt,
    align_corners: z.boolean().default(false),
    pretrained,
  }),
};
export const modelConfig = unionOf(modelSchemas);
export type ModelConfig = z.output<typeof modelConfig>;
