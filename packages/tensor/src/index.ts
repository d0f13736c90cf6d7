export { type BackwardOptions, backward, isGradEnabled, noGrad, record } from './autograd/engine.js';
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
  type Access,
  Device,
  type DeviceStats,
  getDevice,
  type Kernel,
  type KernelSource,
} from './device/device.js';
export { full, ones, parameter, persistent, tensor, zeros } from './ops/create.js';
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
export { matmul } from './ops/matmul.js';
export { max, mean, sum } from './ops/reduce.js';
export { concat, reshape, slice, split, transpose } from './ops/shape.js';
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
