import type { Device } from '@segtrain/tensor';
import { buildBackbone, type ComponentConfig, registerBackbone, registerModel } from '../registry.js';
import { HRNET_WIDTHS, hrnetFromConfig } from './hrnet.js';
import { OCRNet } from './ocrnet.js';

export {
  BasicBlock,
  BottleneckBlock,
  Branches,
  convInit,
  FuseLayers,
  HighResolutionModule,
  HRNET_WIDTHS,
  HRNet,
  type HRNetOptions,
  type HRNetStageSpec,
  hrnetFromConfig,
  hrnetWidthSpec,
  Layer1,
  Stage,
  TransitionLayer,
} from './hrnet.js';
export {
  ObjectAttentionBlock,
  OCRHead,
  type OCRHeadOptions,
  OCRNet,
  type OCRNetOptions,
  SpatialOCRModule,
  spatialGather,
} from './ocrnet.js';

function positiveInt(config: ComponentConfig, key: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new Error(
      `${config.type}: '${key}' must be a positive integer, got ${JSON.stringify(config[key])}`,
    );
  return v;
}

/** Builds OCRNet from a resolved `model` block (num_classes filled in, `backbone` a component). */
export function ocrnetFromConfig(device: Device, config: ComponentConfig): OCRNet {
  const backboneConfig = config.backbone as ComponentConfig | undefined;
  if (!backboneConfig || typeof backboneConfig !== 'object' || typeof backboneConfig.type !== 'string')
    throw new Error(`OCRNet: 'backbone' must be a component with a type`);
  const indices = config.backbone_indices ?? [0];
  if (!Array.isArray(indices) || !indices.every((i) => Number.isInteger(i) && i >= 0))
    throw new Error(`OCRNet: 'backbone_indices' must be a list of indices, got ${JSON.stringify(indices)}`);
  const alignCorners = config.align_corners ?? false;
  if (typeof alignCorners !== 'boolean') throw new Error(`OCRNet: 'align_corners' must be a boolean`);
  const pretrained = config.pretrained ?? null;
  if (pretrained !== null && typeof pretrained !== 'string')
    throw new Error(`OCRNet: 'pretrained' must be a path or null`);
  return new OCRNet(device, buildBackbone(device, backboneConfig), {
    numClasses: positiveInt(config, 'num_classes'),
    backboneIndices: indices as number[],
    ocrMidChannels: positiveInt(config, 'ocr_mid_channels', 512),
    ocrKeyChannels: positiveInt(config, 'ocr_key_channels', 256),
    alignCorners,
    pretrained,
  });
}

for (const width of HRNET_WIDTHS)
  registerBackbone(`HRNet_W${width}`, (device, config) => hrnetFromConfig(device, width, config));
registerModel('OCRNet', ocrnetFromConfig);
