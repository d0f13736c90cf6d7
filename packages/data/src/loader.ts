import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { TransformConfig } from '@segtrain/config';
import { DatasetError, type SegDataset } from './datasets.js';
import { sampleRandom } from './random.js';
import { loadSample } from './sample.js';
import type { BatchSampler } from './sampler.js';
import { buildTransforms } from './transforms/index.js';
import type { Batch, Sample, Transform } from './types.js';

export interface DataLoaderOptions {
  dataset: SegDataset;
  /** Resolved transform configs; workers rebuild the pipeline from them. */
  transforms: readonly TransformConfig[];
  sampler: BatchSampler;
  /** 0: decode in the calling thread; n > 0: n worker threads. */
  numWorkers: number;
  /** Batches requested ahead of the consumer (default 2 · numWorkers). */
  prefetch?: number;
  /** Base of every sample's random stream, `sampleRandom(seed, epoch, index)`. */
  seed: number;
}

/** A batch plus how long the consumer waited for it (PaddleSeg's reader_cost), in ms. */
export interface LoadedBatch extends Batch {
  readonly readerWait: number;
}

export interface EpochOptions {
  /** Batches of this epoch to skip without loading them (resuming mid-epoch). */
  skipBatches?: number;
}

function sizeList(samples: readonly { h: number; w: number }[]): string {
  return samples.map((s) => `${s.h}×${s.w}`).join(', ');
}

/**
 * Stacks samples into NCHW float32 images and N×H×W int32 labels. All images (and all labels)
 * of a batch must have one size.
 */
export function collate(
  samples: readonly Sample[],
  indices: readonly number[],
  imagePaths: readonly string[],
): Batch {
  const first = samples[0];
  if (!first) throw new RangeError('collate: empty batch');
  const n = samples.length;
  const { height: h, width: w, channels: c } = first;
  const hint =
    'add RandomPaddingCrop or Resize to the transforms so every sample gets the same size, or use batch_size 1';
  if (samples.some((s) => s.height !== h || s.width !== w || s.channels !== c)) {
    throw new DatasetError(
      `samples of one batch must have the same size: dataset indices [${indices.join(', ')}] are ` +
        `${sizeList(samples.map((s) => ({ h: s.height, w: s.width })))} (H×W) — ${hint}`,
    );
  }
  const hw = h * w;
  const img = new Float32Array(n * c * hw);
  samples.forEach((s, k) => {
    const src = s.img;
    const base = k * c * hw;
    for (let ch = 0; ch < c; ch++) {
      const dst = base + ch * hw;
      for (let p = 0; p < hw; p++) img[dst + p] = src[p * c + ch] ?? 0;
    }
  });
  const withLabel = samples.filter((s) => s.label !== null).length;
  let label: Int32Array | null = null;
  let labelShape: readonly [number, number, number] = [n, 0, 0];
  if (withLabel > 0) {
    if (withLabel !== n) {
      throw new DatasetError(`batch [${indices.join(', ')}] mixes samples with and without labels`);
    }
    const lh = first.labelHeight;
    const lw = first.labelWidth;
    if (samples.some((s) => s.labelHeight !== lh || s.labelWidth !== lw)) {
      throw new DatasetError(
        `labels of one batch must have the same size: dataset indices [${indices.join(', ')}] have labels ` +
          `${sizeList(samples.map((s) => ({ h: s.labelHeight, w: s.labelWidth })))} (H×W) — ${hint}`,
      );
    }
    label = new Int32Array(n * lh * lw);
    samples.forEach((s, k) => {
      if (s.label) label?.set(s.label, k * lh * lw);
    });
    labelShape = [n, lh, lw];
  }
  return {
    img,
    label,
    shape: [n, c, h, w],
    labelShape,
    indices: [...indices],
    transInfo: samples.map((s) => s.transInfo),
    imagePaths: [...imagePaths],
  };
}

async function loadBatch(
  dataset: SegDataset,
  transforms: readonly Transform[],
  seed: number,
  epoch: number,
  indices: readonly number[],
): Promise<Batch> {
  // Concurrent decoding (libvips works off-thread); each sample's own stream keeps this deterministic.
  const samples = await Promise.all(
    indices.map((i) => loadSample(dataset, i, transforms, sampleRandom(seed, epoch, i))),
  );
  return collate(
    samples,
    indices,
    indices.map((i) => dataset.entries[i]?.image ?? ''),
  );
}

// ---- worker side -------------------------------------------------------------------------------

const WORKER_TAG = 'segtrain-data-loader-worker';

interface WorkerInit {
  readonly tag: typeof WORKER_TAG;
  readonly dataset: SegDataset;
  readonly transforms: readonly TransformConfig[];
  readonly seed: number;
}

interface LoadRequest {
  readonly type: 'load';
  readonly id: number;
  readonly epoch: number;
  readonly indices: readonly number[];
}

type WorkerReply =
  | { readonly type: 'batch'; readonly id: number; readonly batch: Batch }
  | {
      readonly type: 'error';
      readonly id: number;
      readonly name: string;
      readonly message: string;
      readonly stack: string | undefined;
    };

function isWorkerInit(v: unknown): v is WorkerInit {
  return typeof v === 'object' && v !== null && (v as { tag?: unknown }).tag === WORKER_TAG;
}

function runWorker(init: WorkerInit): void {
  const port = parentPort;
  if (!port) return;
  const transforms = buildTransforms(init.transforms);
  let queue = Promise.resolve();
  const handle = async (req: LoadRequest): Promise<void> => {
    try {
      const batch = await loadBatch(init.dataset, transforms, init.seed, req.epoch, req.indices);
      const transfer: ArrayBuffer[] = [batch.img.buffer as ArrayBuffer];
      if (batch.label) transfer.push(batch.label.buffer as ArrayBuffer);
      port.postMessage({ type: 'batch', id: req.id, batch } satisfies WorkerReply, transfer);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      port.postMessage({
        type: 'error',
        id: req.id,
        name: err.name,
        message: err.message,
        stack: err.stack,
      } satisfies WorkerReply);
    }
  };
  // One batch at a time per worker; parallelism comes from the number of workers.
  port.on('message', (req: LoadRequest) => {
    queue = queue.then(() => handle(req));
  });
}

// ---- main side ---------------------------------------------------------------------------------

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Batches further ahead may fail before they are awaited; keep that from being "unhandled".
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function reviveError(reply: Extract<WorkerReply, { type: 'error' }>): Error {
  const e =
    reply.name === 'DatasetError'
      ? new DatasetError(reply.message)
      : reply.name === 'RangeError'
        ? new RangeError(reply.message)
        : new Error(reply.message);
  e.name = reply.name;
  if (reply.stack) e.stack = reply.stack;
  return e;
}

interface WorkerHandle {
  readonly worker: Worker;
  readonly pending: Map<number, Deferred<Batch>>;
  alive: boolean;
  stopping: boolean;
  readonly exited: Promise<void>;
}

/** The URL of this module: loader.ts under tsx, loader.js when compiled. Workers run it too. */
const SELF_URL = new URL(import.meta.url);

/**
 * The worker's entry: this module itself when compiled. From TypeScript sources the worker needs
 * tsx, and on Node 20 `--import tsx` registers its hooks in the main thread only, so the entry is a
 * small module that registers tsx in the worker and then imports this file.
 */
function workerEntry(): URL {
  if (!SELF_URL.pathname.endsWith('.ts')) return SELF_URL;
  let api: string;
  try {
    api = import.meta.resolve('tsx/esm/api');
  } catch {
    return SELF_URL;
  }
  const code =
    `import { register } from ${JSON.stringify(api)};\nregister();\n` +
    `await import(${JSON.stringify(SELF_URL.href)});\n`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

/**
 * Yields the collated batches of an epoch in sampler order. Sample i of epoch e is always drawn with
 * `sampleRandom(seed, e, i)`, so batches are bit-identical for any `numWorkers`.
 */
export class DataLoader {
  readonly dataset: SegDataset;
  readonly sampler: BatchSampler;
  readonly numWorkers: number;
  readonly prefetch: number;
  readonly seed: number;
  private readonly transformConfigs: readonly TransformConfig[];
  private readonly transforms: Transform[];
  private workers: WorkerHandle[] = [];
  /** Every worker thread not yet exited, including ones being stopped. */
  private readonly live = new Set<WorkerHandle>();
  private nextId = 0;
  private iterating = false;
  private closed = false;

  constructor(options: DataLoaderOptions) {
    const { dataset, sampler, numWorkers, seed } = options;
    if (!Number.isInteger(numWorkers) || numWorkers < 0) {
      throw new RangeError(`DataLoader: numWorkers must be an integer ≥ 0, got ${numWorkers}`);
    }
    const prefetch = options.prefetch ?? Math.max(1, 2 * numWorkers);
    if (!Number.isInteger(prefetch) || prefetch < 1) {
      throw new RangeError(`DataLoader: prefetch must be an integer ≥ 1, got ${prefetch}`);
    }
    this.dataset = dataset;
    this.sampler = sampler;
    this.numWorkers = numWorkers;
    this.prefetch = prefetch;
    this.seed = seed;
    this.transformConfigs = options.transforms;
    // Built here as well so configuration errors surface at construction, not inside a worker.
    this.transforms = buildTransforms(options.transforms);
  }

  /** Batches per epoch. */
  get length(): number {
    return this.sampler.length;
  }

  /** Worker threads currently running (0 after close() or an abandoned epoch). */
  get activeWorkers(): number {
    return this.live.size;
  }

  async *epoch(epoch: number, options: EpochOptions = {}): AsyncGenerator<LoadedBatch, void, undefined> {
    if (this.closed) throw new Error('DataLoader is closed');
    if (this.iterating) {
      throw new Error('DataLoader: an epoch is already being iterated — finish or break out of it first');
    }
    const skip = options.skipBatches ?? 0;
    if (!Number.isInteger(skip) || skip < 0) {
      throw new RangeError(`skipBatches must be an integer ≥ 0, got ${skip}`);
    }
    this.iterating = true;
    let completed = false;
    try {
      this.sampler.setEpoch(epoch);
      const plan = this.sampler.batches().slice(skip);
      if (this.numWorkers === 0) {
        for (const indices of plan) {
          const t0 = performance.now();
          const batch = await loadBatch(this.dataset, this.transforms, this.seed, epoch, indices);
          yield { ...batch, readerWait: performance.now() - t0 };
        }
      } else {
        if (plan.length > 0) this.startWorkers();
        const results = new Map<number, Promise<Batch>>();
        let dispatched = 0;
        const pump = (consumed: number) => {
          while (dispatched < plan.length && dispatched - consumed < this.prefetch) {
            results.set(
              dispatched,
              this.dispatch(dispatched % this.numWorkers, epoch, plan[dispatched] ?? []),
            );
            dispatched++;
          }
        };
        for (let k = 0; k < plan.length; k++) {
          pump(k);
          const t0 = performance.now();
          const batch = await (results.get(k) as Promise<Batch>);
          const readerWait = performance.now() - t0;
          results.delete(k);
          // Refill before handing the batch out, so workers run while the consumer trains.
          pump(k + 1);
          yield { ...batch, readerWait };
        }
      }
      completed = true;
    } finally {
      this.iterating = false;
      // An abandoned or failed epoch leaves work in flight: stop the workers (fresh ones next epoch).
      if (!completed) await this.stopWorkers();
    }
  }

  /** Terminates the workers; the loader cannot be used afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stopWorkers();
  }

  private startWorkers(): void {
    if (this.workers.length === this.numWorkers && this.workers.every((h) => h.alive)) return;
    const init: WorkerInit = {
      tag: WORKER_TAG,
      dataset: this.dataset,
      transforms: this.transformConfigs,
      seed: this.seed,
    };
    const entry = workerEntry();
    this.workers = Array.from({ length: this.numWorkers }, (_, i) => {
      const worker = new Worker(entry, { workerData: init, name: `segtrain-data-${i}` });
      const pending = new Map<number, Deferred<Batch>>();
      let markExited!: () => void;
      const handle: WorkerHandle = {
        worker,
        pending,
        alive: true,
        stopping: false,
        exited: new Promise<void>((r) => {
          markExited = r;
        }),
      };
      const failAll = (err: Error) => {
        for (const d of pending.values()) d.reject(err);
        pending.clear();
      };
      worker.on('message', (reply: WorkerReply) => {
        const d = pending.get(reply.id);
        if (!d) return;
        pending.delete(reply.id);
        if (reply.type === 'batch') d.resolve(reply.batch);
        else d.reject(reviveError(reply));
        // An idle worker must not keep the process alive (e.g. when close() is forgotten).
        if (pending.size === 0) worker.unref();
      });
      worker.on('error', (err) => failAll(err));
      worker.on('messageerror', (err) => failAll(err));
      worker.on('exit', (code) => {
        handle.alive = false;
        this.live.delete(handle);
        failAll(
          new Error(
            handle.stopping
              ? 'data loader worker was terminated'
              : `data loader worker ${i} exited unexpectedly with code ${code}`,
          ),
        );
        markExited();
      });
      worker.unref();
      this.live.add(handle);
      return handle;
    });
  }

  private dispatch(workerIndex: number, epoch: number, indices: readonly number[]): Promise<Batch> {
    const handle = this.workers[workerIndex];
    const d = deferred<Batch>();
    if (!handle?.alive) {
      d.reject(new Error(`data loader worker ${workerIndex} is not running`));
      return d.promise;
    }
    const id = this.nextId++;
    handle.pending.set(id, d);
    handle.worker.ref();
    handle.worker.postMessage({ type: 'load', id, epoch, indices: [...indices] } satisfies LoadRequest);
    return d.promise;
  }

  private async stopWorkers(): Promise<void> {
    const handles = this.workers;
    this.workers = [];
    await Promise.all(
      handles.map(async (h) => {
        if (!h.alive) return;
        h.stopping = true;
        await h.worker.terminate();
        await h.exited;
      }),
    );
  }
}

// Worker entry: this same module, started by DataLoader with a tagged workerData.
if (!isMainThread && isWorkerInit(workerData)) runWorker(workerData);
