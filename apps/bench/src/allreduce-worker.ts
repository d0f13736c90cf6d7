/**
 * One rank of `segtrain-bench allreduce` (started by the driver with RANK, WORLD_SIZE, MASTER_*):
 * times our allReduce per size beside a raw TCP ring moving the same bytes between the same
 * processes, and rank 0 ↔ 1's ZeroMQ round trip. Rank 0 prints the results as one JSON line.
 */
import { connect, createServer, type Socket } from 'node:net';
import { allReduceAlgorithm, ProcessGroup } from '@segtrain/collective';
import { Dealer, Router } from 'zeromq';
import { median } from './timing.js';

export interface SizeResult {
  readonly bytes: number;
  readonly algorithm: string;
  /** Mean ms of one allReduce (sum, f32) on rank 0, over back-to-back runs after a barrier. */
  readonly oursMs: number;
  /** CPU ms (user + system) per allReduce, summed over all ranks. */
  readonly oursCpuMs: number;
  /** The same for each rank to send and receive 2(N−1)/N · bytes over plain TCP to its ring neighbours (null: one rank). */
  readonly rawTcpMs: number | null;
  readonly rawTcpCpuMs: number | null;
}

export interface WorkerReport {
  readonly ranks: number;
  readonly sizes: readonly SizeResult[];
  /** Median 64-byte ZeroMQ round trip between ranks 0 and 1 (null with one rank). */
  readonly zmqRoundTripMs: number | null;
}

/** This rank's address and every rank's, as the driver placed them (loopback unless simulated nodes). */
const addresses = (process.env.BENCH_ADDRESSES ?? '').split(',').filter(Boolean);
const addressOf = (rank: number) => addresses[rank] ?? '127.0.0.1';

/** Wall ms per run of `op` over `runs` back-to-back runs after a barrier (nccl-tests' way), and CPU ms per run summed over ranks. */
async function timeRuns(pg: ProcessGroup, runs: number, op: () => Promise<unknown>) {
  await pg.barrier();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await op();
  const wall = (performance.now() - t0) / runs;
  const cpu = process.cpuUsage(cpu0);
  const cpus = await pg.allGather(new Float64Array([(cpu.user + cpu.system) / 1000 / runs]));
  return { wall, cpu: cpus.reduce((a, b) => a + b, 0) };
}
/** Bytes arriving on `socket`, awaited in counts. */
class Inflow {
  private have = 0;
  private waiter: { need: number; resolve: () => void } | null = null;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.have += chunk.byteLength;
      if (this.waiter && this.have >= this.waiter.need) {
        this.have -= this.waiter.need;
        const { resolve } = this.waiter;
        this.waiter = null;
        resolve();
      }
    });
  }

  take(need: number): Promise<void> {
    if (this.have >= need) {
      this.have -= need;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiter = { need, resolve };
    });
  }
}

async function writeAll(socket: Socket, bytes: number, chunk: Buffer): Promise<void> {
  for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
    const part = bytes - sent < chunk.byteLength ? chunk.subarray(0, bytes - sent) : chunk;
    if (!socket.write(part)) await new Promise((resolve) => socket.once('drain', resolve));
  }
}

/** The raw TCP ring: this rank → rank+1, rank−1 → this rank. */
async function tcpRing(pg: ProcessGroup): Promise<{ right: Socket; left: Inflow; close: () => void }> {
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, addressOf(pg.rank), resolve));
  const address = server.address();
  const ports = await pg.allGather(
    new Int32Array([typeof address === 'object' && address ? address.port : 0]),
  );
  const right = connect(ports[(pg.rank + 1) % pg.worldSize] ?? 0, addressOf((pg.rank + 1) % pg.worldSize));
  right.setNoDelay(true);
  const leftSocket = await accepted;
  const left = new Inflow(leftSocket);
  return {
    right,
    left,
    close: () => {
      right.destroy();
      leftSocket.destroy();
      server.close();
    },
  };
}

/** Rank 1 echoes, rank 0 times 64-byte round trips over a plain Dealer/Router pair; all wait. */
async function zmqRoundTrip(pg: ProcessGroup): Promise<number | null> {
  if (pg.worldSize < 2) return null;
  const reps = 300;
  const router = pg.rank === 1 ? new Router() : null;
  if (router) await router.bind(`tcp://${addressOf(1)}:*`);
  const port = new Int32Array([Number(/:(\d+)$/.exec(router?.lastEndpoint ?? '')?.[1] ?? 0)]);
  await pg.broadcast(port, 1);
  let rtt: number | null = null;
  if (router) {
    for (let i = 0; i < reps; i++) await router.send(await router.receive());
  } else if (pg.rank === 0) {
    const dealer = new Dealer();
    dealer.connect(`tcp://${addressOf(1)}:${port[0]}`);
    const payload = Buffer.alloc(64);
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await dealer.send(payload);
      await dealer.receive();
      times.push(performance.now() - t0);
    }
    dealer.close();
    rtt = median(times.slice(20));
  }
  await pg.barrier();
  router?.close();
  return rtt;
}

async function main(): Promise<void> {
  const pg = await ProcessGroup.fromEnv();
  const sizes = (process.env.SIZES ?? '4096').split(',').map(Number);
  const reps = Number(process.env.REPS ?? 5);
  const n = pg.worldSize;
  const rtt = await zmqRoundTrip(pg);
  const ring = n > 1 ? await tcpRing(pg) : null;
  const chunk = Buffer.alloc(1 << 20, 1);
  const results: SizeResult[] = [];
  for (const bytes of sizes) {
    const buf = new Float32Array(Math.floor(bytes / 4)).fill(1);
    const moved = Math.round((bytes * 2 * (n - 1)) / n);
    // Small ops are timed in back-to-back batches, so a barrier's skew between ranks is not measured.
    const runs = Math.min(50, Math.max(1, Math.ceil((4 << 20) / Math.max(bytes, 1))));
    const ours: Array<{ wall: number; cpu: number }> = [];
    const raw: Array<{ wall: number; cpu: number }> = [];
    for (let i = 0; i < reps + 2; i++) {
      const o = await timeRuns(pg, runs, () => pg.allReduce(buf, 'sum'));
      if (i >= 2) ours.push(o);
      if (!ring) continue;
      const r = await timeRuns(pg, runs, () =>
        Promise.all([writeAll(ring.right, moved, chunk), ring.left.take(moved)]),
      );
      if (i >= 2) raw.push(r);
    }
    results.push({
      bytes,
      algorithm: allReduceAlgorithm(buf.byteLength, n),
      oursMs: median(ours.map((o) => o.wall)),
      oursCpuMs: median(ours.map((o) => o.cpu)),
      rawTcpMs: ring ? median(raw.map((r) => r.wall)) : null,
      rawTcpCpuMs: ring ? median(raw.map((r) => r.cpu)) : null,
    });
  }
  await pg.barrier();
  ring?.close();
  if (pg.rank === 0) {
    const report: WorkerReport = { ranks: n, sizes: results, zmqRoundTripMs: rtt };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }
  await pg.close();
}

await main();
