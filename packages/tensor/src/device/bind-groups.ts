/**
 * Bind groups by (layout, buffers), reused across dispatches. Creating one costs ~15 µs of host time
 * through Dawn's Node binding on this machine, as much as the rest of a dispatch's recording, and a
 * training step records about a thousand; the buffer pool hands out the same buffers in the same
 * order every step, so after the first steps nearly every dispatch finds its bind group here.
 * A buffer's groups are dropped when it is destroyed (`forget`), so the cache holds no group that
 * can no longer be bound, nor keeps the buffer's object alive.
 */
export class BindGroupCache {
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private nextId = 1;
  private readonly groups = new Map<string, GPUBindGroup>();
  /** Cache keys by buffer id, to drop a buffer's groups when it goes. */
  private readonly keysOf = new Map<number, string[]>();
  hits = 0;
  misses = 0;

  /** At most this many groups are kept; past it the cache starts over (a shape change, not steady training). */
  constructor(private readonly capacity = 8192) {}

  get(layoutKey: string, buffers: readonly GPUBuffer[], create: () => GPUBindGroup): GPUBindGroup {
    const ids = buffers.map((b) => this.idOf(b));
    const key = `${layoutKey}|${ids.join(',')}`;
    const cached = this.groups.get(key);
    if (cached) {
      this.hits++;
      return cached;
    }
    this.misses++;
    if (this.groups.size >= this.capacity) this.clear();
    const group = create();
    this.groups.set(key, group);
    for (const id of new Set(ids)) {
      const keys = this.keysOf.get(id);
      if (keys) keys.push(key);
      else this.keysOf.set(id, [key]);
    }
    return group;
  }

  /** Drops every group that binds `buffer` (call before destroying it). */
  forget(buffer: GPUBuffer): void {
    const id = this.ids.get(buffer);
    if (id === undefined) return;
    for (const key of this.keysOf.get(id) ?? []) this.groups.delete(key);
    this.keysOf.delete(id);
  }

  get size(): number {
    return this.groups.size;
  }

  private clear(): void {
    this.groups.clear();
    this.keysOf.clear();
  }

  private idOf(buffer: GPUBuffer): number {
    let id = this.ids.get(buffer);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(buffer, id);
    }
    return id;
  }
}
