import { randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { decode as decodePng, encode as encodePng, hasPngSignature } from 'fast-png';
import sharp, { type OutputInfo } from 'sharp';
import { DatasetError } from './datasets.js';

/** A decoded image: HWC float32 in RGB order (or one gray channel), values 0–255. */
export interface DecodedImage {
  data: Float32Array;
  height: number;
  width: number;
  channels: 1 | 3;
}

/** A decoded label map: H×W class indices. */
export interface DecodedLabel {
  data: Uint8Array;
  height: number;
  width: number;
}

/** An 8-bit image to write: gray (1 channel) or RGB (3 channels), HWC. */
export interface PngImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 3;
}

async function readBytes(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${(e as Error).message})`;
    throw new DatasetError(`${what} '${path}' ${why} — check the dataset list or directory layout`);
  }
}

/**
 * Reads an image as HWC float32 RGB (channels 3) or gray (channels 1), like PaddleSeg's
 * `cv2.imread(...).astype('float32')` + BGR→RGB. Alpha is dropped, EXIF orientation is applied (as
 * OpenCV's imread does), 16-bit input is reduced to 8 bits.
 */
export async function readImage(path: string, channels: 1 | 3 = 3): Promise<DecodedImage> {
  const bytes = await readBytes(path, 'image');
  let raw: { data: Buffer; info: OutputInfo };
  try {
    // From a buffer rather than the path: libvips' operation cache is keyed by file name and
    // would serve stale pixels for a file rewritten in place.
    raw = await sharp(bytes, { failOn: 'error' })
      .autoOrient()
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DatasetError(`image '${path}' cannot be decoded: ${(e as Error).message}`);
  }
  const { width, height } = raw.info;
  const src = raw.data;
  // libvips hands out sRGB (3 bands) even for gray files; gray is derived below.
  const srcChannels = raw.info.channels;
  const n = width * height;
  const data = new Float32Array(n * channels);
  if (srcChannels === channels) {
    for (let i = 0; i < data.length; i++) data[i] = src[i] ?? 0;
  } else if (srcChannels === 1 && channels === 3) {
    for (let i = 0; i < n; i++) {
      const v = src[i] ?? 0;
      data[3 * i] = v;
      data[3 * i + 1] = v;
      data[3 * i + 2] = v;
    }
  } else {
    // Gray from colour with OpenCV's fixed-point BT.601 weights (cvtColor RGB2GRAY).
    for (let i = 0; i < n; i++) {
      const r = src[srcChannels * i] ?? 0;
      const g = src[srcChannels * i + 1] ?? 0;
      const b = src[srcChannels * i + 2] ?? 0;
      data[i] = (r * 4899 + g * 9617 + b * 1868 + 8192) >> 14;
    }
  }
  return { data, height, width, channels };
}

function notSingleChannel(path: string, what: string): DatasetError {
  return new DatasetError(
    `label '${path}' is ${what}; labels must be single-channel index or palette PNGs ` +
      '(pixel value = class index, 255 = ignore) — convert colour-coded masks to class indices first',
  );
}

/** Unpacks 1/2/4-bit rows (each row padded to a whole byte) to one byte per pixel. */
function unpackBits(packed: Uint8Array, width: number, height: number, depth: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const perByte = 8 / depth;
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const byte = packed[y * rowBytes + Math.floor(x / perByte)] ?? 0;
      const shift = 8 - depth * ((x % perByte) + 1);
      out[y * width + x] = (byte >> shift) & mask;
    }
  }
  return out;
}

/** fast-png reports its internals ("outside the bounds of the DataView", "…the data:"): say what they mean. */
function pngProblem(error: unknown): string {
  const text = (error instanceof Error ? error.message : String(error)).replace(/[:\s]+$/, '');
  return /bounds of the DataView|decompress/i.test(text) ? `it is truncated or corrupt (${text})` : text;
}

function decodeLabelPng(bytes: Uint8Array, path: string): DecodedLabel {
  let png: ReturnType<typeof decodePng>;
  try {
    png = decodePng(bytes);
  } catch (e) {
    throw new DatasetError(
      `label '${path}' cannot be decoded as PNG: ${pngProblem(e)}. Re-export the label, or take it out of the dataset`,
    );
  }
  const { width, height, depth, channels } = png;
  if (channels !== 1) {
    const kind = channels === 2 ? 'gray+alpha' : channels === 3 ? 'RGB' : 'RGBA';
    throw notSingleChannel(path, `a ${channels}-channel (${kind}) PNG`);
  }
  // IHDR's interlace byte: fast-png does not unpack sub-byte pixels of Adam7 images.
  if (depth < 8 && bytes[28] === 1) {
    throw new DatasetError(
      `label '${path}' is an interlaced ${depth}-bit PNG, which is not supported — re-save it without interlacing`,
    );
  }
  if (depth < 8) return { data: unpackBits(png.data as Uint8Array, width, height, depth), height, width };
  if (depth === 16) {
    const data = new Uint8Array(width * height);
    for (let i = 0; i < data.length; i++) {
      const v = png.data[i] ?? 0;
      if (v > 255) {
        throw new DatasetError(
          `label '${path}' is a 16-bit PNG with value ${v}; class indices must fit in 8 bits (0–255)`,
        );
      }
      data[i] = v;
    }
    return { data, height, width };
  }
  const data = png.data instanceof Uint8Array ? png.data : new Uint8Array(png.data);
  return { data, height, width };
}

/**
 * Reads a label map as class indices, like PaddleSeg's `np.asarray(PIL.Image.open(path))`: palette
 * PNGs give palette indices, gray PNGs their values. Multi-channel labels are an error.
 */
export async function readLabel(path: string): Promise<DecodedLabel> {
  const bytes = await readBytes(path, 'label');
  if (hasPngSignature(bytes)) return decodeLabelPng(bytes, path);
  // Other formats (BMP, TIFF, ...) through libvips; palette images there expand to RGB, so only
  // genuinely single-channel 8-bit files pass.
  let raw: { data: Buffer; info: OutputInfo };
  try {
    const img = sharp(bytes, { failOn: 'error' });
    const meta = await img.metadata();
    if (meta.channels !== 1) throw notSingleChannel(path, `a ${meta.channels}-channel image`);
    if (meta.depth !== 'uchar')
      throw new DatasetError(`label '${path}' has ${meta.depth} pixels; labels must be 8-bit`);
    raw = await img.extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    if (e instanceof DatasetError) throw e;
    throw new DatasetError(`label '${path}' cannot be decoded: ${(e as Error).message}`);
  }
  return { data: new Uint8Array(raw.data), height: raw.info.height, width: raw.info.width };
}

let tmpCounter = 0;

/** Writes via a temp file in the same directory and a rename, so readers never see half a file. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${++tmpCounter}.${randomBytes(4).toString('hex')}.tmp`,
  );
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

function checkSize(data: ArrayLike<number>, width: number, height: number, channels: number, what: string) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${what}: width and height must be positive integers (got ${width}×${height})`);
  }
  if (data.length !== width * height * channels) {
    throw new RangeError(
      `${what}: data has ${data.length} values, expected ${width}×${height}×${channels} = ${width * height * channels}`,
    );
  }
}

/**
 * Writes an 8-bit gray or RGB PNG (HWC data). Encoded by sharp, off the main thread (the demo
 * generator encodes hundreds at once); same input, same bytes.
 */
export async function writePng(path: string, image: PngImage): Promise<void> {
  const { data, width, height, channels } = image;
  checkSize(data, width, height, channels, `writePng('${path}')`);
  const raw = sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
    raw: { width, height, channels },
  });
  // Without 'b-w', sharp writes one-channel input as an RGB PNG; label maps must be 8-bit gray.
  if (channels === 1) raw.toColourspace('b-w');
  const png = await raw.png({ compressionLevel: 6, adaptiveFiltering: false }).toBuffer();
  await writeFileAtomic(path, new Uint8Array(png));
}

/**
 * Writes an 8-bit RGB (or gray) image in the format its extension names (.png, .jpg/.jpeg, .webp,
 * .tif/.tiff; anything else is written as PNG data), as predict writes its overlays.
 */
export async function writeImage(path: string, image: PngImage): Promise<void> {
  const { data, width, height, channels } = image;
  checkSize(data, width, height, channels, `writeImage('${path}')`);
  const raw = sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
    raw: { width, height, channels },
  });
  const ext = extname(path).toLowerCase();
  const encoded =
    ext === '.jpg' || ext === '.jpeg'
      ? raw.jpeg({ quality: 95 })
      : ext === '.webp'
        ? raw.webp({ quality: 95 })
        : ext === '.tif' || ext === '.tiff'
          ? raw.tiff()
          : raw.png();
  await writeFileAtomic(path, new Uint8Array(await encoded.toBuffer()));
}

/**
 * Writes an 8-bit palette PNG of class indices (PaddleSeg's pseudo-colour prediction format; reads
 * back as indices). The palette is padded to 256 entries so every index, 255 included, is valid.
 */
export async function writePalettePng(
  path: string,
  indices: Uint8Array,
  width: number,
  height: number,
  palette: readonly (readonly number[])[],
): Promise<void> {
  checkSize(indices, width, height, 1, `writePalettePng('${path}')`);
  if (palette.length > 256)
    throw new RangeError(`writePalettePng: palette has ${palette.length} > 256 colours`);
  const full: number[][] = [];
  for (let i = 0; i < 256; i++) {
    const c = palette[i];
    full.push(c ? [c[0] ?? 0, c[1] ?? 0, c[2] ?? 0] : [0, 0, 0]);
  }
  await writeFileAtomic(
    path,
    encodePng({ width, height, data: indices, channels: 1, depth: 8, palette: full }),
  );
}

/** Cityscapes' official colours of the 19 trainIds (cityscapesScripts `labels.py`), road … bicycle. */
export function cityscapesPalette(): number[][] {
  return [
    [128, 64, 128],
    [244, 35, 232],
    [70, 70, 70],
    [102, 102, 156],
    [190, 153, 153],
    [153, 153, 153],
    [250, 170, 30],
    [220, 220, 0],
    [107, 142, 35],
    [152, 251, 152],
    [70, 130, 180],
    [220, 20, 60],
    [255, 0, 0],
    [0, 0, 142],
    [0, 0, 70],
    [0, 60, 100],
    [0, 80, 100],
    [0, 0, 230],
    [119, 11, 32],
  ];
}

/**
 * PaddleSeg's `get_color_map_list(n)`: the PASCAL bit-shuffle palette with its first (black) entry
 * dropped, so class 0 is (128, 0, 0) and class i has the colour of label i + 1.
 */
export function colorMap(n: number): number[][] {
  const out: number[][] = [];
  for (let i = 1; i <= n; i++) {
    let r = 0;
    let g = 0;
    let b = 0;
    for (let lab = i, j = 0; lab > 0; lab >>= 3, j++) {
      r |= ((lab >> 0) & 1) << (7 - j);
      g |= ((lab >> 1) & 1) << (7 - j);
      b |= ((lab >> 2) & 1) << (7 - j);
    }
    out.push([r, g, b]);
  }
  return out;
}
