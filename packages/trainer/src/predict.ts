/**
 * PaddleSeg's `predict.py` (spec b.3): val transforms, inference, trans_info undone, then per image
 * `save_dir/pseudo_color_prediction/<rel>.png` (palette PNG of class indices) and
 * `save_dir/added_prediction/<rel>` (the image blended with the colour map, weight 0.6).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, extname, join, relative, resolve } from 'node:path';
import type { TransformConfig } from '@segtrain/config';
import {
  applyTransforms,
  type Batch,
  buildTransforms,
  collate,
  readImage,
  type Sample,
  SeededRandom,
  writeImage,
  writePalettePng,
} from '@segtrain/data';
import type { SegModel } from '@segtrain/models';
import type { Device } from '@segtrain/tensor';
import { type InferenceOptions, predictBatch } from './inference.js';

/** An --image_path that names nothing usable. */
export class PredictInputError extends Error {}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp']);

/** One input image and the path its outputs are named after. */
export interface PredictInput {
  readonly path: string;
  readonly rel: string;
}

/**
 * The images `--image_path` names: one image, a directory walked recursively (sorted), or a text
 * list whose first column is a path relative to the list's directory.
 */
export function collectImages(imagePath: string): PredictInput[] {
  const path = resolve(imagePath);
  if (!existsSync(path))
    throw new PredictInputError(
      `image_path '${imagePath}' does not exist: pass an image, a directory of images or a list file`,
    );
  if (statSync(path).isDirectory()) {
    const found: PredictInput[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir).sort()) {
        const full = join(dir, name);
        if (statSync(full).isDirectory()) walk(full);
        else if (IMAGE_EXTENSIONS.has(extname(name).toLowerCase()))
          found.push({ path: full, rel: relative(path, full) });
      }
    };
    walk(path);
    if (found.length === 0)
      throw new PredictInputError(
        `image_path '${imagePath}' holds no images (${[...IMAGE_EXTENSIONS].join(' ')})`,
      );
    return found;
  }
  if (IMAGE_EXTENSIONS.has(extname(path).toLowerCase()))
    return [{ path, rel: relative(dirname(path), path) }];
  const root = dirname(path);
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line, i) => {
      const first = line.split(/\s+/)[0] as string;
      const full = resolve(root, first);
      if (!existsSync(full))
        throw new PredictInputError(`${imagePath}:${i + 1}: image '${first}' does not exist`);
      return { path: full, rel: first };
    });
}

export interface PredictOptions {
  readonly images: readonly PredictInput[];
  readonly saveDir: string;
  readonly transforms: readonly TransformConfig[];
  readonly imgChannels: 1 | 3;
  /** Colour of each class index (index → [r, g, b]). */
  readonly palette: readonly (readonly number[])[];
  readonly log: (line: string) => void;
}

/** Blends the image (weight 0.6) with the class colours (0.4), as PaddleSeg's visualize(). */
function overlay(
  image: Float32Array,
  channels: number,
  pred: Int32Array,
  palette: readonly (readonly number[])[],
): Uint8Array {
  const out = new Uint8Array(pred.length * 3);
  for (let i = 0; i < pred.length; i++) {
    const colour = palette[pred[i] as number] ?? [0, 0, 0];
    for (let c = 0; c < 3; c++) {
      const v = image[i * channels + (channels === 3 ? c : 0)] as number;
      out[i * 3 + c] = Math.min(255, Math.max(0, Math.round(0.6 * v + 0.4 * (colour[c] ?? 0))));
    }
  }
  return out;
}

/** Class per pixel of one collated image, at its size before the transforms. */
export type Segmenter = (batch: Batch) => Promise<{ pred: Int32Array; height: number; width: number }>;

/** Predicts every image with the model on the device; returns the written mask paths. */
export async function predict(
  device: Device,
  model: SegModel,
  o: PredictOptions & { readonly inference: InferenceOptions },
): Promise<string[]> {
  model.eval();
  return predictWith((batch) => predictBatch(device, model, batch, o.inference), o);
}

/** Predicts every image with `segment` (segtrain's model, or an exported one); returns the mask paths. */
export async function predictWith(segment: Segmenter, o: PredictOptions): Promise<string[]> {
  const transforms = buildTransforms(o.transforms);
  const maskDir = join(o.saveDir, 'pseudo_color_prediction');
  const addedDir = join(o.saveDir, 'added_prediction');
  const written: string[] = [];
  for (const input of o.images) {
    const decoded = await readImage(input.path, o.imgChannels);
    const sample: Sample = {
      img: Float32Array.from(decoded.data),
      height: decoded.height,
      width: decoded.width,
      channels: decoded.channels,
      label: null,
      labelHeight: 0,
      labelWidth: 0,
      transformLabel: false,
      transInfo: [],
    };
    // Val transforms are deterministic; the random source is only there to satisfy the interface.
    const transformed = applyTransforms(sample, transforms, new SeededRandom(0));
    const batch = collate([transformed], [0], [input.path]);
    const { pred, height: ph, width: pw } = await segment(batch);
    const stem = input.rel.slice(0, input.rel.length - extname(input.rel).length);
    const maskPath = join(maskDir, `${stem}.png`);
    const addedPath = join(addedDir, input.rel);
    await mkdir(dirname(maskPath), { recursive: true });
    await mkdir(dirname(addedPath), { recursive: true });
    await writePalettePng(maskPath, Uint8Array.from(pred), pw, ph, o.palette);
    if (ph === decoded.height && pw === decoded.width)
      await writeImage(addedPath, {
        data: overlay(decoded.data, decoded.channels, pred, o.palette),
        width: pw,
        height: ph,
        channels: 3,
      });
    written.push(maskPath);
    o.log(`${input.rel} → ${relative(o.saveDir, maskPath)}`);
  }
  return written;
}
