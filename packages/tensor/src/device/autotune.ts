/**
 * Kernel autotuning, as cuDNN's benchmark mode does it: the first use of a shape class runs the
 * kernel family's default variant and notes the class; `run()` (the trainer calls it after its
 * first step) then times every candidate variant of the noted classes on this adapter and keeps the
 * fastest, cached in a JSON file keyed by the adapter and driver, so a later process starts tuned.
 * Candidates compute the same sums in the same order (except where a reduction is split into a
 * different number of partial sums), so a choice changes speed, not results. A candidate that fails
 * on this adapter (a limit, a driver's compile error) is left out with a warning.
 *
 * On by default on hardware adapters; off on software ones (lavapipe: a CPU shared with the data
 * loader times too noisily to tune, and tests stay on the measured defaults). `SEGTRAIN_AUTOTUNE=1`
 * or `0` overrides; `SEGTRAIN_AUTOTUNE_CACHE` names the cache file.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export const AUTOTUNE_ENV = 'SEGTRAIN_AUTOTUNE';
export const AUTOTUNE_CACHE_ENV = 'SEGTRAIN_AUTOTUNE_CACHE';
/** Bump when a kernel family's candidates change speed, so old choices are not trusted. */
const CACHE_FORMAT = 1;

export interface TuneCandidate<C> {
  /** Stable name, stored in the cache (e.g. the variant's kernel key suffix). */
  readonly name: string;
  readonly config: C;
}

/** A shape class's scratch inputs: `run` records one call of the kernel with a candidate's config. */
export interface TuneTrial<C> {
  run(config: C): void;
  dispose(): void;
}

export interface TuneResult {
  readonly family: string;
  readonly shapeClass: string;
  readonly chosen: string;
  /** The candidate used untuned (the family's default). */
  readonly fallback: string;
  /** Milliseconds per call of each candidate (best of the timed batches). */
  readonly ms: Readonly<Record<string, number>>;
}

interface Pending {
  readonly candidates: readonly TuneCandidate<unknown>[];
  readonly prepare: () => TuneTrial<unknown>;
}

interface CacheFile {
  format: number;
  adapters: Record<string, Record<string, TuneResult>>;
}

export interface AutotuneOptions {
  readonly enabled: boolean;
  /** The JSON cache; null keeps choices in memory only. */
  readonly cacheFile: string | null;
}

/** Options from the environment: on for hardware adapters unless SEGTRAIN_AUTOTUNE says otherwise. */
export function autotuneOptionsFromEnv(software: boolean, env = process.env): AutotuneOptions {
  const flag = env[AUTOTUNE_ENV];
  if (flag !== undefined && flag !== '' && flag !== '0' && flag !== '1')
    throw new Error(`${AUTOTUNE_ENV}=${flag}: expected 1 (tune kernels) or 0 (use the defaults)`);
  const enabled = flag === '1' || (flag !== '0' && !software);
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return { enabled, cacheFile: env[AUTOTUNE_CACHE_ENV] || join(cacheHome, 'segtrain', 'autotune.json') };
}

const key = (family: string, shapeClass: string) => `${family}|${shapeClass}`;

/**
 * Wall time aimed for in one timed batch: long enough that a submit's overhead fades, short enough
 * that a model's few hundred shape classes tune in a minute or two on a GPU.
 */
const BATCH_MS = 5;
const MAX_BATCH = 64;
const TIMED_BATCHES = 2;

export class Autotuner {
  private readonly chosen = new Map<string, TuneResult>();
  /** Choices matched to their configs, so a tuned call costs one map lookup. */
  private readonly resolved = new Map<string, unknown>();
  private readonly pendingClasses = new Map<string, Pending>();
  private cacheLoaded = false;

  constructor(
    /** Adapter identity and driver: choices made on one adapter say nothing about another. */
    readonly adapterKey: string,
    readonly options: AutotuneOptions,
    private readonly sync: () => Promise<void>,
  ) {}

  /** Shape classes used since the last `run()` that have no choice yet. */
  get pending(): number {
    return this.pendingClasses.size;
  }

  /** Every choice known for this adapter (tuned here or read from the cache). */
  choices(): TuneResult[] {
    this.loadCache();
    return [...this.chosen.values()];
  }

  /**
   * The config for a shape class: the tuned choice when there is one, else `fallback` (the family's
   * default, which must be the first candidate), noting the class for `run()` when tuning is on.
   * `candidates` and `prepare` are called only when the class is looked up or tuned.
   */
  choose<C>(
    family: string,
    shapeClass: () => string,
    fallback: C,
    candidates: () => readonly TuneCandidate<C>[],
    prepare: () => TuneTrial<C>,
  ): C {
    if (!this.options.enabled) return fallback;
    const id = key(family, shapeClass());
    const resolved = this.resolved.get(id);
    if (resolved !== undefined) return resolved as C;
    this.loadCache();
    const known = this.chosen.get(id);
    const list = candidates();
    const match = known && list.find((c) => c.name === known.chosen);
    if (match) {
      this.resolved.set(id, match.config);
      return match.config;
    }
    if (list.length > 1 && !this.pendingClasses.has(id))
      this.pendingClasses.set(id, { candidates: list, prepare: prepare as () => TuneTrial<unknown> });
    return fallback;
  }

  /** Times the candidates of every pending shape class, keeps the fastest and saves the cache. */
  async run(): Promise<TuneResult[]> {
    const results: TuneResult[] = [];
    for (const [id, pending] of this.pendingClasses) {
      const [family = '', shapeClass = ''] = id.split('|');
      const ms: Record<string, number> = {};
      let trial: TuneTrial<unknown> | null = null;
      try {
        // Scratch operands as large as the call's: a failure keeps the default for the class.
        trial = pending.prepare();
        for (const candidate of pending.candidates) {
          try {
            ms[candidate.name] = await this.time(trial, candidate.config);
          } catch (error) {
            console.warn(
              `autotune ${family} ${shapeClass}: candidate ${candidate.name} failed on this adapter and is left out (${(error as Error).message})`,
            );
          }
        }
      } catch (error) {
        console.warn(`autotune ${family} ${shapeClass}: keeping the default (${(error as Error).message})`);
      } finally {
        trial?.dispose();
      }
      const fallback = pending.candidates[0]?.name ?? '';
      const timed = Object.entries(ms);
      const chosen = timed.length
        ? timed.reduce((best, next) => (next[1] < best[1] ? next : best))[0]
        : fallback;
      const result = { family, shapeClass, chosen, fallback, ms };
      this.chosen.set(id, result);
      this.resolved.set(id, pending.candidates.find((c) => c.name === chosen)?.config);
      results.push(result);
    }
    this.pendingClasses.clear();
    if (results.length > 0) this.saveCache();
    return results;
  }

  private async time(trial: TuneTrial<unknown>, config: unknown): Promise<number> {
    // The first call compiles the pipeline and sizes the batch.
    let start = performance.now();
    trial.run(config);
    await this.sync();
    const once = Math.max(performance.now() - start, 1e-3);
    const calls = Math.min(MAX_BATCH, Math.max(1, Math.ceil(BATCH_MS / once)));
    let best = Number.POSITIVE_INFINITY;
    for (let b = 0; b < TIMED_BATCHES; b++) {
      start = performance.now();
      for (let i = 0; i < calls; i++) trial.run(config);
      await this.sync();
      best = Math.min(best, (performance.now() - start) / calls);
    }
    return best;
  }

  private readCache(): CacheFile {
    const file = this.options.cacheFile;
    const empty: CacheFile = { format: CACHE_FORMAT, adapters: {} };
    if (!file) return empty;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return empty;
    }
    try {
      const parsed = JSON.parse(text) as Partial<CacheFile>;
      if (parsed.format !== CACHE_FORMAT || typeof parsed.adapters !== 'object' || parsed.adapters === null)
        return empty;
      return parsed as CacheFile;
    } catch (error) {
      console.warn(
        `autotune cache ${file} is not valid JSON (${(error as Error).message}); ignoring it. Delete the file to silence this; it is rewritten after the next tuning.`,
      );
      return empty;
    }
  }

  private loadCache(): void {
    if (this.cacheLoaded) return;
    this.cacheLoaded = true;
    const entries = this.readCache().adapters[this.adapterKey] ?? {};
    for (const [id, result] of Object.entries(entries)) if (!this.chosen.has(id)) this.chosen.set(id, result);
  }

  /** Merges this adapter's choices into the file (another process may have written it meanwhile). */
  private saveCache(): void {
    const file = this.options.cacheFile;
    if (!file) return;
    const cache = this.readCache();
    cache.adapters[this.adapterKey] = {
      ...cache.adapters[this.adapterKey],
      ...Object.fromEntries(this.chosen),
    };
    const temp = `${file}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(temp, `${JSON.stringify(cache, null, 1)}\n`);
      renameSync(temp, file);
    } catch (error) {
      rmSync(temp, { force: true });
      console.warn(
        `autotune: could not write ${file} (${(error as Error).message}); the choices hold for this process only. Set ${AUTOTUNE_CACHE_ENV} to a writable path.`,
      );
    }
  }
}
