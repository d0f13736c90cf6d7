/**
 * The embedded demo dataset: procedural street scenes in the Cityscapes layout, so a newcomer can
 * train PP-LiteSeg-T through the real Cityscapes loader without downloading anything.
 */
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { writePng } from '../decode.js';
import { SeededRandom } from '../random.js';
import { Canvas, NoiseTables } from './raster.js';
import { BUILDING, CAR, drawStreetScene, PERSON, ROAD, SIDEWALK, SKY, VEGETATION } from './scene.js';

/** Bumped whenever the drawing changes, so a dataset made by an older generator is regenerated. */
export const DEMO_DATASET_VERSION = 2;

/** The demo's classes, by Cityscapes trainId (everything else is absent; 255 = ignore). */
export const DEMO_CLASSES: Readonly<Record<number, string>> = Object.freeze({
  [ROAD]: 'road',
  [SIDEWALK]: 'sidewalk',
  [BUILDING]: 'building',
  [VEGETATION]: 'vegetation',
  [SKY]: 'sky',
  [PERSON]: 'person',
  [CAR]: 'car',
});

export interface DemoCities {
  readonly train: readonly string[];
  readonly val: readonly string[];
}

export interface DemoDatasetOptions {
  /** Directory the dataset ends up in (replaced if it holds an older or half-written demo dataset). */
  root: string;
  trainCount?: number;
  valCount?: number;
  width?: number;
  height?: number;
  seed?: number;
  /** Fake city names per split (as in Cityscapes, validation cities differ from training ones). */
  cities?: DemoCities;
}

export interface DemoDatasetResult {
  train: number;
  val: number;
  root: string;
}

export type DemoSplit = 'train' | 'val';

const DEFAULTS = {
  trainCount: 300,
  valCount: 30,
  width: 256,
  height: 128,
  seed: 0,
  cities: { train: ['synthburg', 'pixelstadt'], val: ['renderheim'] } as DemoCities,
};

const MARKER = '.complete';
/** What a demo root may contain; anything else means it is not ours to delete. */
const OWN_ENTRIES = new Set(['leftImg8bit', 'gtFine', 'README.md', MARKER]);
/** Images encoded and written while the next one is drawn. */
const IN_FLIGHT = 4;

interface Resolved {
  trainCount: number;
  valCount: number;
  width: number;
  height: number;
  seed: number;
  cities: DemoCities;
}

function resolveOptions(options: Omit<DemoDatasetOptions, 'root'>): Resolved {
  const r: Resolved = {
    trainCount: options.trainCount ?? DEFAULTS.trainCount,
    valCount: options.valCount ?? DEFAULTS.valCount,
    width: options.width ?? DEFAULTS.width,
    height: options.height ?? DEFAULTS.height,
    seed: options.seed ?? DEFAULTS.seed,
    cities: options.cities ?? DEFAULTS.cities,
  };
  for (const key of ['trainCount', 'valCount'] as const) {
    if (!Number.isInteger(r[key]) || r[key] < 0)
      throw new RangeError(`${key} must be a non-negative integer`);
  }
  for (const key of ['width', 'height'] as const) {
    if (!Number.isInteger(r[key]) || r[key] < 16) throw new RangeError(`${key} must be an integer >= 16`);
  }
  if (!Number.isFinite(r.seed)) throw new RangeError('seed must be a finite number');
  for (const split of ['train', 'val'] as const) {
    const names = r.cities[split];
    if (names.length === 0) throw new RangeError(`cities.${split} must name at least one city`);
    // Cityscapes file names split on '_', and the names become directories.
    for (const name of names) {
      if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new RangeError(`invalid city name ${JSON.stringify(name)}`);
    }
  }
  return r;
}

const splitIndex = (split: DemoSplit): number => (split === 'train' ? 0 : 1);

let noiseCache: { seed: number; tables: NoiseTables } | null = null;

/** The shared noise textures of a seed (sampled at per-image offsets); the last one is cached. */
export function demoNoise(seed: number): NoiseTables {
  if (noiseCache?.seed !== seed) noiseCache = { seed, tables: new NoiseTables(new SeededRandom(seed, 2, 0)) };
  return noiseCache.tables;
}

export interface DemoScene {
  /** HWC RGB, 8-bit. */
  rgb: Uint8Array;
  /** H×W trainIds. */
  label: Uint8Array;
  width: number;
  height: number;
}

/**
 * Draws sample `index` of a split: a pure function of (seed, split, index), independent of how
 * many samples the dataset has, so growing a split keeps the existing images.
 */
export function renderDemoScene(
  split: DemoSplit,
  index: number,
  options: { width?: number; height?: number; seed?: number; noise?: NoiseTables } = {},
): DemoScene {
  const width = options.width ?? DEFAULTS.width;
  const height = options.height ?? DEFAULTS.height;
  const seed = options.seed ?? DEFAULTS.seed;
  const rng = new SeededRandom(seed, splitIndex(split), index);
  const canvas = new Canvas(
    width,
    height,
    options.noise ?? demoNoise(seed),
    rng.int(0, 255),
    rng.int(0, 255),
  );
  const rgb = drawStreetScene(canvas, rng);
  return { rgb, label: canvas.label, width, height };
}

/** Cityscapes file stems: `<city>_<6-digit sequence>_000019`, cities taken round-robin. */
function sampleName(cities: readonly string[], index: number): { city: string; stem: string } {
  const city = cities[index % cities.length]!;
  const seq = String(Math.floor(index / cities.length)).padStart(6, '0');
  return { city, stem: `${city}_${seq}_000019` };
}

function markerContent(r: Resolved): string {
  return `${JSON.stringify({ version: DEMO_DATASET_VERSION, ...r })}\n`;
}

/**
 * Whether `root` holds a finished demo dataset (its `.complete` marker is written last). With
 * options, it must also have been generated with them (defaults filled in) by this generator version.
 */
export async function isDemoDatasetComplete(
  root: string,
  options?: Omit<DemoDatasetOptions, 'root'>,
): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(join(root, MARKER), 'utf8');
  } catch {
    return false;
  }
  if (!options) return true;
  return text === markerContent(resolveOptions(options));
}

function readme(r: Resolved): string {
  const rows = Object.entries(DEMO_CLASSES)
    .map(([id, name]) => `| ${id} | ${name} |`)
    .join('\n');
  return `# segtrain demo dataset (synthetic)

Procedurally drawn street scenes in the Cityscapes layout, generated by \`@segtrain/data\`
(generator version ${DEMO_DATASET_VERSION}). Nothing here is real data.

- Seed ${r.seed}; ${r.trainCount} train and ${r.valCount} val images of ${r.width}×${r.height} (W×H).
- Cities: train ${r.cities.train.join(', ')}; val ${r.cities.val.join(', ')}.
- \`leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png\`: RGB images.
- \`gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_labelTrainIds.png\`: 8-bit grayscale Cityscapes
  trainIds; 255 (ignore) marks the ego-vehicle hood some scenes show.

| trainId | class |
|---|---|
${rows}

Each scene is a pinhole-camera view of a straight street: a road with lane markings (sometimes a
zebra crossing, parked cars and oncoming lanes), paved sidewalks with curbs, building facades with
windows, shop fronts and roofs, street trees, parks, a backdrop at the street's end, a sky with
clouds, persons on the sidewalks and cars in the lanes. Objects are placed in metres and drawn far
to near, so sizes follow perspective and nearer objects occlude farther ones. Colours overlap
between classes on purpose (grey cars, facades and asphalt; green cars and trees), and building
shadows, haze, texture noise and a moderate per-image exposure/colour cast make it non-trivial.

The same seed gives byte-identical files. Regenerate with \`generateDemoDataset\`; the \`.complete\`
marker is written last, and a dataset without it is regenerated.
`;
}

/** Refuses to delete a directory that holds anything but a demo dataset. */
async function assertReplaceable(root: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const foreign = entries.filter((e) => !OWN_ENTRIES.has(e));
  if (foreign.length > 0) {
    throw new Error(
      `refusing to replace ${root}: it holds files that are not a demo dataset (${foreign.join(', ')})`,
    );
  }
}

/**
 * Generates the demo dataset into a temporary sibling of `root` and renames it into place at the
 * end, so `root` is either absent, the previous dataset, or complete: never half-written.
 */
export async function generateDemoDataset(options: DemoDatasetOptions): Promise<DemoDatasetResult> {
  const r = resolveOptions(options);
  const root = resolve(options.root);
  await assertReplaceable(root);
  const parent = dirname(root);
  await mkdir(parent, { recursive: true });
  // A sibling, so the final rename stays on one filesystem.
  const tmp = await mkdtemp(join(parent, `.${basename(root)}.partial-`));
  // mkdtemp makes it private (0700); the dataset gets the mode any new directory gets (umask).
  await chmod(tmp, 0o777 & ~process.umask());
  const pending: Promise<void>[] = [];
  try {
    const noise = demoNoise(r.seed);
    let failure: unknown = null;
    for (const split of ['train', 'val'] as const) {
      const count = split === 'train' ? r.trainCount : r.valCount;
      const cities = r.cities[split];
      for (const city of cities) {
        await mkdir(join(tmp, 'leftImg8bit', split, city), { recursive: true });
        await mkdir(join(tmp, 'gtFine', split, city), { recursive: true });
      }
      for (let i = 0; i < count; i++) {
        const scene = renderDemoScene(split, i, { ...r, noise });
        const { city, stem } = sampleName(cities, i);
        const write = async (): Promise<void> => {
          const size = { width: r.width, height: r.height };
          await Promise.all([
            writePng(join(tmp, 'leftImg8bit', split, city, `${stem}_leftImg8bit.png`), {
              data: scene.rgb,
              channels: 3,
              ...size,
            }),
            writePng(join(tmp, 'gtFine', split, city, `${stem}_gtFine_labelTrainIds.png`), {
              data: scene.label,
              channels: 1,
              ...size,
            }),
          ]);
        };
        // Errors are collected, not left as unhandled rejections while later images are drawn.
        pending.push(
          write().catch((error: unknown) => {
            failure ??= error;
          }),
        );
        if (pending.length >= IN_FLIGHT) await pending.shift();
        if (failure !== null) throw failure;
      }
    }
    await Promise.all(pending);
    if (failure !== null) throw failure;
    await writeFile(join(tmp, 'README.md'), readme(r));
    await writeFile(join(tmp, MARKER), markerContent(r));
    // Swap: move any old dataset aside first, so a failure here leaves one of the two intact.
    const old = `${tmp}.old`;
    let hadOld = false;
    try {
      await rename(root, old);
      hadOld = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    try {
      await rename(tmp, root);
    } catch (error) {
      if (hadOld) await rename(old, root);
      throw error;
    }
    if (hadOld) await rm(old, { recursive: true, force: true });
  } catch (error) {
    // Let in-flight writes settle first, or they could recreate files while the tree is removed.
    await Promise.allSettled(pending);
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  return { train: r.trainCount, val: r.valCount, root };
}
