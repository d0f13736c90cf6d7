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
  /** Groups by key, least recently used first (a Map keeps insertion order; a hit re-inserts). */
  private readonly groups = new Map<string, { group: GPUBindGroup; ids: readonly number[] }>();
  /** Cache keys by buffer id, to drop a buffer's groups when it goes. */
  private readonly keysOf = new Map<number, Set<string>>();
  hits = 0;
  misses = 0;

  /**
   * At most this many groups are kept, the least recently used dropped first. A training step must
   * fit: on lavapipe every bind group created keeps a 4 KiB memory mapping until Dawn and V8 let
   * it go, and a process may have 65,530. OCRNet-W18 training at 1×3×64×128 (4,400 dispatches a
   * step), waiting every 2 steps: 90 steps created 6,615 groups and held 8,500 mappings; with 2,048
   * kept, 150 steps created 606,000 groups and the mappings reached 55,000.
   */
  constructor(private readonly capacity = 8192) {}

  get(layoutKey: string, buffers: readonly GPUBuffer[], create: () => GPUBindGroup): GPUBindGroup {
    const ids = buffers.map((b) => this.idOf(b));
    const key = `${layoutKey}|${ids.join(',')}`;
    const cached = this.groups.get(key);
    if (cached) {
      this.hits++;
      this.groups.delete(key);
      this.groups.set(key, cached);
      return cached.group;
    }
    this.misses++;
    const group = create();
    this.groups.set(key, { group, ids });
    for (const id of ids) {
      const keys = this.keysOf.get(id);
      if (keys) keys.add(key);
      else this.keysOf.set(id, new Set([key]));
    }
    if (this.groups.size > this.capacity) this.drop(this.groups.keys().next().value as string);
    return group;
  }

  /** Drops every group that binds `buffer` (call when destroying it). */
  forget(buffer: GPUBuffer): void {
    const id = this.ids.get(buffer);
    if (id === undefined) return;
    for (const key of this.keysOf.get(id) ?? []) this.drop(key);
    this.keysOf.delete(id);
  }

  get size(): number {
    return this.groups.size;
  }

  private drop(key: string): void {
    const entry = this.groups.get(key);
    if (!entry) return;
    this.groups.delete(key);
    for (const id of entry.ids) {
      const keys = this.keysOf.get(id);
      keys?.delete(key);
      if (keys?.size === 0) this.keysOf.delete(id);
    }
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
