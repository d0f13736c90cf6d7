export {
  constant,
  currentRng,
  type Initializer,
  kaimingNormalFanIn,
  kaimingNormalFanOut,
  normal,
  Rng,
  seedInitializers,
  truncNormal,
  xavierUniform,
} from './init.js';
export {
  Activation,
  type ActivationName,
  AdaptiveAvgPool2d,
  AvgPool2d,
  BatchNorm2d,
  Conv2d,
  type Conv2dLayerOptions,
  ConvBNAct,
  type ConvBNOptions,
  Dropout,
  LayerNorm,
  Linear,
  MaxPool2d,
  Upsample,
} from './layers.js';
export { type HostTensor, Layer, type LoadReport, Module, ModuleList, Sequential } from './module.js';
