/**
 * A group of processes that run collectives on typed arrays over ZeroMQ: one Router per rank for
 * what it receives, one Dealer per peer for what it sends. Operations run in call order; each may be
 * started before the previous one resolved. Results are bitwise identical on every rank.
 */
import { hostname } from 'node:os';
import { Dealer, Router } from 'zeromq';
import { launchInfoFromEnv } from './env.js';
import { CollectiveError } from './errors.js';
import {
  joinRendezvous,
  localAddressToward,
  RendezvousServer,
  resolveHost,
  splitMaster,
} from './rendezvous.js';
import {
  bytesInPlace,
  bytesOf,
  type Collectable,
  decodeHeader,
  describeOp,
  divideRange,
  dtypeOf,
  encodeHeader,
  groupId,
  type Header,
  type OpKind,
  type ReduceOp,
  reduceInto,
  viewAs,
} from './wire.js';

export type { Collectable, ReduceOp } from './wire.js';

export interface ProcessGroupOptions {
  readonly rank: number;
  readonly worldSize: number;
  /** `host:port` where rank 0 serves the rendezvous. */
  readonly master: string;
  /** Deadline of every operation and of the rendezvous (default 300 s, env SEGTRAIN_COLLECTIVE_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** Job token: processes of another job are refused (default SEGTRAIN_JOB_TOKEN, else master and world size). */
  readonly token?: string;
  /** The address peers reach this rank at (default: the local address that reaches the master). */
  readonly host?: string;
  /** Progress lines (waiting for the master, refusals); default stderr. */
  readonly log?: (line: string) => void;
}

/** Buffers up to this many bytes are all-reduced by a direct exchange (1 hop), larger by the ring. */
export const SMALL_ALLREDUCE_BYTES = 64 * 1024;
/** Ring and chain transfers move at most this many bytes per message (Gloo's segment size). */
export const SLICE_BYTES = 1 << 20;
/** Step numbers of a ring's all-gather phase start here, apart from the reduce-scatter's. */
const GATHER_STEP = 1 << 16;
/**
 * How a vanished link is noticed: ZMTP heartbeats (PING every 1 s, 5 s of silence drops the
 * connection), and, for a sender whose TCP buffer is full and so sends no PING, TCP_USER_TIMEOUT
 * (data unacknowledged for 10 s drops it). A dropped connection is a disconnect event.
 */
const LINK_WATCH = {
  linger: 2000,
  heartbeatInterval: 1000,
  heartbeatTimeout: 5000,
  tcpMaxRetransmitTimeout: 10_000,
} as const;
/** After a peer's connection drops, how long its last messages (and goodbye) may still arrive. */
const DISCONNECT_GRACE_MS = 300;

function defaultTimeout(): number {
  const env = Number(process.env.SEGTRAIN_COLLECTIVE_TIMEOUT_MS);
  return Number.isFinite(env) && env > 0 ? env : 300_000;
}

interface Message {
  readonly header: Header;
  readonly payload: Uint8Array;
}

interface Expect {
  readonly header: Header;
  readonly resolve: (payload: Uint8Array) => void;
  readonly reject: (error: CollectiveError) => void;
}

/** The op as both sides see it, for the mismatch check. */
type OpHeader = Omit<Header, 'kind' | 'step' | 'offset'>;

/** Splits `count` elements into `parts` nearly equal ranges (the first `count % parts` one longer). */
export function chunkRanges(count: number, parts: number): Array<{ start: number; count: number }> {
  const base = Math.floor(count / parts);
  const extra = count % parts;
  const out: Array<{ start: number; count: number }> = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const n = base + (i < extra ? 1 : 0);
    out.push({ start, count: n });
    start += n;
  }
  return out;
}

const isPowerOfTwo = (n: number) => (n & (n - 1)) === 0;

/** The algorithm allReduce uses for `bytes` on `worldSize` ranks (it depends on nothing else). */
export function allReduceAlgorithm(
  bytes: number,
  worldSize: number,
): 'none' | 'doubling' | 'exchange' | 'ring' {
  if (worldSize === 1) return 'none';
  if (bytes > SMALL_ALLREDUCE_BYTES) return 'ring';
  return isPowerOfTwo(worldSize) ? 'doubling' : 'exchange';
}

function sliceRanges(start: number, count: number, bpe: number): Array<{ start: number; count: number }> {
  const per = Math.max(1, Math.floor(SLICE_BYTES / bpe));
  const out: Array<{ start: number; count: number }> = [];
  for (let s = 0; s < count; s += per) out.push({ start: start + s, count: Math.min(per, count - s) });
  if (out.length === 0) out.push({ start, count: 0 });
  return out;
}

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  private readonly group: number;
  private readonly timeoutMs: number;
  private readonly inbox: Message[][];
  private readonly expecting: Array<Expect | null>;
  private readonly saidBye: boolean[];
  private readonly sending: Array<Promise<void>> = [];
  private seq = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private failure: CollectiveError | null = null;
  private current: { header: OpHeader; started: number; waitingOn: number | null } | null = null;
  private closing = false;
  private closed: Promise<void> | null = null;

  private constructor(
    private readonly options: Required<Omit<ProcessGroupOptions, 'host'>> & { host: string },
    private readonly router: Router,
    private readonly dealers: Array<Dealer | null>,
    private readonly store: RendezvousServer | null,
    private readonly launcher: string,
  ) {
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.group = groupId(options.token);
    this.timeoutMs = options.timeoutMs;
    this.inbox = Array.from({ length: this.worldSize }, () => []);
    this.expecting = Array.from({ length: this.worldSize }, () => null);
    this.saidBye = Array.from({ length: this.worldSize }, () => false);
    void this.receiveLoop();
    dealers.forEach((dealer, peer) => {
      dealer?.events.on('disconnect', () => this.peerDisconnected(peer));
    });
  }

  /** Joins the group: blocks until every rank has joined (or the deadline passes). */
  static init(o: ProcessGroupOptions): Promise<ProcessGroup> {
    return ProcessGroup.join(o, 'explicit options');
  }

  private static async join(o: ProcessGroupOptions, launcher: string): Promise<ProcessGroup> {
    if (!Number.isInteger(o.worldSize) || o.worldSize < 1)
      throw new CollectiveError(`worldSize ${o.worldSize} must be an integer ≥ 1`);
    if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.worldSize)
      throw new CollectiveError(`rank ${o.rank} must be an integer in 0…${o.worldSize - 1}`);
    const { host: masterHost, port } = splitMaster(o.master);
    const options = {
      rank: o.rank,
      worldSize: o.worldSize,
      master: o.master,
      timeoutMs: o.timeoutMs ?? defaultTimeout(),
      token: o.token ?? process.env.SEGTRAIN_JOB_TOKEN ?? `${o.master}/${o.worldSize}`,
      host: o.host ?? (await localAddressToward(await resolveHost(masterHost), port)),
      log: o.log ?? ((line: string) => process.stderr.write(`[collective rank ${o.rank}] ${line}\n`)),
    };
    const router = new Router(LINK_WATCH);
    await router.bind(`tcp://${options.host}:*`);
    const endpoint = router.lastEndpoint ?? '';
    const rendezvous = { ...options, endpoint };
    let store: RendezvousServer | null = null;
    let endpoints: string[];
    try {
      if (options.rank === 0) {
        store = await RendezvousServer.start(rendezvous);
        endpoints = await store.endpoints(options.timeoutMs);
      } else endpoints = await joinRendezvous(rendezvous);
    } catch (error) {
      store?.close();
      router.close();
      throw error;
    }
    const dealers = endpoints.map((peer, r) => {
      if (r === options.rank) return null;
      const dealer = new Dealer({ routingId: String(options.rank), ...LINK_WATCH });
      dealer.connect(peer);
      return dealer;
    });
    return new ProcessGroup(options, router, dealers, store, launcher);
  }

  /** Joins the group described by the launcher's environment (torchrun, Paddle, Open MPI, Slurm). */
  static async fromEnv(
    extra: Omit<ProcessGroupOptions, 'rank' | 'worldSize' | 'master'> = {},
  ): Promise<ProcessGroup> {
    const info = launchInfoFromEnv();
    if (!info)
      throw new CollectiveError(
        'no launcher environment: set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun style), or start the process with segtrain launch, Paddle, mpirun or srun',
      );
    return ProcessGroup.join(
      { ...extra, rank: info.rank, worldSize: info.worldSize, master: info.master },
      `${info.launcher} (${info.source})`,
    );
  }

  /** `rank 1 of 4, master 10.0.0.1:29500, from torchrun (RANK, WORLD_SIZE, …)`. */
  describe(): string {
    return `rank ${this.rank} of ${this.worldSize} on ${hostname()}, master ${this.options.master}, from ${this.launcher}`;
  }

  // ---- transport -------------------------------------------------------------------------------

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [id, head, payload] of this.router) {
        const peer = Number(id?.toString());
        const header = head ? decodeHeader(head) : null;
        if (!header || !Number.isInteger(peer) || peer < 0 || peer >= this.worldSize) continue;
        if (header.group !== this.group) continue;
        if (header.kind === 'abort') {
          this.fail(new CollectiveError(String(payload ?? '') || `rank ${peer} aborted the group`));
          continue;
        }
        if (header.kind === 'bye') {
          this.saidBye[peer] = true;
          const waiting = this.expecting[peer];
          if (waiting) this.lost([peer], 'closed the group');
          continue;
        }
        this.deliver(peer, { header, payload: payload ?? new Uint8Array(0) });
      }
    } catch (error) {
      if (!this.closing)
        this.fail(new CollectiveError(`rank ${this.rank}: receiving stopped: ${(error as Error).message}`));
    }
  }

  private deliver(peer: number, message: Message): void {
    const waiting = this.expecting[peer];
    if (!waiting) {
      this.inbox[peer]?.push(message);
      return;
    }
    this.expecting[peer] = null;
    const problem = this.mismatch(peer, waiting.header, message.header);
    if (problem) {
      waiting.reject(problem);
      this.abort(problem);
      return;
    }
    waiting.resolve(message.payload);
  }

  /** The error when `got` (from `peer`) is not the message this rank expects, or null. */
  private mismatch(peer: number, want: Header, got: Header): CollectiveError | null {
    const same =
      got.seq === want.seq &&
      got.op === want.op &&
      got.dtype === want.dtype &&
      got.reduce === want.reduce &&
      got.count === want.count &&
      got.root === want.root;
    if (same && got.step === want.step && got.offset === want.offset) return null;
    if (same)
      return new CollectiveError(
        `rank ${this.rank}: ${describeOp(want)}: rank ${peer} sent step ${got.step} offset ${got.offset}, expected step ${want.step} offset ${want.offset} (a bug in the collective layer)`,
      );
    return new CollectiveError(
      `ranks disagree: rank ${this.rank} is at ${describeOp(want)} but rank ${peer} sent ${describeOp(got)}. ` +
        'Every rank must call the same collectives in the same order with the same sizes and types',
    );
  }

  /** Queues a message to `peer`: zeromq.js takes one send at a time per socket, so they are chained. */
  private send(peer: number, header: Header, payload?: Buffer): void {
    const dealer = this.dealers[peer];
    if (!dealer) return;
    const frames = payload ? [encodeHeader(header), payload] : [encodeHeader(header)];
    const previous = this.sending[peer] ?? Promise.resolve();
    this.sending[peer] = previous
      .then(() => dealer.send(frames))
      .catch((error: Error) => {
        if (!this.closing)
          this.fail(
            new CollectiveError(`rank ${this.rank}: sending to rank ${peer} failed: ${error.message}`, [
              peer,
            ]),
          );
      });
  }

  private receive(peer: number, header: Header): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    const queued = this.inbox[peer]?.shift();
    if (queued) {
      const problem = this.mismatch(peer, header, queued.header);
      if (problem) {
        this.abort(problem);
        return Promise.reject(problem);
      }
      return Promise.resolve(queued.payload);
    }
    if (this.saidBye[peer]) {
      this.lost([peer], 'closed the group');
      return Promise.reject(this.failure);
    }
    if (this.current) this.current.waitingOn = peer;
    return new Promise((resolve, reject) => {
      this.expecting[peer] = { header, resolve, reject };
    });
  }

  private peerDisconnected(peer: number): void {
    if (this.closing || this.failure) return;
    // Its last messages may still be in the router's queue: give them a moment.
    setTimeout(() => {
      if (!this.closing && !this.failure && !this.saidBye[peer])
        this.lost([peer], 'is gone (its connection dropped)');
    }, DISCONNECT_GRACE_MS).unref();
  }

  private lost(peers: number[], what: string): void {
    const op = this.current;
    const during = op ? ` during ${describeOp(op.header)} after waiting ${Date.now() - op.started} ms` : '';
    // Told to every peer, so all report this cause (not a later goodbye of a rank that gave up).
    this.abort(
      new CollectiveError(
        `rank ${this.rank}: rank${peers.length > 1 ? 's' : ''} ${peers.join(', ')} ${what}${during}`,
        peers,
      ),
    );
  }

  /** Breaks the group: everything pending and later rejects with `error`. */
  private fail(error: CollectiveError): void {
    if (this.failure) return;
    this.failure = error;
    for (let peer = 0; peer < this.worldSize; peer++) {
      const waiting = this.expecting[peer];
      this.expecting[peer] = null;
      waiting?.reject(error);
    }
  }

  /** Fails here and tells every peer why, so all ranks report the same error. */
  private abort(error: CollectiveError): void {
    if (this.failure) return;
    const header = { ...this.blankHeader(), kind: 'abort' as const };
    for (let peer = 0; peer < this.worldSize; peer++)
      if (peer !== this.rank) this.send(peer, header, Buffer.from(error.message));
    this.fail(error);
  }

  private blankHeader(): Header {
    return {
      kind: 'data',
      group: this.group,
      seq: 0,
      op: 'barrier',
      dtype: 'i32',
      reduce: 'none',
      count: 0,
      root: 0,
      step: 0,
      offset: 0,
    };
  }

  // ---- operations --------------------------------------------------------------------------------

  /** Queues `body` after every earlier operation, under the deadline; a failure breaks the group. */
  private enqueue<T>(
    op: OpHeader,
    body: (h: (step: number, offset: number) => Header) => Promise<T>,
  ): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.failure) throw this.failure;
      if (this.closing) throw new CollectiveError(`rank ${this.rank}: ${describeOp(op)} after close()`);
      this.current = { header: op, started: Date.now(), waitingOn: null };
      const header = (step: number, offset: number): Header => ({ ...op, kind: 'data', step, offset });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const peer = this.current?.waitingOn;
          const error = new CollectiveError(
            `rank ${this.rank}: ${describeOp(op)} timed out after ${this.timeoutMs} ms` +
              (peer !== null && peer !== undefined ? ` waiting for rank ${peer}` : ''),
            peer !== null && peer !== undefined ? [peer] : [],
          );
          this.abort(error);
          reject(error);
        }, this.timeoutMs);
      });
      try {
        return await Promise.race([body(header), deadline]);
      } catch (error) {
        if (error instanceof CollectiveError) {
          this.fail(error);
          throw this.failure ?? error;
        }
        throw error;
      } finally {
        clearTimeout(timer);
        this.current = null;
      }
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }

  private opHeader(op: OpKind, buf: Collectable, reduce: ReduceOp | 'none', root = 0): OpHeader {
    return { group: this.group, seq: this.seq++, op, dtype: dtypeOf(buf), reduce, count: buf.length, root };
  }

  private checkMean(buf: Collectable, op: ReduceOp, what: string): void {
    if (op === 'mean' && buf instanceof Int32Array)
      throw new CollectiveError(
        `${what}: 'mean' needs a Float32Array or Float64Array (an Int32Array would truncate)`,
      );
  }

  /** Reduces `buf` over all ranks in place; every rank ends with the same bytes. */
  allReduce(buf: Collectable, op: ReduceOp = 'sum'): Promise<void> {
    this.checkMean(buf, op, 'allReduce');
    const header = this.opHeader('allReduce', buf, op);
    return this.enqueue(header, async (h) => {
      const algorithm = allReduceAlgorithm(buf.byteLength, this.worldSize);
      if (algorithm === 'none') return;
      if (algorithm === 'doubling') await this.doublingReduce(buf, op, h);
      else if (algorithm === 'exchange') await this.exchangeReduce(buf, op, h);
      else {
        // Each reduced slice of this rank's chunk starts the all-gather at once: the phases overlap.
        await this.ringReduceScatter(buf, op, h, true);
        await this.ringAllGather(buf, h, this.worldSize, true);
      }
    });
  }

  /** Copies root's `buf` to every rank. */
  broadcast(buf: Collectable, root = 0): Promise<void> {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize)
      return Promise.reject(
        new CollectiveError(`broadcast: root ${root} is outside 0…${this.worldSize - 1}`),
      );
    const header = this.opHeader('broadcast', buf, 'none', root);
    return this.enqueue(header, async (h) => {
      if (this.worldSize === 1) return;
      // A header round along the ring first, so ranks that disagree find out at once.
      await this.ringHello(h);
      // Chain from the root: rank i receives from i−1 and forwards to i+1, slice by slice.
      const position = (this.rank - root + this.worldSize) % this.worldSize;
      const prev = (this.rank - 1 + this.worldSize) % this.worldSize;
      const next = (this.rank + 1) % this.worldSize;
      for (const slice of sliceRanges(0, buf.length, buf.BYTES_PER_ELEMENT)) {
        if (position > 0) {
          const payload = await this.receive(prev, h(1, slice.start));
          new Uint8Array(
            buf.buffer,
            buf.byteOffset + slice.start * buf.BYTES_PER_ELEMENT,
            payload.byteLength,
          ).set(payload);
        }
        if (position < this.worldSize - 1)
          this.send(next, h(1, slice.start), bytesOf(buf, slice.start, slice.count));
      }
    });
  }

  /** Every rank's `buf`, concatenated in rank order (worldSize × length). */
  allGather<T extends Collectable>(buf: T): Promise<T> {
    const Ctor = buf.constructor as new (n: number) => T;
    const out = new Ctor(buf.length * this.worldSize);
    out.set(buf as never, this.rank * buf.length);
    const header = this.opHeader('allGather', buf, 'none');
    return this.enqueue(header, async (h) => {
      if (this.worldSize > 1) await this.ringAllGather(out, h, this.worldSize, false);
      return out;
    });
  }

  /**
   * Reduces `buf` over all ranks and returns this rank's part: `buf` split into worldSize nearly
   * equal ranges, the first `length % worldSize` one element longer. `buf` is left partly reduced.
   */
  reduceScatter<T extends Collectable>(buf: T, op: ReduceOp = 'sum'): Promise<T> {
    this.checkMean(buf, op, 'reduceScatter');
    const header = this.opHeader('reduceScatter', buf, op);
    return this.enqueue(header, async (h) => {
      const mine = chunkRanges(buf.length, this.worldSize)[this.rank] ?? { start: 0, count: 0 };
      if (this.worldSize > 1) await this.ringReduceScatter(buf, op, h, false);
      return buf.slice(mine.start, mine.start + mine.count) as T;
    });
  }

  /** Waits until every rank has called barrier(). */
  barrier(): Promise<void> {
    const token = new Int32Array(1);
    const header = this.opHeader('barrier', token, 'sum');
    return this.enqueue(header, async (h) => {
      if (this.worldSize > 1) await this.exchangeReduce(token, 'sum', h);
    });
  }

  // ---- algorithms --------------------------------------------------------------------------------

  /** Small buffers: every rank sends its buffer to every other, then reduces all in rank order. */
  private async exchangeReduce(buf: Collectable, op: ReduceOp, h: (step: number, offset: number) => Header) {
    const mine = bytesOf(buf, 0, buf.length);
    for (let peer = 0; peer < this.worldSize; peer++) if (peer !== this.rank) this.send(peer, h(0, 0), mine);
    const parts: Collectable[] = [];
    for (let peer = 0; peer < this.worldSize; peer++)
      parts[peer] = peer === this.rank ? viewAs(buf, mine) : viewAs(buf, await this.receive(peer, h(0, 0)));
    // Rank order, the same on every rank: identical bytes everywhere.
    buf.set(parts[0] as never);
    for (let peer = 1; peer < this.worldSize; peer++) reduceInto(buf, 0, parts[peer] as Collectable, op);
    if (op === 'mean') divideRange(buf, 0, buf.length, this.worldSize);
  }

  /**
   * Small buffers, power-of-two world: log2 N rounds, in round d each rank swaps its partial result
   * with rank ^ d and combines them lower rank first, so both hold the same bytes. Fewer messages
   * than the exchange (log2 N instead of N − 1 per rank), which is what small ops pay for.
   */
  private async doublingReduce(buf: Collectable, op: ReduceOp, h: (step: number, offset: number) => Header) {
    for (let d = 1, round = 0; d < this.worldSize; d *= 2, round++) {
      const partner = this.rank ^ d;
      this.send(partner, h(round, 0), bytesOf(buf, 0, buf.length));
      const theirs = viewAs(buf, await this.receive(partner, h(round, 0)));
      if (this.rank < partner) reduceInto(buf, 0, theirs, op);
      else {
        const mine = buf.slice();
        buf.set(theirs as never);
        reduceInto(buf, 0, mine, op);
      }
    }
    if (op === 'mean') divideRange(buf, 0, buf.length, this.worldSize);
  }

  private async ringHello(h: (step: number, offset: number) => Header): Promise<void> {
    const next = (this.rank + 1) % this.worldSize;
    const prev = (this.rank - 1 + this.worldSize) % this.worldSize;
    this.send(next, h(0, 0));
    await this.receive(prev, h(0, 0));
  }

  /**
   * Ring reduce-scatter: in step k rank r sends chunk (r−1−k) to the right and adds chunk (r−2−k)
   * from the left, slice by slice, so after N−1 steps rank r holds chunk r fully reduced. A slice
   * goes on as soon as it is reduced, so transfers and additions overlap. With `startGather`, each
   * finished slice of chunk r is also sent on as the all-gather's first step.
   */
  private async ringReduceScatter(
    buf: Collectable,
    op: ReduceOp,
    h: (step: number, offset: number) => Header,
    startGather: boolean,
  ) {
    const n = this.worldSize;
    const chunks = chunkRanges(buf.length, n);
    const next = (this.rank + 1) % n;
    const prev = (this.rank - 1 + n) % n;
    const chunk = (k: number) => chunks[(((this.rank - k) % n) + n) % n] as { start: number; count: number };
    // Sent without a copy: the ring cannot finish before the right neighbour has received every
    // reduce-scatter slice, and no later step of this operation writes a slice it has sent.
    for (const s of sliceRanges(chunk(1).start, chunk(1).count, buf.BYTES_PER_ELEMENT))
      this.send(next, h(0, s.start), bytesInPlace(buf, s.start, s.count));
    for (let k = 0; k < n - 1; k++) {
      const last = k === n - 2;
      for (const s of sliceRanges(chunk(k + 2).start, chunk(k + 2).count, buf.BYTES_PER_ELEMENT)) {
        const incoming = viewAs(buf, await this.receive(prev, h(k, s.start)));
        reduceInto(buf, s.start, incoming, op);
        if (!last) this.send(next, h(k + 1, s.start), bytesInPlace(buf, s.start, s.count));
        else {
          if (op === 'mean') divideRange(buf, s.start, s.count, n);
          // A copy: the all-gather's last sends may still be queued when the operation resolves.
          if (startGather) this.send(next, h(GATHER_STEP, s.start), bytesOf(buf, s.start, s.count));
        }
      }
    }
  }

  /**
   * Ring all-gather of the chunks (rank r owns chunk r): N−1 steps, each slice forwarded on arrival.
   * `started`: chunk r was already sent (by the reduce-scatter that finished it).
   */
  private async ringAllGather(
    buf: Collectable,
    h: (step: number, offset: number) => Header,
    parts: number,
    started: boolean,
  ) {
    const n = this.worldSize;
    const chunks = chunkRanges(buf.length, parts);
    const next = (this.rank + 1) % n;
    const prev = (this.rank - 1 + n) % n;
    const chunk = (k: number) => chunks[(((this.rank - k) % n) + n) % n] as { start: number; count: number };
    const bpe = buf.BYTES_PER_ELEMENT;
    const base = GATHER_STEP;
    if (!started)
      for (const s of sliceRanges(chunk(0).start, chunk(0).count, bpe))
        this.send(next, h(base, s.start), bytesOf(buf, s.start, s.count));
    for (let k = 0; k < n - 1; k++) {
      const last = k === n - 2;
      for (const s of sliceRanges(chunk(k + 1).start, chunk(k + 1).count, bpe)) {
        const payload = await this.receive(prev, h(base + k, s.start));
        new Uint8Array(buf.buffer, buf.byteOffset + s.start * bpe, payload.byteLength).set(payload);
        if (!last) this.send(next, h(base + k + 1, s.start), bytesOf(buf, s.start, s.count));
      }
    }
  }

  // ---- shutdown ----------------------------------------------------------------------------------

  /** Finishes queued operations, says goodbye to the peers and closes every socket (idempotent). */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.tail;
      this.closing = true;
      const bye = { ...this.blankHeader(), kind: 'bye' as const };
      for (let peer = 0; peer < this.worldSize; peer++) if (peer !== this.rank) this.send(peer, bye);
      await Promise.all(this.sending);
      for (const dealer of this.dealers) dealer?.close();
      this.router.close();
      this.store?.close();
    })();
    return this.closed;
  }
}
