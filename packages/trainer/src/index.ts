export {
  BEST_DIR,
  CheckpointError,
  type EvalRecord,
  loadWeights,
  MODEL_FILE,
  resolveWeights,
  type TrainState,
} from './checkpoint.js';
export {
  BUCKET_BYTES,
  broadcastJson,
  bucketLayout,
  DataParallel,
  FIRST_BUCKET_BYTES,
} from './data-parallel.js';
export { type EvaluateOptions, type EvaluationResult, evaluate } from './evaluate.js';
export {
  flipHost,
  type HostImage,
  type HostLogits,
  type InferenceOptions,
  inferImage,
  predictBatch,
  predictLabels,
  windowStarts,
} from './inference.js';
export { formatEta, formatTrainLine, logPrefix, ProgressBar, type ProgressStream } from './log-format.js';
export { ConfusionCounts, computeMetrics, formatEvalLines, type SegMetrics } from './metrics.js';
export { type TrainingHistory, writeTrainingPlot } from './plot.js';
export {
  collectImages,
  type PredictInput,
  PredictInputError,
  type PredictOptions,
  predict,
  predictWith,
  type Segmenter,
} from './predict.js';
export {
  describeFileError,
  LOCK_FILE,
  latestCheckpoint,
  openSaveDir,
  recoverSaveDir,
  SaveDirError,
  SaveDirLock,
} from './save-dir.js';
export { EventWriter, readEvents } from './tensorboard.js';
export {
  EvaluationError,
  inferenceOptions,
  NonFiniteLossError,
  type TrainOptions,
  type TrainResult,
  train,
} from './train.js';
