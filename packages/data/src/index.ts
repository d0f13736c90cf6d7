export {
  type CreateDatasetOptions,
  createDataset,
  type DatasetEntry,
  DatasetError,
  type DatasetMode,
  type DatasetType,
  type SegDataset,
} from './datasets.js';
export {
  cityscapesPalette,
  colorMap,
  type DecodedImage,
  type DecodedLabel,
  type PngImage,
  readImage,
  readLabel,
  writeFileAtomic,
  writeImage,
  writePalettePng,
  writePng,
} from './decode.js';
export {
  DEMO_CLASSES,
  type DemoDatasetOptions,
  type DemoDatasetResult,
  generateDemoDataset,
  isDemoDatasetComplete,
} from './demo/index.js';
export {
  collate,
  DataLoader,
  type DataLoaderOptions,
  type EpochOptions,
  type LoadedBatch,
} from './loader.js';
export { SeededRandom, sampleRandom } from './random.js';
export { loadSample } from './sample.js';
export {
  type BatchSampler,
  DistributedBatchSampler,
  type DistributedBatchSamplerOptions,
} from './sampler.js';
export { applyTransforms, buildTransforms } from './transforms/index.js';
export type { Batch, RandomSource, Sample, Transform, TransInfo } from './types.js';
