import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { DatasetConfig } from '@segtrain/config';
import { writePalettePng, writePng } from '../src/decode.js';

export const H = 8;
export const W = 16;

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `segtrain-data-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A deterministic RGB test image whose pixels depend on `seed`. */
export function rgbPixels(seed: number, h = H, w = W): Uint8Array {
  const data = new Uint8Array(h * w * 3);
  for (let i = 0; i < data.length; i++) data[i] = (seed * 37 + i * 11) % 256;
  return data;
}

/** A label map with classes 0…numClasses−1 in stripes and one ignore pixel. */
export function labelPixels(seed: number, numClasses: number, h = H, w = W): Uint8Array {
  const data = new Uint8Array(h * w);
  for (let i = 0; i < data.length; i++) data[i] = (seed + (i % w)) % numClasses;
  data[0] = 255;
  return data;
}

export async function writeRgb(path: string, seed: number, h = H, w = W): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await writePng(path, { data: rgbPixels(seed, h, w), width: w, height: h, channels: 3 });
}

export async function writeGrayLabel(path: string, data: Uint8Array, h = H, w = W): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await writePng(path, { data, width: w, height: h, channels: 1 });
}

export async function writePaletteLabel(path: string, data: Uint8Array, h = H, w = W): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await writePalettePng(path, data, w, h, [
    [0, 0, 0],
    [128, 0, 0],
    [0, 128, 0],
    [128, 128, 0],
  ]);
}

/** A generic `Dataset` block as the config package resolves it. */
export function genericBlock(
  root: string,
  over: Partial<Extract<DatasetConfig, { type: 'Dataset' }>> = {},
): DatasetConfig {
  return {
    type: 'Dataset',
    dataset_root: root,
    transforms: [],
    num_classes: 4,
    mode: 'train',
    img_channels: 3,
    train_path: null,
    val_path: null,
    test_path: null,
    separator: ' ',
    ignore_index: 255,
    edge: false,
    ...over,
  };
}

export function cityscapesBlock(root: string, mode: 'train' | 'val' | 'test' = 'train'): DatasetConfig {
  return { type: 'Cityscapes', dataset_root: root, transforms: [], mode, edge: false };
}

/**
 * A generic dataset of `n` 8×16 samples (images img/i.png, palette labels lbl/i.png) with a
 * train.txt list; `sizes` overrides the size of some samples.
 */
export async function buildListDataset(
  root: string,
  n: number,
  options: { numClasses?: number; sizes?: Record<number, [number, number]> } = {},
): Promise<string> {
  const numClasses = options.numClasses ?? 4;
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const [h, w] = options.sizes?.[i] ?? [H, W];
    await writeRgb(join(root, 'img', `${i}.png`), i, h, w);
    await writePaletteLabel(join(root, 'lbl', `${i}.png`), labelPixels(i, numClasses, h, w), h, w);
    lines.push(`img/${i}.png lbl/${i}.png`);
  }
  const list = join(root, 'train.txt');
  writeFileSync(list, `${lines.join('\n')}\n\n`);
  return list;
}
