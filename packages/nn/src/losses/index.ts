export { type BCELossOptions, bceLoss } from './bce.js';
export {
  type CrossEntropyLossOptions,
  crossEntropyLoss,
  crossEntropyLossAsync,
  type OhemCrossEntropyLossOptions,
  ohemCrossEntropyLoss,
} from './cross_entropy.js';
export { type DetailAggregateLossOptions, detailAggregateLoss, detailBoundaryTarget } from './detail.js';
export { type DiceLossOptions, diceLoss } from './dice.js';
export { type LovaszSoftmaxLossOptions, lovaszCoefficients, lovaszSoftmaxLoss } from './lovasz.js';
export {
  buildLoss,
  type LossBlock,
  type LossConfig,
  type LossFn,
  type LossResult,
  lossFromConfig,
  MixedLoss,
} from './mixed.js';
