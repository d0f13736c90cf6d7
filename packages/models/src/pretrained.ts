/**
 * PaddleSeg's `pretrained:` keys: a local safetensors file, `.pdparams` file or `.tar.gz` archive of
 * one (PaddleSeg's released backbones) loads into the module; a URL loads from the local cache only
 * (nothing is downloaded at run time), else one warning and the module keeps its initialisers. Loading follows PaddleSeg's `load_pretrained_model`: keys the file lacks are
 * warned about, shape mismatches are skipped with `[SKIP]`, and it ends with
 * "There are K/N variables loaded into <Class>.".
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { type HostTensor, type Module, readWeights } from '@segtrain/nn';
import type { Device } from '@segtrain/tensor';
import { buildModel, type ComponentConfig, type SegModel } from './registry.js';

export interface PretrainedOptions {
  /** Where messages go, one line each without a newline (default: stderr). */
  readonly log?: (line: string) => void;
  /** Overrides the URL cache directory (default: pretrainedCacheDir()). */
  readonly cacheDir?: string;
}

export interface PretrainedReport {
  /** 'loaded' when a file was read; 'not-cached' when a URL had no cached file (nothing loaded). */
  readonly status: 'loaded' | 'not-cached';
  /** The file read (or, for 'not-cached', the file that was looked for). */
  readonly file: string;
  readonly loaded: string[];
  /** Module keys the file lacks (kept at their initialisers). */
  readonly missing: string[];
  /** File keys the module lacks (ignored). */
  readonly unexpected: string[];
  /** Keys present in both whose shapes (or dtypes) differ (kept at their initialisers). */
  readonly skipped: string[];
}

export function isUrl(pathOrUrl: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(pathOrUrl);
}

/** The URL cache directory: $SEGTRAIN_CACHE, else ~/.cache/segtrain/pretrained. */
export function pretrainedCacheDir(): string {
  const env = process.env.SEGTRAIN_CACHE;
  return env && env.length > 0 ? env : join(homedir(), '.cache', 'segtrain', 'pretrained');
}

/**
 * The cached files a URL may have, in the order they are tried: the converted
 * `<cache>/<name>.safetensors`, the download itself (`<cache>/PP_STDCNet1.tar.gz`, or
 * `<cache>/x.pdparams`), and PaddleSeg's unpacked layout `<cache>/<name>/model.pdparams`.
 */
export function cachedPretrainedPaths(url: string, cacheDir = pretrainedCacheDir()): string[] {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    pathname = url;
  }
  const file = decodeURIComponent(basename(pathname));
  const name = file.replace(/\.tar\.gz$|\.tgz$|\.tar$|\.pdparams$|\.zip$|\.safetensors$/i, '');
  const candidates = [
    join(cacheDir, `${name}.safetensors`),
    join(cacheDir, file),
    join(cacheDir, name, 'model.pdparams'),
  ];
  return [...new Set(candidates)];
}

/** The first cached file of `cachedPretrainedPaths` (the converted safetensors one when none exists). */
export function cachedPretrainedPath(url: string, cacheDir = pretrainedCacheDir()): string {
  const candidates = cachedPretrainedPaths(url, cacheDir);
  return candidates.find((c) => existsSync(c)) ?? (candidates[0] as string);
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Loads a pretrained safetensors file (or a URL's cached copy) into `module`, by state-dict name
 * relative to `module` (a backbone's keys carry no `backbone.` prefix). A missing local file is an
 * error naming it; an uncached URL is one warning and leaves the initialisers.
 */
export async function loadPretrained(
  module: Module,
  pathOrUrl: string,
  options: PretrainedOptions = {},
): Promise<PretrainedReport> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const className = module.constructor.name;
  let file = pathOrUrl;
  if (isUrl(pathOrUrl)) {
    file = cachedPretrainedPath(pathOrUrl, options.cacheDir);
    if (!existsSync(file)) {
      log(
        `[WARNING] pretrained weights ${pathOrUrl} for ${className} are not in the local cache ` +
          `(looked for ${cachedPretrainedPaths(pathOrUrl, options.cacheDir).join(', ')}); ` +
          `nothing is downloaded at run time, so ${className} starts from its initialisers. ` +
          `Put the downloaded file (or its safetensors conversion) at one of those paths (or set SEGTRAIN_CACHE) to use it.`,
      );
      return { status: 'not-cached', file, loaded: [], missing: [], unexpected: [], skipped: [] };
    }
  } else if (!existsSync(file)) {
    throw new Error(`The pretrained model file is not found: ${file}`);
  }
  log(`Loading pretrained model from ${file}`);
  const { tensors } = await readWeights(file);
  const own = module.stateDict();
  const values = new Map<string, HostTensor>();
  const missing: string[] = [];
  const skipped: string[] = [];
  for (const [name, t] of own) {
    const v = tensors.get(name);
    if (!v) {
      log(`[WARNING] ${name} is not in pretrained model`);
      missing.push(name);
      continue;
    }
    if (!sameShape(v.shape, t.shape)) {
      log(
        `[SKIP] Shape of pretrained params ${name} doesn't match.(Pretrained: [${v.shape.join(', ')}], Actual: [${t.shape.join(', ')}])`,
      );
      skipped.push(name);
      continue;
    }
    if (!(v.data instanceof Float32Array)) {
      log(`[SKIP] Pretrained params ${name} have dtype ${v.dtype}, not a float type`);
      skipped.push(name);
      continue;
    }
    values.set(name, { shape: v.shape, data: v.data });
  }
  const unexpected = [...tensors.keys()].filter((k) => !own.has(k));
  if (unexpected.length)
    log(
      `[WARNING] ${unexpected.length} key(s) in ${file} are not in ${className} and were ignored: ${unexpected.join(', ')}`,
    );
  const { loaded } = module.loadStateDict(values);
  log(`There are ${loaded.length}/${own.size} variables loaded into ${className}.`);
  return { status: 'loaded', file, loaded, missing, unexpected, skipped };
}

/**
 * A model block with its own and its backbone's `pretrained` removed: the architecture alone, for
 * benchmarks and tools that build a model without loading (or downloading) weights.
 */
export function withoutPretrained(block: ComponentConfig): ComponentConfig {
  const { pretrained: _model, ...rest } = block as ComponentConfig & { pretrained?: unknown };
  const backbone = rest.backbone as (ComponentConfig & { pretrained?: unknown }) | undefined;
  if (!backbone) return rest as ComponentConfig;
  const { pretrained: _backbone, ...backboneRest } = backbone;
  return { ...rest, backbone: backboneRest } as ComponentConfig;
}

/** The `backbone` child of a model, if it has one. */
function backboneOf(model: Module): Module | undefined {
  return model.namedModules().find(([name]) => name === 'backbone')?.[1];
}

/**
 * Builds a model from a resolved `model` block, then loads its `pretrained` weights: the
 * backbone-level one into the backbone first (as PaddleSeg's backbone constructor does), then the
 * model-level one into the whole model.
 */
export async function buildModelWithPretrained(
  device: Device,
  modelBlock: ComponentConfig,
  log?: (line: string) => void,
): Promise<SegModel> {
  const model = buildModel(device, modelBlock);
  const options: PretrainedOptions = log ? { log } : {};
  const backboneBlock = modelBlock.backbone as ComponentConfig | undefined;
  const backbonePretrained = backboneBlock?.pretrained;
  if (typeof backbonePretrained === 'string' && backbonePretrained.length > 0) {
    const backbone = backboneOf(model);
    if (!backbone)
      throw new Error(`${modelBlock.type}: model.backbone.pretrained is set but the model has no backbone`);
    await loadPretrained(backbone, backbonePretrained, options);
  }
  const modelPretrained = modelBlock.pretrained;
  if (typeof modelPretrained === 'string' && modelPretrained.length > 0)
    await loadPretrained(model, modelPretrained, options);
  return model;
}
