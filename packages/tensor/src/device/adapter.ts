/**
 * WebGPU adapter discovery through Dawn (npm package `webgpu`).
 *
 * Dawn is torn down when the object returned by `create()` is garbage-collected, and the next await
 * then aborts the process. Every instance made here is therefore held in a module-level map for
 * the life of the process.
 *
 * Adapter choice: the environment variable `SEGTRAIN_ADAPTER` may name an adapter by its index in
 * the list Dawn reports (`0`, `1`, ...) or by a case-insensitive substring of its name
 * (e.g. `llvmpipe`). Unset, Dawn's default adapter is used.
 */
import { create, globals } from 'webgpu';
import { gpuPollModeFromEnv, installPolitePolling } from './poll.js';

export interface AdapterReport {
  /** Vendor as Dawn reports it, e.g. `mesa`, `nvidia`. */
  vendor: string;
  /** Architecture, e.g. `software` for llvmpipe/lavapipe. */
  architecture: string;
  /** Device id string from Dawn (sanitised by Dawn, e.g. `llvmpipe-llvm-15-0-6-256-bits-`). */
  device: string;
  /** Dawn's adapter description. */
  description: string;
  /** The driver description string Dawn gives, e.g. `llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1`. */
  driver: string;
  /** Dawn backend (`vulkan`, `metal`, `d3d12`, ...), or `unknown` when Dawn did not say. */
  backend: string;
  /** Human-readable adapter name as Dawn lists it, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  name: string;
  /** True for CPU (software) adapters: llvmpipe/lavapipe, SwiftShader, or Dawn's fallback flag. */
  isFallback: boolean;
  /** Every numeric field of `adapter.limits`. */
  limits: Record<string, number>;
  /** `adapter.features`, sorted. */
  features: string[];
}

/** One adapter as Dawn enumerates it. */
export interface AdapterListing {
  index: number;
  backend: string;
  name: string;
}

/** The adapter chosen by {@link requestAdapter}, with where it came from. */
export interface ChosenAdapter {
  adapter: GPUAdapter;
  /** The Dawn listing entry it matches, when one was found. */
  listing: AdapterListing | undefined;
}

export const ADAPTER_ENV = 'SEGTRAIN_ADAPTER';

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader/i;
/** An adapter name nothing can contain: makes Dawn fail and list the adapters it has. */
const NO_SUCH_ADAPTER = 'adapter=\u0001segtrain-list-adapters\u0001';

// Dawn instances by their option string, held for the life of the process (see the module doc).
const instances = new Map<string, GPU>();
let globalsInstalled = false;
let listingCache: Promise<AdapterListing[]> | undefined;

process.env.XDG_RUNTIME_DIR ??= '/tmp';

/** The Dawn `GPU` object for the given options, created once and never released. */
export function getGpu(options: readonly string[] = []): GPU {
  if (!globalsInstalled) {
    // GPUBufferUsage, GPUMapMode, ... as globals, as in a browser.
    Object.assign(globalThis, globals);
    if (gpuPollModeFromEnv() === 'sleep') installPolitePolling();
    globalsInstalled = true;
  }
  const key = options.join('\n');
  let gpu = instances.get(key);
  if (!gpu) {
    gpu = create([...options]);
    instances.set(key, gpu);
  }
  return gpu;
}

/** Parse Dawn's "Available adapters:" list (` * backend: 'vulkan', name: 'llvmpipe (...)'`). */
export function parseAdapterListing(message: string): AdapterListing[] {
  const out: AdapterListing[] = [];
  for (const m of message.matchAll(/^\s*\*\s*backend:\s*'([^']*)',\s*name:\s*'(.*)'\s*$/gm)) {
    out.push({ index: out.length, backend: m[1] ?? '', name: m[2] ?? '' });
  }
  return out;
}

/**
 * Every adapter Dawn can see, in Dawn's order. WebGPU itself has no enumeration: Dawn prints the
 * list when asked for an adapter that does not exist, and that list is parsed here.
 */
export function listAdapters(): Promise<AdapterListing[]> {
  listingCache ??= (async () => {
    try {
      await getGpu([NO_SUCH_ADAPTER]).requestAdapter();
      return [];
    } catch (err) {
      return parseAdapterListing(err instanceof Error ? err.message : String(err));
    }
  })();
  return listingCache;
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Resolve a `SEGTRAIN_ADAPTER` value against the listing; throws when nothing matches. */
export function matchAdapter(value: string, seen: readonly AdapterListing[]): AdapterListing {
  const wanted = value.trim();
  let match: AdapterListing | undefined;
  if (/^\d+$/.test(wanted)) {
    match = seen[Number(wanted)];
  } else {
    const needle = wanted.toLowerCase();
    match = seen.find((a) => a.name.toLowerCase().includes(needle));
  }
  if (!match) {
    const list = seen.length ? seen.map((a) => `[${a.index}] ${a.name} (${a.backend})`).join('; ') : 'none';
    throw new Error(
      `${ADAPTER_ENV}=${JSON.stringify(value)} matches no WebGPU adapter (an index or a substring of ` +
        `the adapter name is expected); adapters seen: ${list}`,
    );
  }
  return match;
}

/**
 * Request the adapter to use: the one `SEGTRAIN_ADAPTER` names, or Dawn's default. Resolves to
 * null when there is no adapter (and `SEGTRAIN_ADAPTER` is unset).
 */
export async function requestAdapter(): Promise<ChosenAdapter | null> {
  const seen = await listAdapters();
  const wanted = process.env[ADAPTER_ENV];
  if (wanted !== undefined && wanted.trim() !== '') {
    const listing = matchAdapter(wanted, seen);
    // Dawn's `adapter=` option matches a (case-sensitive) substring: the full name is exact.
    const adapter = await getGpu([`backend=${listing.backend}`, `adapter=${listing.name}`]).requestAdapter();
    if (!adapter) {
      throw new Error(
        `${ADAPTER_ENV}=${JSON.stringify(wanted)}: Dawn returned no adapter for "${listing.name}"`,
      );
    }
    return { adapter, listing };
  }
  const adapter = await getGpu().requestAdapter();
  if (!adapter) return null;
  return { adapter, listing: findListing(adapter.info, seen) };
}

function findListing(info: GPUAdapterInfo, seen: readonly AdapterListing[]): AdapterListing | undefined {
  const device = normalise(info.device);
  const byName = seen.find((a) => device !== '' && normalise(a.name) === device);
  if (byName) return byName;
  return seen.length === 1 ? seen[0] : undefined;
}

/** Whether an adapter is a CPU (software) implementation. */
export function isSoftwareAdapter(info: Pick<GPUAdapterInfo, 'device' | 'description'>, name = ''): boolean {
  return SOFTWARE_ADAPTER.test(`${info.device} ${info.description} ${name}`);
}

/** Describe an adapter: identity, driver, fallback flag, limits and features. */
export function describeAdapter(adapter: GPUAdapter, listing?: AdapterListing): AdapterReport {
  const info = adapter.info;
  // `isFallbackAdapter` lives on GPUAdapterInfo in current WebGPU (and in this Dawn); older
  // implementations had it on GPUAdapter.
  const legacy = (adapter as unknown as { isFallbackAdapter?: unknown }).isFallbackAdapter;
  const name = listing?.name ?? '';
  const limits: Record<string, number> = {};
  // The limits are prototype getters: for...in sees them, Object.keys does not.
  const rawLimits = adapter.limits as unknown as Record<string, unknown>;
  for (const key in rawLimits) {
    const value = rawLimits[key];
    if (typeof value === 'number') limits[key] = value;
  }
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    driver: info.description,
    backend: listing?.backend ?? 'unknown',
    name: name || info.device,
    isFallback: info.isFallbackAdapter === true || legacy === true || isSoftwareAdapter(info, name),
    limits,
    features: [...adapter.features].sort(),
  };
}

/**
 * Find the WebGPU adapter segtrain would use and describe it; null when there is none.
 * Throws when `SEGTRAIN_ADAPTER` is set and matches no adapter.
 */
export async function probeAdapter(): Promise<AdapterReport | null> {
  const chosen = await requestAdapter();
  return chosen ? describeAdapter(chosen.adapter, chosen.listing) : null;
}

/** One line for logs: `mesa / llvmpipe (LLVM 15.0.6, 256 bits) [vulkan] llvmpipe: Mesa 25.0.7 ...`. */
export function formatAdapterReport(report: AdapterReport): string {
  const cpu = report.isFallback ? ', CPU fallback' : '';
  return `${report.vendor || 'unknown vendor'} / ${report.name} [${report.backend}${cpu}] ${report.driver}`;
}
