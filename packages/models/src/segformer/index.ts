import type { Device } from '@segtrain/tensor';
import { buildBackbone, type ComponentConfig, registerBackbone, registerModel } from '../registry.js';
import { MIT_VARIANTS, type MitVariant, MixVisionTransformer, mitPreset } from './mix_transformer.js';
import { SegFormer } from './segformer.js';

export {
  Attention,
  Block,
  DWConv,
  dropPathRates,
  MIT_VARIANTS,
  type MitVariant,
  MixVisionTransformer,
  type MixVisionTransformerOptions,
  Mlp,
  mitPreset,
  OverlapPatchEmbed,
} from './mix_transformer.js';
export { SegFormer, SegFormerMLP, type SegFormerOptions } from './segformer.js';

function fail(type: string, msg: string): never {
  throw new Error(`${type}: ${msg}`);
}

function numberArg(type: string, config: ComponentConfig, key: string, fallback: number): number {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v))
    fail(type, `'${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function rateArg(type: string, config: ComponentConfig, key: string, fallback: number): number {
  const v = numberArg(type, config, key, fallback);
  if (v < 0 || v >= 1) fail(type, `'${key}' must be in [0, 1), got ${v}`);
  return v;
}

function pretrainedArg(type: string, config: ComponentConfig): string | null {
  const v = config.pretrained;
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') fail(type, `'pretrained' must be a path or URL, got ${JSON.stringify(v)}`);
  return v;
}

function checkKeys(type: string, config: ComponentConfig, allowed: readonly string[]): void {
  const unknown = Object.keys(config).filter((k) => k !== 'type' && !allowed.includes(k));
  if (unknown.length)
    fail(
      type,
      `unknown argument(s) ${unknown.map((k) => `'${k}'`).join(', ')}; accepted: ${allowed.join(', ')}`,
    );
}

/**
 * `MixVisionTransformer_B<k>` from a config block. Accepted keys are the keyword arguments the Paddle
 * preset forwards (in_channels, qk_scale, attn_drop_rate, pretrained; img_size and num_classes are
 * accepted and unused). drop_rate and drop_path_rate are accepted as overrides of the preset's 0 and
 * 0.1 (Paddle's preset passes them itself, so Paddle would reject them as duplicate keywords).
 */
export function buildMixVisionTransformer(device: Device, config: ComponentConfig): MixVisionTransformer {
  const type = config.type;
  if (!(type in MIT_VARIANTS)) fail(type, 'not a MixVisionTransformer preset');
  checkKeys(type, config, [
    'in_channels',
    'qk_scale',
    'drop_rate',
    'attn_drop_rate',
    'drop_path_rate',
    'pretrained',
    'img_size',
    'num_classes',
  ]);
  const preset = mitPreset(type as MitVariant);
  const inChannels = numberArg(type, config, 'in_channels', 3);
  if (!Number.isInteger(inChannels) || inChannels < 1)
    fail(type, `'in_channels' must be a positive integer, got ${inChannels}`);
  const qkScale =
    config.qk_scale === undefined || config.qk_scale === null ? null : numberArg(type, config, 'qk_scale', 0);
  return new MixVisionTransformer(device, {
    ...preset,
    inChannels,
    qkScale,
    dropRate: rateArg(type, config, 'drop_rate', preset.dropRate ?? 0),
    attnDropRate: rateArg(type, config, 'attn_drop_rate', 0),
    dropPathRate: rateArg(type, config, 'drop_path_rate', preset.dropPathRate ?? 0),
    pretrained: pretrainedArg(type, config),
  });
}

/** `SegFormer` from a resolved model block (num_classes filled in, `backbone` a component block). */
export function buildSegFormer(device: Device, config: ComponentConfig): SegFormer {
  const type = 'SegFormer';
  checkKeys(type, config, ['num_classes', 'backbone', 'embedding_dim', 'align_corners', 'pretrained']);
  const numClasses = config.num_classes;
  if (typeof numClasses !== 'number' || !Number.isInteger(numClasses) || numClasses < 1)
    fail(type, `'num_classes' must be a positive integer, got ${JSON.stringify(numClasses)}`);
  const embeddingDim = config.embedding_dim;
  if (typeof embeddingDim !== 'number' || !Number.isInteger(embeddingDim) || embeddingDim < 1)
    fail(type, `'embedding_dim' must be a positive integer, got ${JSON.stringify(embeddingDim)}`);
  const alignCorners = config.align_corners ?? false;
  if (typeof alignCorners !== 'boolean') fail(type, `'align_corners' must be a boolean`);
  const bb = config.backbone;
  if (!bb || typeof bb !== 'object' || typeof (bb as { type?: unknown }).type !== 'string')
    fail(type, `'backbone' must be a component block with a 'type'`);
  const backbone = buildBackbone(device, bb as ComponentConfig);
  return new SegFormer(device, backbone, {
    numClasses,
    embeddingDim,
    alignCorners,
    pretrained: pretrainedArg(type, config),
  });
}

for (const variant of Object.keys(MIT_VARIANTS)) registerBackbone(variant, buildMixVisionTransformer);
registerModel('SegFormer', buildSegFormer);
