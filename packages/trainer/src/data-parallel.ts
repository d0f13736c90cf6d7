/**
 * Data-parallel training over `@segtrain/collective` (PyTorch's DDP, Paddle's DataParallel):
 * rank 0's state broadcast at start, gradients averaged in buckets launched from the autograd's
 * gradient-final hooks while backward goes on, and SyncBatchNorm through the device's holds.
 */
import type { ProcessGroup } from '@segtrain/collective';
import { BatchNorm2d, type Module, type Optimizer } from '@segtrain/nn';
import { type BatchNormSync, type Device, type Tensor, zeros } from '@segtrain/tensor';

/** PyTorch DDP's layout: a small first bucket starts communication early, larger ones after it. */
export const FIRST_BUCKET_BYTES = 1 << 20;
export const BUCKET_BYTES = 4 << 20;

interface Bucket {
  readonly params: readonly Tensor[];
  /** Element offset of each parameter in `flat`. */
  readonly offsets: readonly number[];
  /** GPU staging of the whole bucket: one readback and one upload per bucket. */
  readonly flat: Tensor;
  ready: number;
}

/** Parameters in reverse order (roughly when backward finishes them), cut at the byte caps. */
export function bucketLayout(
  sizes: readonly number[],
  firstBytes = FIRST_BUCKET_BYTES,
  bytes = BUCKET_BYTES,
): number[][] {
  const buckets: number[][] = [];
  let current: number[] = [];
  let filled = 0;
  for (let i = sizes.length - 1; i >= 0; i--) {
    current.push(i);
    filled += (sizes[i] ?? 0) * 4;
    if (filled >= (buckets.length === 0 ? firstBytes : bytes)) {
      buckets.push(current);
      current = [];
      filled = 0;
    }
  }
  if (current.length > 0) buckets.push(current);
  return buckets;
}

/** Rank 0's value of a JSON-able `value` on every rank of `group`. */
export async function broadcastJson<T>(group: ProcessGroup, value: T): Promise<T> {
  const bytes = group.rank === 0 ? new TextEncoder().encode(JSON.stringify(value)) : new Uint8Array(0);
  const length = Int32Array.of(bytes.length);
  await group.broadcast(length, 0);
  const words = new Int32Array(Math.ceil((length[0] ?? 0) / 4));
  new Uint8Array(words.buffer).set(bytes);
  await group.broadcast(words, 0);
  return JSON.parse(new TextDecoder().decode(new Uint8Array(words.buffer, 0, length[0]))) as T;
}

export class DataParallel {
  private readonly buckets: Bucket[];
  private readonly bucketOf = new Map<Tensor, Bucket>();
  private nextBucket = 0;
  /** Collectives are issued in hook order, each once its host data is there. */
  private issued: Promise<void> = Promise.resolve();
  private inFlight: Array<Promise<void>> = [];
  private failure: unknown = null;
  /** The gradient hooks stay on the parameters; after dispose() they do nothing. */
  private disposed = false;

  constructor(
    readonly group: ProcessGroup,
    private readonly device: Device,
    model: Module,
    layout: { firstBucketBytes?: number; bucketBytes?: number } = {},
  ) {
    const params = model.parameters();
    this.buckets = bucketLayout(
      params.map((p) => p.size),
      layout.firstBucketBytes,
      layout.bucketBytes,
    ).map((indices) => {
      const members = indices.map((i) => params[i] as Tensor);
      const offsets: number[] = [];
      let total = 0;
      for (const p of members) {
        offsets.push(total);
        total += p.size;
      }
      const flat = zeros(device, [total]).keep();
      return { params: members, offsets, flat, ready: 0 };
    });
    for (const bucket of this.buckets)
      for (const p of bucket.params) {
        this.bucketOf.set(p, bucket);
        p.onGradFinal(() => this.gradReady(p));
      }
    // SyncBatchNorm, as PaddleSeg converts every BatchNorm when more than one card trains.
    const sync: BatchNormSync = {
      stats: (local, count) => this.globalStats(local, count),
      gradSums: (local, count) => this.globalGradSums(local, count),
    };
    for (const [, m] of model.namedModules()) if (m instanceof BatchNorm2d) m.sync = sync;
  }

  get rank(): number {
    return this.group.rank;
  }

  get worldSize(): number {
    return this.group.worldSize;
  }

  /** Bucket sizes in bytes, in launch order (for the start-up log). */
  get bucketBytes(): number[] {
    return this.buckets.map((b) => b.flat.size * 4);
  }

  /** Rank 0's parameters, buffers and optimizer state on every rank (at start and after a resume). */
  async broadcastState(model: Module, optimizer: Optimizer): Promise<void> {
    const tensors = [...model.stateDict().values()];
    const host = new Float32Array(tensors.reduce((n, t) => n + t.size, 0));
    if (this.rank === 0) {
      let offset = 0;
      for (const t of tensors) {
        host.set(await t.data(), offset);
        offset += t.size;
      }
    }
    await this.group.broadcast(host, 0);
    if (this.rank !== 0) {
      let offset = 0;
      for (const t of tensors) {
        this.device.write(t.buffer, host.subarray(offset, offset + t.size));
        offset += t.size;
      }
    }
    const state = await optimizer.stateValues();
    const keys = [...state.keys()].sort();
    const flat = new Float32Array(keys.reduce((n, k) => n + (state.get(k)?.data.length ?? 0), 0));
    let offset = 0;
    for (const k of keys) {
      const v = state.get(k)?.data ?? new Float32Array(0);
      flat.set(v, offset);
      offset += v.length;
    }
    await this.group.broadcast(flat, 0);
    if (this.rank === 0) return;
    offset = 0;
    const received = new Map(
      keys.map((k) => {
        const shape = state.get(k)?.shape ?? [];
        const n = shape.reduce((a, b) => a * b, 1);
        const data = flat.slice(offset, offset + n);
        offset += n;
        return [k, { shape, data }] as const;
      }),
    );
    optimizer.loadStateValues(received);
  }

  /**
   * Waits until every bucket's average is back in the gradients (the optimizer may step then).
   * Parameters the backward did not reach get zero gradients, so every rank launches every bucket.
   */
  async synchronize(): Promise<void> {
    for (let i = this.nextBucket; i < this.buckets.length; i++) {
      const bucket = this.buckets[i] as Bucket;
      for (const p of bucket.params) if (!p.grad) p.grad = zeros(this.device, p.shape).keep();
      bucket.ready = bucket.params.length;
    }
    this.launchReady();
    await this.drained();
    for (const bucket of this.buckets) bucket.ready = 0;
    this.nextBucket = 0;
    if (this.failure) throw this.failure;
  }

  /** Waits for every collective issued so far. */
  private async drained(): Promise<void> {
    await this.issued;
    const flights = this.inFlight;
    this.inFlight = [];
    await Promise.all(flights);
    if (this.failure) throw this.failure;
  }

  /** Frees the bucket buffers and unhooks SyncBatchNorm. */
  dispose(model: Module): void {
    this.disposed = true;
    for (const bucket of this.buckets) bucket.flat.dispose();
    for (const [, m] of model.namedModules()) if (m instanceof BatchNorm2d) m.sync = undefined;
  }

  private gradReady(p: Tensor): void {
    const bucket = this.bucketOf.get(p);
    if (!bucket || this.disposed) return;
    bucket.ready++;
    this.launchReady();
  }

  /** Launches complete buckets strictly in layout order, the same on every rank. */
  private launchReady(): void {
    for (;;) {
      const bucket = this.buckets[this.nextBucket];
      if (!bucket || bucket.ready < bucket.params.length) return;
      this.nextBucket++;
      this.launch(bucket);
    }
  }

  private launch(bucket: Bucket): void {
    const { device } = this;
    bucket.params.forEach((p, i) => {
      const grad = p.grad as Tensor;
      device.copy(grad.buffer, 0, bucket.flat.buffer, (bucket.offsets[i] ?? 0) * 4, p.size * 4);
    });
    const host = device.read(bucket.flat.buffer, bucket.flat.size * 4).then((b) => new Float32Array(b));
    this.exchange(host, 'mean', (averaged) => {
      if (!averaged) return;
      device.write(bucket.flat.buffer, averaged);
      bucket.params.forEach((p, i) => {
        device.copy(
          bucket.flat.buffer,
          (bucket.offsets[i] ?? 0) * 4,
          (p.grad as Tensor).buffer,
          0,
          p.size * 4,
        );
      });
    });
  }

  /**
   * SyncBatchNorm's forward: every rank's [mean, variance] and count gathered, combined in float64
   * in rank order (so every rank gets the same bits) by the parallel-variance formula.
   */
  private globalStats(local: Tensor, count: number): Tensor {
    const c = local.size / 2;
    return this.exchangeHeld(local, count, 'gather', (all) => {
      const parts = all.length / (2 * c + 1);
      const total = Array.from({ length: parts }, (_, r) => all[r * (2 * c + 1) + 2 * c] ?? 0).reduce(
        (a, b) => a + b,
        0,
      );
      const out = new Float32Array(2 * c);
      for (let ch = 0; ch < c; ch++) {
        let mean = 0;
        for (let r = 0; r < parts; r++) {
          const base = r * (2 * c + 1);
          mean += ((all[base + ch] ?? 0) * (all[base + 2 * c] ?? 0)) / total;
        }
        let variance = 0;
        for (let r = 0; r < parts; r++) {
          const base = r * (2 * c + 1);
          const n = all[base + 2 * c] ?? 0;
          variance += (n * ((all[base + c + ch] ?? 0) + ((all[base + ch] ?? 0) - mean) ** 2)) / total;
        }
        out[ch] = mean;
        out[c + ch] = variance;
      }
      return out;
    });
  }

  /** SyncBatchNorm's backward: the [Σg, Σg·x̂] of every rank added, scaled to this rank's count. */
  private globalGradSums(local: Tensor, count: number): Tensor {
    const n = local.size;
    return this.exchangeHeld(local, count, 'sum', (global) => {
      const scale = count / (global[n] ?? count);
      return Float32Array.from(global.subarray(0, n), (v) => v * scale);
    });
  }

  /**
   * `local` (with `count` appended) read back and exchanged (all-reduced sum or all-gathered) in
   * float64; `finish` turns the result into the tensor's new contents. The forward and backward are
   * synchronous, so the returned tensor's contents arrive later: the device holds back everything
   * recorded after this point until they are uploaded.
   */
  private exchangeHeld(
    local: Tensor,
    count: number,
    how: 'sum' | 'gather',
    finish: (exchanged: Float64Array) => Float32Array,
  ): Tensor {
    const { device } = this;
    const out = zeros(device, local.shape);
    // The caller disposes `out` once its (held) kernels are recorded; the upload lands before them.
    const target = out.buffer;
    const host = device.read(local.buffer, local.size * 4).then((b) => {
      const values = new Float64Array(local.size + 1);
      values.set(new Float32Array(b));
      values[local.size] = count;
      return values;
    });
    const hold = device.hold();
    this.exchange(host, how, (result) => hold.release(result ? [[target, finish(result)]] : []));
    return out;
  }

  /**
   * All-reduces `host` once it is read back, issued after every earlier exchange was issued (so
   * all ranks call the collectives in one order); `done` gets the result, or null after a failure.
   */
  private exchange<T extends Float32Array | Float64Array>(
    host: Promise<T>,
    op: 'sum' | 'mean' | 'gather',
    done: (result: T | null) => void,
  ): void {
    this.issued = this.issued.then(async () => {
      let data: T;
      try {
        if (this.failure) throw this.failure;
        data = await host;
      } catch (error) {
        this.failure ??= error;
        done(null);
        return;
      }
      const result =
        op === 'gather' ? this.group.allGather(data) : this.group.allReduce(data, op).then(() => data);
      this.inFlight.push(
        result.then(
          (value) => done(value),
          (error: unknown) => {
            this.failure ??= error;
            done(null);
          },
        ),
      );
    });
  }
}
