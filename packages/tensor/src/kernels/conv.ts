/**
 * 2-D convolution kernels, one file per pass under conv/: forward (with a depthwise forward),
 * input gradient, weight gradient, bias gradient, what they share (common.ts), and the passes as
 * GEMMs through the GEMM template (pointwise.ts: 1×1 per image; implicit-gemm.ts: any one-group one).
 */
export { conv2dBiasGrad } from './conv/bias-grad.js';
export {
  type ConvGeometry,
  channelBlock,
  convConfig,
  convShapeClass,
  registerVariantCandidates,
  rowBlock,
} from './conv/common.js';
export { depthwiseConfig } from './conv/depthwise.js';
export { conv2dForward } from './conv/forward.js';
export { conv2dInputGrad } from './conv/input-grad.js';
export { conv2dWeightGrad, weightGradCandidates } from './conv/weight-grad.js';
