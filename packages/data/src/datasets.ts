import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, isAbsolute, join } from 'node:path';
import { DATASET_CONSTANTS, type DatasetConfig } from '@segtrain/config';

/** A data problem the user must fix (missing files, bad list lines, bad labels); the message names the path. */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

export type DatasetType = DatasetConfig['type'];
/** train/val/test for Cityscapes and Dataset; PascalVOC adds trainval/trainaug; ADE20K has train/val. */
export type DatasetMode = 'train' | 'val' | 'test' | 'trainval' | 'trainaug';

export interface DatasetEntry {
  readonly image: string;
  /** null only in test mode, when the list line or layout has no label. */
  readonly label: string | null;
}

/**
 * A resolved, plain-data dataset (structured-cloneable, so loader workers receive it as is and
 * see exactly the same index → file mapping as the main thread).
 */
export interface SegDataset {
  readonly type: DatasetType;
  readonly mode: DatasetMode;
  readonly root: string;
  readonly numClasses: number;
  readonly ignoreIndex: number;
  readonly imgChannels: 1 | 3;
  readonly length: number;
  readonly entries: readonly DatasetEntry[];
  /** ADE20K: labels are shifted by −1 after decoding (uint8 wrap: 0 → 255 = ignore). */
  readonly reduceZeroLabel: boolean;
}

export interface CreateDatasetOptions {
  /** Overrides the block's `mode`. */
  mode?: DatasetMode;
  /** Config key named in error hints (default: `val_dataset` in val mode, else `train_dataset`). */
  configKey?: string;
}

const MODES: Readonly<Record<DatasetType, readonly DatasetMode[]>> = {
  Cityscapes: ['train', 'val', 'test'],
  Dataset: ['train', 'val', 'test'],
  PascalVOC: ['train', 'trainval', 'trainaug', 'val'],
  ADE20K: ['train', 'val'],
};

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp']);

function stat(path: string) {
  return statSync(path, { throwIfNoEntry: false });
}
function isFile(path: string): boolean {
  return stat(path)?.isFile() ?? false;
}
function isDir(path: string): boolean {
  return stat(path)?.isDirectory() ?? false;
}

/** Python's os.path.join: an absolute second part wins. */
function joinRoot(root: string, p: string): string {
  return isAbsolute(p) ? p : join(root, p);
}

/** Code-unit order, as Python's sorted() on str (for BMP names). */
function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function listDir(dir: string): string[] {
  return readdirSync(dir).sort(byString);
}

interface ListLine {
  readonly lineNo: number;
  readonly text: string;
}

/** Stripped lines of a list file; trailing blank lines are dropped, an inner blank line is an error. */
function readListLines(file: string): ListLine[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DatasetError(`list file '${file}' cannot be read: ${(e as Error).message}`);
  }
  const lines = text.split('\n').map((t, i) => ({ lineNo: i + 1, text: t.trim() }));
  while (lines.length > 0 && lines[lines.length - 1]?.text === '') lines.pop();
  for (const l of lines) {
    if (l.text === '') throw new DatasetError(`${file}:${l.lineNo}: empty line in the list — remove it`);
  }
  return lines;
}

function requireFile(path: string, where: string, what: string): void {
  if (!isFile(path)) {
    throw new DatasetError(`${where}: ${what} '${path}' does not exist — fix the list entry or add the file`);
  }
}

function cityscapes(root: string, mode: DatasetMode): DatasetEntry[] {
  const imgDir = join(root, 'leftImg8bit');
  const gtDir = join(root, 'gtFine');
  if (!isDir(imgDir)) {
    throw new DatasetError(
      `Cityscapes dataset_root '${root}' has no leftImg8bit/ directory — expected ` +
        `${imgDir}/<split>/<city>/*_leftImg8bit.png (unzip leftImg8bit_trainvaltest.zip there)`,
    );
  }
  if (!isDir(gtDir)) {
    throw new DatasetError(
      `Cityscapes dataset_root '${root}' has no gtFine/ directory — expected ` +
        `${gtDir}/<split>/<city>/*_gtFine_labelTrainIds.png (unzip gtFine_trainvaltest.zip and run ` +
        "cityscapesScripts' createTrainIdLabelImgs)",
    );
  }
  const splitDir = join(imgDir, mode);
  if (!isDir(splitDir)) {
    throw new DatasetError(`Cityscapes split directory '${splitDir}' does not exist — check mode '${mode}'`);
  }
  const suffix = '_leftImg8bit.png';
  const entries: DatasetEntry[] = [];
  let missing = 0;
  let firstMissing = '';
  for (const city of listDir(splitDir)) {
    const cityDir = join(splitDir, city);
    if (!isDir(cityDir)) continue;
    for (const name of listDir(cityDir)) {
      if (!name.endsWith(suffix)) continue;
      const image = join(cityDir, name);
      // Paired by stem, not by zipping two sorted globs as PaddleSeg does (which shifts every
      // later pair when one file is missing).
      const label = join(gtDir, mode, city, `${name.slice(0, -suffix.length)}_gtFine_labelTrainIds.png`);
      if (isFile(label)) {
        entries.push({ image, label });
      } else if (mode === 'test') {
        entries.push({ image, label: null });
      } else {
        if (missing === 0) firstMissing = `'${image}' (expected '${label}')`;
        missing++;
      }
    }
  }
  if (missing > 0) {
    throw new DatasetError(
      `Cityscapes: ${missing} image(s) have no *_gtFine_labelTrainIds.png label, first ${firstMissing} — ` +
        "generate trainId labels with cityscapesScripts' createTrainIdLabelImgs or remove the images",
    );
  }
  if (entries.length === 0) {
    throw new DatasetError(`Cityscapes: no images found under '${splitDir}/<city>/*${suffix}'`);
  }
  return entries;
}

function genericDataset(block: Extract<DatasetConfig, { type: 'Dataset' }>, root: string, mode: DatasetMode) {
  const key = `${mode}_path` as 'train_path' | 'val_path' | 'test_path';
  const given = block[key];
  if (!given)
    throw new DatasetError(`a Dataset in mode '${mode}' needs ${key} (a list file of "image label" lines)`);
  // PaddleSeg opens the list path as given (relative to the working directory); a path relative to
  // dataset_root is accepted as a fallback.
  let file = given;
  if (!isFile(file) && !isAbsolute(given) && isFile(join(root, given))) file = join(root, given);
  if (!isFile(file)) {
    throw new DatasetError(
      `${key} '${given}' does not exist — give the list file's path (relative to the working directory or dataset_root)`,
    );
  }
  const sep = block.separator;
  const entries: DatasetEntry[] = [];
  for (const { lineNo, text } of readListLines(file)) {
    const where = `${file}:${lineNo}`;
    const items = text.split(sep);
    const ok =
      (items.length === 2 || (items.length === 1 && mode === 'test')) && items.every((s) => s !== '');
    if (!ok) {
      throw new DatasetError(
        `${where}: expected "<image>${sep}<label>"${mode === 'test' ? ' or "<image>"' : ''} ` +
          `(fields separated by ${JSON.stringify(sep)}), got ${items.length} field(s) in '${text}' — ` +
          'fix the line or set separator',
      );
    }
    const image = joinRoot(root, items[0] ?? '');
    requireFile(image, where, 'image');
    let label: string | null = null;
    if (items[1] !== undefined) {
      label = joinRoot(root, items[1]);
      requireFile(label, where, 'label');
    }
    entries.push({ image, label });
  }
  if (entries.length === 0)
    throw new DatasetError(`${key} '${file}' lists no images — add "image label" lines`);
  return entries;
}

function pascalVoc(root: string, mode: DatasetMode): DatasetEntry[] {
  // PaddleSeg's root is VOCdevkit (holding VOC2012/); a root that is VOC2012 itself also works.
  const base = isDir(join(root, 'VOC2012')) ? join(root, 'VOC2012') : root;
  if (!isDir(join(base, 'JPEGImages'))) {
    throw new DatasetError(
      `PascalVOC dataset_root '${root}' has neither VOC2012/JPEGImages nor JPEGImages — point dataset_root at VOCdevkit`,
    );
  }
  const setDir = join(base, 'ImageSets', 'Segmentation');
  const lists: [string, string][] =
    mode === 'trainaug'
      ? [
          [join(setDir, 'train.txt'), 'SegmentationClass'],
          [join(setDir, 'aug.txt'), 'SegmentationClassAug'],
        ]
      : [[join(setDir, `${mode}.txt`), 'SegmentationClass']];
  const entries: DatasetEntry[] = [];
  for (const [file, labelDir] of lists) {
    if (!isFile(file)) {
      const hint =
        labelDir === 'SegmentationClassAug'
          ? 'mode trainaug needs the augmented set (run PaddleSeg tools/data/voc_augment.py)'
          : 'check dataset_root and mode';
      throw new DatasetError(`PascalVOC list '${file}' does not exist — ${hint}`);
    }
    for (const { lineNo, text } of readListLines(file)) {
      const where = `${file}:${lineNo}`;
      const image = join(base, 'JPEGImages', `${text}.jpg`);
      const label = join(base, labelDir, `${text}.png`);
      requireFile(image, where, 'image');
      requireFile(label, where, 'label');
      entries.push({ image, label });
    }
  }
  if (entries.length === 0) throw new DatasetError(`PascalVOC: '${lists[0]?.[0]}' lists no images`);
  return entries;
}

function ade20k(root: string, mode: DatasetMode): DatasetEntry[] {
  const split = mode === 'train' ? 'training' : 'validation';
  const imgDir = join(root, 'images', split);
  const labelDir = join(root, 'annotations', split);
  for (const dir of [imgDir, labelDir]) {
    if (!isDir(dir)) {
      throw new DatasetError(
        `ADE20K directory '${dir}' does not exist — dataset_root must be ADEChallengeData2016 (images/, annotations/)`,
      );
    }
  }
  const entries: DatasetEntry[] = [];
  // Sorted; PaddleSeg keeps os.listdir's file-system order.
  for (const name of listDir(imgDir)) {
    if (!IMAGE_EXTENSIONS.has(extname(name).toLowerCase())) continue;
    const image = join(imgDir, name);
    const label = join(labelDir, `${basename(name, extname(name))}.png`);
    if (!isFile(label)) {
      throw new DatasetError(`ADE20K image '${image}' has no label '${label}' — add it or remove the image`);
    }
    entries.push({ image, label });
  }
  if (entries.length === 0) throw new DatasetError(`ADE20K: no images found in '${imgDir}'`);
  return entries;
}

/** Resolves a dataset block (`train_dataset` / `val_dataset`) to its list of image/label files. */
export function createDataset(block: DatasetConfig, options: CreateDatasetOptions = {}): SegDataset {
  const type = block.type;
  const mode = options.mode ?? block.mode;
  const allowed = MODES[type];
  if (!allowed.includes(mode)) {
    throw new DatasetError(`${type} has no mode '${mode}' (allowed: ${allowed.join(', ')})`);
  }
  const root = block.dataset_root;
  const configKey = options.configKey ?? (mode === 'val' ? 'val_dataset' : 'train_dataset');
  if (!isDir(root)) {
    const what = stat(root) ? 'is not a directory' : 'does not exist';
    throw new DatasetError(
      `dataset_root '${root}' ${what} — run \`segtrain data demo --out ${root}\` for the demo data ` +
        `or fix ${configKey}.dataset_root`,
    );
  }
  let entries: DatasetEntry[];
  let numClasses: number;
  let ignoreIndex: number;
  let imgChannels: 1 | 3 = 3;
  if (block.type === 'Dataset') {
    entries = genericDataset(block, root, mode);
    numClasses = block.num_classes;
    ignoreIndex = block.ignore_index;
    imgChannels = block.img_channels;
  } else {
    const c = DATASET_CONSTANTS[block.type];
    if (!c) throw new Error(`no constants for dataset type ${block.type}`);
    numClasses = c.numClasses;
    ignoreIndex = c.ignoreIndex;
    entries =
      block.type === 'Cityscapes'
        ? cityscapes(root, mode)
        : block.type === 'PascalVOC'
          ? pascalVoc(root, mode)
          : ade20k(root, mode);
  }
  return {
    type,
    mode,
    root,
    numClasses,
    ignoreIndex,
    imgChannels,
    length: entries.length,
    entries,
    reduceZeroLabel: type === 'ADE20K',
  };
}
