/**
 * GPU buffers by size class. A released buffer waits until the submit that used it has been issued
 * (`afterSubmit`): only then may a later `writeBuffer` or dispatch reuse it in queue order.
 * `acquire` hands out the oldest free buffer of the class, so a step that repeats the same
 * acquires and releases gets the same buffers every time (and its dispatches their cached bind
 * groups), whatever order the previous step released them in.
 */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private pending: GPUBuffer[] = [];
  private readonly sizeOf = new WeakMap<GPUBuffer, number>();
  /** Creation order: each free list is kept sorted newest first, so pop() gives the oldest. */
  private readonly age = new WeakMap<GPUBuffer, number>();
  /** Buffers ever created by this pool (flat after warm-up in a steady training loop). */
  created = 0;
  /** Bytes in buffers this pool owns, in use or free. */
  ownedBytes = 0;
  /** Bytes handed out and not yet released. */
  liveBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: GPUBufferUsageFlags,
    private readonly label: string,
    /** Called before the pool destroys one of its buffers. */
    private readonly beforeDestroy: (buffer: GPUBuffer) => void = () => {},
  ) {}

  /** Size classes 2^k and 1.5·2^k (at most 33 % slack), 256 bytes minimum. */
  static sizeClass(bytes: number): number {
    let size = 256;
    while (size < bytes) {
      const between = size * 1.5;
      if (between >= bytes) return between;
      size *= 2;
    }
    return size;
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    const buffer = this.free.get(size)?.pop() ?? this.create(size);
    this.liveBytes += size;
    return buffer;
  }

  private create(size: number): GPUBuffer {
    const buffer = this.device.createBuffer({ size, usage: this.usage, label: `${this.label}-${size}` });
    this.sizeOf.set(buffer, size);
    this.age.set(buffer, this.created);
    this.created++;
    this.ownedBytes += size;
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = this.sizeOf.get(buffer);
    if (size === undefined) throw new Error(`buffer ${buffer.label} does not belong to pool ${this.label}`);
    this.liveBytes -= size;
    this.pending.push(buffer);
  }

  /** Called right after a queue submit: buffers released before it may be reused from now on. */
  afterSubmit(): void {
    for (const buffer of this.pending) {
      const size = this.sizeOf.get(buffer) ?? 0;
      let list = this.free.get(size);
      if (!list) {
        list = [];
        this.free.set(size, list);
      }
      const age = this.age.get(buffer) ?? 0;
      let at = list.length;
      while (at > 0 && (this.age.get(list[at - 1] as GPUBuffer) ?? 0) < age) at--;
      list.splice(at, 0, buffer);
    }
    this.pending = [];
  }

  /** Frees every idle buffer (e.g. between phases with different shapes). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const buffer of list) {
        this.ownedBytes -= this.sizeOf.get(buffer) ?? 0;
        this.beforeDestroy(buffer);
        buffer.destroy();
      }
    }
    this.free.clear();
  }
}
