import { isSoftwareAdapter, requestAdapter } from './adapter.js';
import { Autotuner, autotuneOptionsFromEnv } from './autotune.js';
import { BindGroupCache } from './bind-groups.js';
import { BufferPool } from './pool.js';

export type Access = 'read' | 'rw';

/** A compiled kernel: its pipeline and the storage bindings it expects after the uniform block. */
export interface Kernel {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly bindings: readonly Access[];
  readonly workgroupSize: number;
}

export interface KernelSource {
  /** Cache key: the kernel family plus every structural constant baked into the WGSL. */
  readonly key: string;
  /** Access of bindings 1..n (binding 0 is always the uniform block). */
  readonly bindings: readonly Access[];
  readonly workgroupSize: number;
  readonly wgsl: () => string;
}

export interface DeviceStats {
  pipelinesCompiled: number;
  storageBuffersCreated: number;
  storageBytesOwned: number;
  storageBytesLive: number;
  paramBytes: number;
  dispatches: number;
  submits: number;
  /** Bind groups created, and dispatches that reused a cached one (see bind-groups.ts). */
  bindGroupsCreated: number;
  bindGroupsReused: number;
}

/** GPU time of one kernel (by cache key) over a profiled span. */
export interface KernelProfile {
  readonly kernel: string;
  readonly dispatches: number;
  readonly ms: number;
}

interface Profiler {
  readonly querySet: GPUQuerySet;
  readonly resolve: GPUBuffer;
  /** Keep dispatches of one kernel with different grids apart (finds the slow shapes). */
  readonly byGrid: boolean;
  /** Kernel of each dispatch recorded since the last submit. */
  names: string[];
  readonly reads: Promise<void>[];
  readonly totals: Map<string, { dispatches: number; ns: number }>;
}

const UNIFORM_SLOT = 256;
const SLOTS_PER_SUBMIT = 512;

/**
 * One WebGPU device per process: pipelines cached by key, pooled buffers, and command batching —
 * many dispatches share one compute pass, submitted at a readback or every SLOTS_PER_SUBMIT dispatches.
 */
/** The work does not fit this adapter's limits (a buffer too large): the message says what to shrink. */
export class DeviceLimitError extends Error {}

/**
 * Work recorded after `Device.hold()` waits (unsubmitted, in order) until `release` is called, which
 * may first upload data the held work reads: how a synchronous forward uses a value that a host-side
 * collective will produce (SyncBatchNorm), while recording goes on.
 */
export interface DeviceHold {
  /** Lets the held work go, after writing `uploads` (buffer, data) ahead of it in queue order. Idempotent. */
  release(uploads?: ReadonlyArray<readonly [GPUBuffer, ArrayBufferView]>): void;
}

/** What the queue runs in order once no earlier hold is closed. */
type QueuedWork =
  | {
      readonly kind: 'submit';
      readonly commands: GPUCommandBuffer;
      readonly uniforms: Uint8Array;
      readonly after: (() => void) | null;
    }
  | { readonly kind: 'hold'; open: boolean; uploads: ReadonlyArray<readonly [GPUBuffer, ArrayBufferView]> }
  | { readonly kind: 'run'; readonly fn: () => void };

export class Device {
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
  readonly adapterName: string;
  /** A CPU (software) adapter such as lavapipe: few, wide cores, so kernels want fewer, longer lanes. */
  readonly software: boolean;
  /** Subgroup sizes the adapter reports (0 when unknown). */
  readonly subgroupMinSize: number;
  readonly subgroupMaxSize: number;
  /** Tuned kernel variants per shape class for this adapter (see autotune.ts); replaceable, e.g. by tests. */
  tuner: Autotuner;
  private readonly pipelines = new Map<string, Kernel>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly bindGroups = new BindGroupCache();
  private readonly storage: BufferPool;
  private readonly staging: BufferPool;
  private readonly uniformArena: GPUBuffer;
  private readonly uniformData = new Uint8Array(UNIFORM_SLOT * SLOTS_PER_SUBMIT);
  private slot = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private paramBytes = 0;
  private doomed: GPUBuffer[] = [];
  /** Work behind a closed hold, in queue order (empty when nothing is held). */
  private queued: QueuedWork[] = [];
  private dispatchCount = 0;
  private submitCount = 0;
  private destroyed = false;
  private profiler: Profiler | null = null;
  /** Validation errors Dawn reported since the last readback; a readback throws them. */
  readonly errors: string[] = [];

  private constructor(
    readonly gpu: GPUDevice,
    adapter: GPUAdapter,
    adapterName: string,
  ) {
    this.limits = gpu.limits;
    this.features = new Set([...gpu.features]);
    this.adapterName = adapterName;
    const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
    this.software = info.isFallbackAdapter === true || isSoftwareAdapter(info, adapterName);
    this.subgroupMinSize = info.subgroupMinSize ?? 0;
    this.subgroupMaxSize = info.subgroupMaxSize ?? 0;
    const identity = [adapterName, info.vendor, info.architecture, info.device, info.description];
    this.tuner = new Autotuner(identity.join(' | '), autotuneOptionsFromEnv(this.software), () =>
      this.sync(),
    );
    this.storage = new BufferPool(
      gpu,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      'storage',
      (buffer) => this.bindGroups.forget(buffer),
    );
    this.staging = new BufferPool(gpu, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, 'staging');
    this.uniformArena = gpu.createBuffer({
      size: UNIFORM_SLOT * SLOTS_PER_SUBMIT,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'uniform-arena',
    });
  }

  /** Opens the adapter `SEGTRAIN_ADAPTER` names (or Dawn's default) with its real limits and optional features. */
  static async create(): Promise<Device> {
    const chosen = await requestAdapter();
    if (!chosen) throw new Error('No WebGPU adapter found. Run `segtrain doctor` for what to install.');
    const { adapter } = chosen;
    const wanted: GPUFeatureName[] = ['subgroups', 'shader-f16', 'timestamp-query'];
    const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
    const requiredLimits: Record<string, number> = {};
    for (const key in adapter.limits) {
      const value = (adapter.limits as unknown as Record<string, unknown>)[key];
      if (typeof value === 'number') requiredLimits[key] = value;
    }
    const gpu = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    const device = new Device(gpu, adapter, chosen.listing?.name ?? adapter.info.device);
    gpu.addEventListener('uncapturederror', (event) => {
      device.errors.push((event as GPUUncapturedErrorEvent).error.message);
    });
    return device;
  }

  get hasSubgroups(): boolean {
    return this.features.has('subgroups');
  }

  stats(): DeviceStats {
    return {
      pipelinesCompiled: this.pipelines.size,
      storageBuffersCreated: this.storage.created,
      storageBytesOwned: this.storage.ownedBytes,
      storageBytesLive: this.storage.liveBytes,
      paramBytes: this.paramBytes,
      dispatches: this.dispatchCount,
      submits: this.submitCount,
      bindGroupsCreated: this.bindGroups.misses,
      bindGroupsReused: this.bindGroups.hits,
    };
  }

  private layout(bindings: readonly Access[]): GPUBindGroupLayout {
    const key = bindings.join(',');
    let layout = this.layouts.get(key);
    if (!layout) {
      layout = this.gpu.createBindGroupLayout({
        entries: [
          {
            binding: 0,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: UNIFORM_SLOT },
          },
          ...bindings.map((access, i) => ({
            binding: i + 1,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: access === 'read' ? ('read-only-storage' as const) : ('storage' as const) },
          })),
        ],
      });
      this.layouts.set(key, layout);
    }
    return layout;
  }

  /** The compiled kernel for `source`, compiled once per key. */
  kernel(source: KernelSource): Kernel {
    const cached = this.pipelines.get(source.key);
    if (cached) return cached;
    const maxStorage = this.limits.maxStorageBuffersPerShaderStage;
    if (source.bindings.length > maxStorage) {
      throw new Error(
        `kernel ${source.key} binds ${source.bindings.length} storage buffers; this adapter allows ${maxStorage} (maxStorageBuffersPerShaderStage)`,
      );
    }
    if (source.workgroupSize > this.limits.maxComputeInvocationsPerWorkgroup) {
      throw new Error(
        `kernel ${source.key} uses ${source.workgroupSize} invocations per workgroup; this adapter allows ${this.limits.maxComputeInvocationsPerWorkgroup} (maxComputeInvocationsPerWorkgroup)`,
      );
    }
    const code = source.wgsl();
    const module = this.gpu.createShaderModule({ code, label: source.key });
    // createComputePipelineAsync crashed on lavapipe (FIELD-NOTES); the synchronous call works.
    const pipeline = this.gpu.createComputePipeline({
      label: source.key,
      layout: this.gpu.createPipelineLayout({ bindGroupLayouts: [this.layout(source.bindings)] }),
      compute: { module, entryPoint: 'main' },
    });
    const kernel: Kernel = {
      name: source.key,
      pipeline,
      bindings: source.bindings,
      workgroupSize: source.workgroupSize,
    };
    this.pipelines.set(source.key, kernel);
    return kernel;
  }

  /** A pooled storage buffer of at least `bytes` (activations, gradients, temporaries). */
  acquire(bytes: number): GPUBuffer {
    const max = this.limits.maxStorageBufferBindingSize;
    if (bytes > max)
      throw new DeviceLimitError(
        `a tensor of ${bytes} bytes exceeds this adapter's maxStorageBufferBindingSize (${max}); use a smaller batch or resolution`,
      );
    return this.storage.acquire(Math.max(bytes, 4));
  }

  release(buffer: GPUBuffer): void {
    this.storage.release(buffer);
  }

  /** A buffer outside the churn pool, for parameters and optimizer state. */
  createParamBuffer(bytes: number, label: string): GPUBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    this.paramBytes += size;
    return this.gpu.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label,
    });
  }

  /** Destroyed after the next submit: recorded work may still read it (submitted work may, legally). */
  destroyParamBuffer(buffer: GPUBuffer): void {
    this.paramBytes -= buffer.size;
    this.bindGroups.forget(buffer);
    if (this.encoder) this.doomed.push(buffer);
    else buffer.destroy();
  }

  /** Uploads data; recorded work is submitted first so the write cannot overtake it in queue order. */
  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    if (this.encoder) this.flush();
    if (this.queued.length === 0) {
      this.gpu.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
      return;
    }
    // Behind a hold: the caller may reuse `data` at once, so the queue keeps a copy.
    const copy = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    this.queued.push({ kind: 'run', fn: () => this.gpu.queue.writeBuffer(buffer, offset, copy) });
  }

  /** Holds back everything recorded from now on (see DeviceHold); what was recorded before goes ahead. */
  hold(): DeviceHold {
    this.flush();
    const entry: QueuedWork & { kind: 'hold' } = { kind: 'hold', open: false, uploads: [] };
    this.queued.push(entry);
    return {
      release: (uploads = []) => {
        if (entry.open) return;
        entry.open = true;
        entry.uploads = uploads;
        this.drain();
      },
    };
  }

  /** Frees the pool's idle buffers (between phases or models with different shapes). */
  trimPool(): void {
    this.flush();
    this.storage.trim();
  }

  /** True while some recorded work waits behind a hold. */
  get holding(): boolean {
    return this.queued.length > 0;
  }

  /** Runs queued work in order up to the first closed hold. */
  private drain(): void {
    while (this.queued.length > 0) {
      const work = this.queued[0] as QueuedWork;
      if (work.kind === 'hold') {
        if (!work.open) return;
        for (const [buffer, data] of work.uploads)
          this.gpu.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
      } else if (work.kind === 'run') work.fn();
      else this.submitNow(work.commands, work.uniforms, work.after);
      this.queued.shift();
    }
  }

  private submitNow(commands: GPUCommandBuffer, uniforms: Uint8Array, after: (() => void) | null): void {
    if (uniforms.byteLength > 0) this.gpu.queue.writeBuffer(this.uniformArena, 0, uniforms);
    this.gpu.queue.submit([commands]);
    after?.();
  }

  /** Resolves once everything recorded so far has been submitted (at once when nothing is held). */
  private submitted(): Promise<void> {
    this.flush();
    if (this.queued.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.queued.push({ kind: 'run', fn: resolve }));
  }

  /** Records one dispatch. `uniforms` (≤ 256 bytes) land in this submit's uniform arena. */
  dispatch(
    kernel: Kernel,
    buffers: readonly GPUBuffer[],
    uniforms: ArrayBufferView,
    workgroups: readonly [number, number?, number?],
  ): void {
    if (buffers.length !== kernel.bindings.length)
      throw new Error(`kernel ${kernel.name} takes ${kernel.bindings.length} buffers, got ${buffers.length}`);
    if (uniforms.byteLength > UNIFORM_SLOT)
      throw new Error(
        `kernel ${kernel.name}: uniforms of ${uniforms.byteLength} bytes exceed ${UNIFORM_SLOT}`,
      );
    const [x, y = 1, z = 1] = workgroups;
    const maxGroups = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxGroups || y > maxGroups || z > maxGroups) {
      throw new Error(
        `kernel ${kernel.name}: dispatch ${x}x${y}x${z} exceeds maxComputeWorkgroupsPerDimension (${maxGroups})`,
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    if (this.slot === SLOTS_PER_SUBMIT) this.flush();
    const offset = this.slot * UNIFORM_SLOT;
    this.uniformData.set(new Uint8Array(uniforms.buffer, uniforms.byteOffset, uniforms.byteLength), offset);
    this.slot++;
    const bindGroup = this.bindGroups.get(kernel.bindings.join(','), buffers, () =>
      this.gpu.createBindGroup({
        layout: this.layout(kernel.bindings),
        entries: [
          { binding: 0, resource: { buffer: this.uniformArena, offset: 0, size: UNIFORM_SLOT } },
          ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
        ],
      }),
    );
    if (!this.encoder) this.encoder = this.gpu.createCommandEncoder();
    const profiler = this.profiler;
    if (profiler) {
      // One pass per dispatch, so its begin/end timestamps bracket exactly this kernel.
      this.pass?.end();
      const index = profiler.names.length * 2;
      profiler.names.push(profiler.byGrid ? `${kernel.name} [${x},${y},${z}]` : kernel.name);
      this.pass = this.encoder.beginComputePass({
        timestampWrites: {
          querySet: profiler.querySet,
          beginningOfPassWriteIndex: index,
          endOfPassWriteIndex: index + 1,
        },
      });
    }
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    this.pass.setPipeline(kernel.pipeline);
    this.pass.setBindGroup(0, bindGroup, [offset]);
    this.pass.dispatchWorkgroups(x, y, z);
    this.dispatchCount++;
    if (profiler) {
      this.pass.end();
      this.pass = null;
    }
  }

  /**
   * Starts timing every dispatch on the GPU (needs the `timestamp-query` feature). Each dispatch
   * gets its own compute pass, which adds a little overhead: use it to find hot kernels, not to time.
   */
  startProfile(options: { byGrid?: boolean } = {}): void {
    if (!this.features.has('timestamp-query'))
      throw new Error('profiling needs the timestamp-query feature, which this adapter does not expose');
    this.flush();
    const count = SLOTS_PER_SUBMIT * 2;
    this.profiler = {
      querySet: this.gpu.createQuerySet({ type: 'timestamp', count }),
      resolve: this.gpu.createBuffer({
        size: count * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      }),
      byGrid: options.byGrid ?? false,
      names: [],
      reads: [],
      totals: new Map(),
    };
  }

  /** Stops profiling; GPU time per kernel over the span, slowest first. */
  async stopProfile(): Promise<KernelProfile[]> {
    const profiler = this.profiler;
    if (!profiler) throw new Error('stopProfile() without startProfile()');
    this.flush();
    this.profiler = null;
    await Promise.all(profiler.reads);
    profiler.querySet.destroy();
    profiler.resolve.destroy();
    return [...profiler.totals]
      .map(([kernel, t]) => ({ kernel, dispatches: t.dispatches, ms: t.ns / 1e6 }))
      .sort((a, b) => b.ms - a.ms);
  }

  /** Resolves this submit's timestamps into a readback buffer (called while recording is open). */
  private recordProfileReadback(encoder: GPUCommandEncoder): (() => void) | null {
    const profiler = this.profiler;
    if (!profiler || profiler.names.length === 0) return null;
    const names = profiler.names;
    profiler.names = [];
    const bytes = names.length * 16;
    encoder.resolveQuerySet(profiler.querySet, 0, names.length * 2, profiler.resolve, 0);
    const staging = this.gpu.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.copyBufferToBuffer(profiler.resolve, 0, staging, 0, bytes);
    return () => {
      const read = staging.mapAsync(GPUMapMode.READ).then(() => {
        const stamps = new BigInt64Array(staging.getMappedRange());
        names.forEach((name, i) => {
          const ns = Number((stamps[2 * i + 1] as bigint) - (stamps[2 * i] as bigint));
          const total = profiler.totals.get(name) ?? { dispatches: 0, ns: 0 };
          total.dispatches++;
          total.ns += ns;
          profiler.totals.set(name, total);
        });
        staging.destroy();
      });
      profiler.reads.push(read);
    };
  }

  /** Copies between buffers, in order with the recorded dispatches. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (!this.encoder) this.encoder = this.gpu.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * Zeroes a buffer, in order with the dispatches recorded so far: a copy-engine command, not a
   * dispatch (on lavapipe ~6 µs where the smallest dispatch costs 40–55: the worker hand-off).
   */
  clear(buffer: GPUBuffer): void {
    if (!this.encoder) this.encoder = this.gpu.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.clearBuffer(buffer);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.encoder) {
      const afterSubmit = this.recordProfileReadback(this.encoder);
      const commands = this.encoder.finish();
      const uniforms = this.uniformData.subarray(0, this.slot * UNIFORM_SLOT);
      if (this.queued.length === 0) this.submitNow(commands, uniforms, afterSubmit);
      else this.queued.push({ kind: 'submit', commands, uniforms: uniforms.slice(), after: afterSubmit });
      this.encoder = null;
      this.submitCount++;
    }
    this.slot = 0;
    const doomed = this.doomed;
    this.doomed = [];
    if (this.queued.length === 0) for (const buffer of doomed) buffer.destroy();
    else if (doomed.length > 0)
      this.queued.push({
        kind: 'run',
        fn: () => {
          for (const buffer of doomed) buffer.destroy();
        },
      });
    this.storage.afterSubmit();
    this.staging.afterSubmit();
  }

  /** Reads `bytes` from a buffer: the one place a step waits on the GPU. */
  async read(buffer: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.staging.acquire(size);
    this.copy(buffer, offset, staging, 0, size);
    await this.submitted();
    await staging.mapAsync(GPUMapMode.READ, 0, size);
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.staging.release(staging);
    this.throwErrors();
    return out;
  }

  /** Waits for all submitted work (benchmarks). */
  async sync(): Promise<void> {
    await this.submitted();
    await this.gpu.queue.onSubmittedWorkDone();
    this.throwErrors();
  }

  private throwErrors(): void {
    if (this.errors.length === 0) return;
    const messages = this.errors.splice(0);
    throw new Error(`WebGPU reported ${messages.length} error(s): ${messages.join(' | ')}`);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.flush();
    this.storage.trim();
    this.staging.trim();
    this.gpu.destroy();
  }
}

let shared: Promise<Device> | undefined;

/** The process's device, opened on first use; Dawn is torn down cleanly at exit. */
export function getDevice(): Promise<Device> {
  if (!shared) {
    shared = Device.create();
    void shared.then((device) => process.once('exit', () => device.destroy()));
  }
  return shared;
}
