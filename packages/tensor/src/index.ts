export {
  type BackwardOptions,
  backward,
  isGradEnabled,
  noGrad,
  record,
  type TracedOp,
  traceAttrs,
  traceOps,
} from './autograd/engine.js';
export {
  ADAPTER_ENV,
  type AdapterListing,
  type AdapterReport,
  type ChosenAdapter,
  describeAdapter,
  formatAdapterReport,
  getGpu,
  isSoftwareAdapter,
  listAdapters,
  matchAdapter,
  parseAdapterListing,
  probeAdapter,
  requestAdapter,
} from './device/adapter.js';
export {
  AUTOTUNE_CACHE_ENV,
  AUTOTUNE_ENV,
  type AutotuneOptions,
  Autotuner,
  autotuneOptionsFromEnv,
  type TuneCandidate,
  type TuneResult,
  type TuneTrial,
} from './device/autotune.js';
export {
  type Access,
  Device,
  type DeviceHold,
  DeviceLimitError,
  type DeviceStats,
  getDevice,
  type Kernel,
  type KernelProfile,
  type KernelSource,
} from './device/device.js';
export { GPU_POLL_ENV, type GpuPollMode, gpuPollModeFromEnv } from './device/poll.js';
export { conv2dBiasGrad, conv2dForward, conv2dInputGrad, conv2dWeightGrad } from './kernels/conv.js';
export type { Activation } from './kernels/matmul.js';
export {
  type AdamOptions,
  type AdamTarget,
  adamUpdate,
  adamUpdates,
  type MomentumOptions,
  type MomentumTarget,
  momentumUpdate,
  momentumUpdates,
} from './kernels/optimizer.js';
export { kthSmallest, ohemKeepMask } from './kernels/select.js';
export { blendByMap, meanMaxOverChannels } from './ops/channel.js';
export {
  type Conv2dOptions,
  type Conv2dPadding,
  conv2d,
  conv2dGeometry,
  resolvePadding,
} from './ops/conv.js';
export { cachedConstant, full, ones, parameter, persistent, tensor, zeros } from './ops/create.js';
export {
  add,
  affine,
  clamp,
  div,
  exp,
  gelu,
  log,
  mul,
  neg,
  powScalar,
  relu,
  scale,
  sigmoid,
  sqrt,
  sub,
  tanh,
  where,
} from './ops/elementwise.js';
export { bceWithLogits, type LabelMapKind, labelMap, mapNoGrad, ratioOfMeans } from './ops/loss.js';
export { type LinearOptions, linear, matmul } from './ops/matmul.js';
export { type BatchNormOptions, type BatchNormSync, batchNorm2d, layerNorm } from './ops/norm.js';
export { adaptiveAvgPool2d, argmax, avgPool2d, maxPool2d, type PoolOptions } from './ops/pool.js';
export {
  type DropoutOptions,
  dropout,
  dropout2d,
  dropPath,
  manualSeed,
  nextSeed,
  randomState,
  randomUniform,
} from './ops/random.js';
export { max, mean, sum } from './ops/reduce.js';
export { type ResizeBilinearOptions, resizeBilinear, resizeNearest } from './ops/resize.js';
export { concat, reshape, slice, split, transpose } from './ops/shape.js';
export {
  type CrossEntropyOptions,
  type PixelCrossEntropyOptions,
  pixelCrossEntropy,
  pixelCrossEntropyAndTrueProb,
  pixelTrueProb,
  softmax,
  softmaxCrossEntropy,
} from './ops/softmax.js';
export { Rng } from './rng.js';
export {
  type DType,
  type GradNode,
  liveTensorCount,
  type Shape,
  shapeSize,
  Tensor,
  tidy,
  tidyAsync,
} from './tensor.js';
