/**
 * One decoded sample as it moves through the transform pipeline. Images are HWC float32 in RGB
 * order (PaddleSeg reads BGR with OpenCV and converts to RGB); labels are H×W class indices.
 */
export interface Sample {
  /** HWC float32, `height × width × channels` values. */
  img: Float32Array;
  height: number;
  width: number;
  channels: number;
  /**
   * H×W class indices (255 or the dataset's ignore_index = ignored). In training the geometric
   * transforms move it with the image; in validation it is left at the original size.
   */
  label: Uint8Array | null;
  labelHeight: number;
  labelWidth: number;
  /** Whether geometric transforms apply to the label too (PaddleSeg's `gt_fields`: train only). */
  transformLabel: boolean;
  /** Size changes recorded by Resize/Padding-like transforms, to map logits back (c.3). */
  transInfo: TransInfo[];
}

/** What a size-changing transform did, with the size *before* it (PaddleSeg's `trans_info`). */
export type TransInfo =
  | { readonly op: 'resize'; readonly height: number; readonly width: number }
  | { readonly op: 'padding'; readonly height: number; readonly width: number };

/** A seeded random stream; each sample gets its own, derived from (seed, epoch, index). */
export interface RandomSource {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number;
}

/** One transform of the pipeline (PaddleSeg's `transforms` list, in config order). */
export interface Transform {
  readonly type: string;
  apply(sample: Sample, random: RandomSource): Sample;
}

/** A collated batch, ready to upload: NCHW image and N×H×W int32 labels. */
export interface Batch {
  /** NCHW float32. */
  img: Float32Array;
  /** N×H×W int32 (train) or the single untouched label (val, batch 1); null in test mode. */
  label: Int32Array | null;
  /** [N, C, H, W]. */
  shape: readonly [number, number, number, number];
  /** [N, H, W] of the labels. */
  labelShape: readonly [number, number, number];
  /** Dataset indices of the samples, in order. */
  indices: readonly number[];
  /** Per sample: trans_info to undo on the logits (val), and source image path. */
  transInfo: readonly (readonly TransInfo[])[];
  imagePaths: readonly string[];
}
