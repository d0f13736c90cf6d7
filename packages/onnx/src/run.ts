/**
 * Running an exported model without the training stack: onnxruntime-node on the CPU, loaded on
 * first use (its native library is large and most commands never run a model through it).
 */

export interface OnnxSession {
  /** The graph input's shape as exported (NCHW). */
  readonly inputShape: readonly number[];
  /** Runs one NCHW float32 batch; returns the output's data and shape. */
  run(
    x: Float32Array,
    shape: readonly number[],
  ): Promise<{ data: Float32Array | Int32Array; shape: number[] }>;
  close(): Promise<void>;
}

/** Opens an ONNX file (or its bytes) written by `exportOnnx`. */
export async function openOnnx(model: string | Uint8Array): Promise<OnnxSession> {
  const ort = await import('onnxruntime-node');
  const session =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model)
      : await ort.InferenceSession.create(model);
  const inputName = session.inputNames[0] ?? 'x';
  const outputName = session.outputNames[0] ?? 'output';
  const meta = session.inputMetadata?.[0] as { shape?: ReadonlyArray<number | string> } | undefined;
  const inputShape = (meta?.shape ?? []).map((d) => (typeof d === 'number' ? d : -1));
  return {
    inputShape,
    async run(x, shape) {
      const result = await session.run({ [inputName]: new ort.Tensor('float32', x, [...shape]) });
      const out = result[outputName];
      if (!out) throw new Error(`the ONNX model has no output '${outputName}'`);
      const data = out.data;
      if (!(data instanceof Float32Array) && !(data instanceof Int32Array))
        throw new Error(`the ONNX model's output is ${out.type}, not float32 or int32`);
      return { data, shape: [...out.dims] };
    },
    close: () => session.release(),
  };
}

/** What a one-image batch carries that the segmenter reads (a subset of @segtrain/data's Batch). */
export interface ImageBatch {
  readonly img: Float32Array;
  readonly shape: readonly number[];
  readonly transInfo: ReadonlyArray<
    ReadonlyArray<{ readonly op: 'resize' | 'padding'; readonly height: number; readonly width: number }>
  >;
}

/** Nearest resize of a label map, src = ⌊dst·in/out⌋ (Paddle's nearest). */
function resizeLabels(labels: Int32Array, h: number, w: number, outH: number, outW: number): Int32Array {
  const out = new Int32Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(Math.floor((y * h) / outH), h - 1);
    for (let x = 0; x < outW; x++)
      out[y * outW + x] = labels[sy * w + Math.min(Math.floor((x * w) / outW), w - 1)] ?? 0;
  }
  return out;
}

/**
 * Class per pixel of one image through an exported model, on the CPU only: the model's output
 * (class ids, or probabilities/logits reduced by argmax), then the transforms undone as PaddleSeg's
 * deploy inference does (nearest resize back, padding cropped).
 */
export function onnxSegmenter(
  session: OnnxSession,
): (batch: ImageBatch) => Promise<{ pred: Int32Array; height: number; width: number }> {
  return async (batch) => {
    const want = session.inputShape;
    if (want.length === 4 && want.some((d, i) => d > 0 && d !== batch.shape[i]))
      throw new Error(
        `the ONNX model was exported for input [${want.join(', ')}] and this image is [${batch.shape.join(', ')}] after the transforms: export again with --input_shape ${batch.shape.join(' ')}`,
      );
    const { data, shape } = await session.run(batch.img, batch.shape);
    let h = shape.at(-2) ?? 1;
    let w = shape.at(-1) ?? 1;
    let labels: Int32Array;
    if (data instanceof Int32Array) labels = data;
    else {
      const classes = shape[1] ?? 1;
      labels = new Int32Array(h * w);
      for (let p = 0; p < h * w; p++) {
        let best = 0;
        for (let c = 1; c < classes; c++)
          if ((data[c * h * w + p] ?? 0) > (data[best * h * w + p] ?? 0)) best = c;
        labels[p] = best;
      }
    }
    for (const info of [...(batch.transInfo[0] ?? [])].reverse()) {
      if (info.op === 'resize') labels = resizeLabels(labels, h, w, info.height, info.width);
      else {
        const cropped = new Int32Array(info.height * info.width);
        for (let y = 0; y < info.height; y++)
          cropped.set(labels.subarray(y * w, y * w + info.width), y * info.width);
        labels = cropped;
      }
      h = info.height;
      w = info.width;
    }
    return { pred: labels, height: h, width: w };
  };
}
