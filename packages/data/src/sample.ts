import { DatasetError, type SegDataset } from './datasets.js';
import { readImage, readLabel } from './decode.js';
import { applyTransforms } from './transforms/index.js';
import type { RandomSource, Sample, Transform } from './types.js';

/** Rejects label values outside [0, numClasses) ∪ {ignoreIndex}, which PaddleSeg passes on silently. */
function checkLabelValues(label: Uint8Array, width: number, path: string, dataset: SegDataset): void {
  const { numClasses, ignoreIndex } = dataset;
  for (let i = 0; i < label.length; i++) {
    const v = label[i] ?? 0;
    if (v < numClasses || v === ignoreIndex) continue;
    const shifted = dataset.reduceZeroLabel ? ' (after ADE20K’s −1 shift; the file holds v+1)' : '';
    const hint =
      dataset.type === 'Cityscapes'
        ? 'use the *_gtFine_labelTrainIds.png files (trainIds 0–18), not labelIds'
        : dataset.type === 'Dataset'
          ? 'set num_classes / ignore_index to match the labels, or fix the label file'
          : 'fix the label file';
    throw new DatasetError(
      `label '${path}' has value ${v}${shifted} at row ${Math.floor(i / width)}, column ${i % width}; ` +
        `allowed are class indices 0…${numClasses - 1} and ignore_index ${ignoreIndex} — ${hint}`,
    );
  }
}

/**
 * Decodes sample `index` of the dataset and runs the transforms with the given random stream (the
 * caller passes `sampleRandom(seed, epoch, index)`).
 */
export async function loadSample(
  dataset: SegDataset,
  index: number,
  transforms: readonly Transform[],
  random: RandomSource,
): Promise<Sample> {
  const entry = dataset.entries[index];
  if (!entry) throw new RangeError(`sample index ${index} is outside the dataset (0…${dataset.length - 1})`);
  const [img, lbl] = await Promise.all([
    readImage(entry.image, dataset.imgChannels),
    entry.label === null ? null : readLabel(entry.label),
  ]);
  if (lbl && (lbl.height !== img.height || lbl.width !== img.width)) {
    throw new DatasetError(
      `image '${entry.image}' is ${img.width}×${img.height} but its label '${entry.label}' is ` +
        `${lbl.width}×${lbl.height} (W×H) — image and label must have the same size`,
    );
  }
  if (lbl && entry.label !== null) {
    if (dataset.reduceZeroLabel) {
      // uint8 arithmetic as in PaddleSeg: 0 (unlabelled) wraps to 255 = ignore.
      for (let i = 0; i < lbl.data.length; i++) lbl.data[i] = ((lbl.data[i] ?? 0) - 1) & 255;
    }
    checkLabelValues(lbl.data, lbl.width, entry.label, dataset);
  }
  const sample: Sample = {
    img: img.data,
    height: img.height,
    width: img.width,
    channels: img.channels,
    label: lbl ? lbl.data : null,
    labelHeight: lbl ? lbl.height : 0,
    labelWidth: lbl ? lbl.width : 0,
    // PaddleSeg's Dataset puts the label in gt_fields in every mode but 'val' (so VOC's
    // trainval/trainaug transform it too); val keeps the label at full resolution.
    transformLabel: dataset.mode !== 'val',
    transInfo: [],
  };
  return applyTransforms(sample, transforms, random);
}
