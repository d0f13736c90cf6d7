export {
  HRNet,
  hrnetFromConfig,
  OCRHead,
  OCRNet,
  type OCRNetOptions,
  ocrnetFromConfig,
} from './ocrnet/index.js';
export { PPLiteSeg, type PPLiteSegOptions, STDCNet, type StdcInit } from './pp_liteseg/index.js';
export {
  buildModelWithPretrained,
  cachedPretrainedPath,
  cachedPretrainedPaths,
  isUrl,
  loadPretrained,
  type PretrainedOptions,
  type PretrainedReport,
  pretrainedCacheDir,
  withoutPretrained,
} from './pretrained.js';
export {
  type Backbone,
  type BackboneFactory,
  buildBackbone,
  buildModel,
  type ComponentConfig,
  knownModels,
  type ModelFactory,
  registerBackbone,
  registerModel,
  type SegModel,
} from './registry.js';
export {
  buildMixVisionTransformer,
  buildSegFormer,
  MixVisionTransformer,
  type MixVisionTransformerOptions,
  mitPreset,
  SegFormer,
  type SegFormerOptions,
} from './segformer/index.js';
