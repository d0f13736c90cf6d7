export {
  type ExportableModel,
  type ExportOptions,
  exportOnnx,
  type OnnxExport,
  OnnxExportError,
  OPSET,
  type OutputOp,
} from './export.js';
export { type ImageBatch, type OnnxSession, onnxSegmenter, openOnnx } from './run.js';
