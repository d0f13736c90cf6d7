/**
 * The rendezvous: rank 0 serves a small store on the master port for the group's life; every rank
 * registers its data endpoint with its job token and world size, and gets the full list back once
 * all have joined. A process with another token or world size (or a rank already taken) is refused
 * with a message naming both values; the job goes on.
 */

import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { createServer } from 'node:net';
import { Dealer, Router } from 'zeromq';
import { CollectiveError } from './errors.js';

interface Join {
  readonly t: 'join';
  readonly rank: number;
  readonly worldSize: number;
  readonly token: string;
  readonly endpoint: string;
  readonly host: string;
}

type Reply =
  | { readonly t: 'peers'; readonly endpoints: readonly string[] }
  | { readonly t: 'refused'; readonly reason: string };

export interface RendezvousOptions {
  readonly rank: number;
  readonly worldSize: number;
  readonly master: string;
  readonly token: string;
  /** This rank's data endpoint (`tcp://ip:port`). */
  readonly endpoint: string;
  readonly host: string;
  readonly timeoutMs: number;
  readonly log: (line: string) => void;
}

function joinOf(o: RendezvousOptions): Join {
  return {
    t: 'join',
    rank: o.rank,
    worldSize: o.worldSize,
    token: o.token,
    endpoint: o.endpoint,
    host: o.host,
  };
}

/** How often a waiting rank says what it waits for. */
const WAIT_REPORT_MS = 5_000;

export function splitMaster(master: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(master);
  const host = m?.[1];
  const port = Number(m?.[2]);
  if (!host || !(port > 0 && port < 65536))
    throw new CollectiveError(`master '${master}' is not host:port (e.g. 10.0.0.1:29500)`);
  return { host, port };
}

/** A TCP port on `host` that was free a moment ago (the kernel's pick): for a master port on one machine. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** The IP of `host` (ZeroMQ binds and connects to addresses, not names). */
export async function resolveHost(host: string): Promise<string> {
  if (/^[\d.]+$/.test(host) || host.includes(':')) return host;
  try {
    return (await lookup(host, { family: 4 })).address;
  } catch (error) {
    throw new CollectiveError(`cannot resolve host '${host}': ${(error as Error).message}`);
  }
}

/** The local address that reaches `host` (what peers should connect to), found without sending. */
export function localAddressToward(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.on('error', () => {
      socket.close();
      resolve('127.0.0.1');
    });
    socket.connect(port, host, () => {
      const address = socket.address().address;
      socket.close();
      resolve(address);
    });
  });
}

/** Rank 0's store: answers joins for the group's life (late or wrong processes are refused, not ignored). */
export class RendezvousServer {
  private readonly joined = new Map<number, { id: Uint8Array; join: Join }>();
  private readonly waiters: Array<() => void> = [];
  private closed = false;

  private constructor(
    private readonly router: Router,
    private readonly options: RendezvousOptions,
  ) {
    void this.serve();
  }

  static async start(options: RendezvousOptions): Promise<RendezvousServer> {
    const { host, port } = splitMaster(options.master);
    const router = new Router({ linger: 1000 });
    try {
      await router.bind(`tcp://${await resolveHost(host)}:${port}`);
    } catch (error) {
      router.close();
      const code = (error as { code?: string }).code;
      throw new CollectiveError(
        code === 'EADDRINUSE'
          ? `rank 0 cannot serve the rendezvous on ${options.master}: port ${port} is in use (another job, or a leftover process?). Pick a free port with MASTER_PORT (FLAGS_START_PORT for segtrain launch)`
          : `rank 0 cannot serve the rendezvous on ${options.master}: ${(error as Error).message}`,
      );
    }
    const server = new RendezvousServer(router, options);
    server.accept(new Uint8Array(0), joinOf(options));
    return server;
  }

  private async serve(): Promise<void> {
    try {
      for await (const [id, body] of this.router) {
        if (!id || !body) continue;
        let join: Join;
        try {
          join = JSON.parse(body.toString()) as Join;
        } catch {
          continue;
        }
        if (join.t === 'join') this.accept(id, join);
      }
    } catch (error) {
      if (!this.closed) this.options.log(`rendezvous store stopped: ${(error as Error).message}`);
    }
  }

  private reply(id: Uint8Array, reply: Reply): void {
    if (id.byteLength === 0) return;
    this.router.send([id, JSON.stringify(reply)]).catch(() => undefined);
  }

  private accept(id: Uint8Array, join: Join): void {
    const { token, worldSize } = this.options;
    const who = `rank ${join.rank} (${join.host})`;
    const refuse = (reason: string) => {
      this.options.log(`rendezvous: refused ${who}: ${reason}`);
      this.reply(id, { t: 'refused', reason });
    };
    const taken = this.joined.get(join.rank);
    const problem =
      join.token !== token
        ? `its job token '${join.token}' is not this job's token '${token}'`
        : join.worldSize !== worldSize
          ? `its world size ${join.worldSize} is not this job's world size ${worldSize}`
          : !Number.isInteger(join.rank) || join.rank < 0 || join.rank >= worldSize
            ? `rank ${join.rank} is outside 0…${worldSize - 1}`
            : taken && taken.join.endpoint !== join.endpoint
              ? `rank ${join.rank} has already joined from ${taken.join.host}`
              : null;
    if (problem) {
      refuse(problem);
      return;
    }
    this.joined.set(join.rank, { id, join });
    if (this.joined.size === worldSize) {
      const endpoints = Array.from({ length: worldSize }, (_, r) => this.joined.get(r)?.join.endpoint ?? '');
      for (const { id: peer } of this.joined.values()) this.reply(peer, { t: 'peers', endpoints });
      for (const wake of this.waiters.splice(0)) wake();
    }
  }

  /** The endpoints of every rank, once all have joined. */
  async endpoints(timeoutMs: number): Promise<string[]> {
    const started = Date.now();
    const missing = () =>
      Array.from({ length: this.options.worldSize }, (_, r) => r).filter((r) => !this.joined.has(r));
    while (missing().length) {
      const waited = Date.now() - started;
      if (waited >= timeoutMs)
        throw new CollectiveError(
          `rendezvous on ${this.options.master}: ranks [${missing().join(', ')}] did not join within ${timeoutMs} ms`,
          missing(),
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(WAIT_REPORT_MS, timeoutMs - waited));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (missing().length && Date.now() - started >= WAIT_REPORT_MS)
        this.options.log(
          `rendezvous: waiting for ranks [${missing().join(', ')}] to join ${this.options.master} (${Math.round((Date.now() - started) / 1000)} s of ${Math.round(timeoutMs / 1000)} s)`,
        );
    }
    return Array.from({ length: this.options.worldSize }, (_, r) => this.joined.get(r)?.join.endpoint ?? '');
  }

  close(): void {
    this.closed = true;
    this.router.close();
  }
}

/** A non-zero rank's join: retried by ZeroMQ until rank 0 listens, reported every few seconds. */
export async function joinRendezvous(options: RendezvousOptions): Promise<string[]> {
  const { host, port } = splitMaster(options.master);
  const dealer = new Dealer({ linger: 0, routingId: `join-${options.rank}-${process.pid}` });
  dealer.connect(`tcp://${await resolveHost(host)}:${port}`);
  const join = joinOf(options);
  const started = Date.now();
  try {
    await dealer.send(JSON.stringify(join));
    dealer.receiveTimeout = Math.min(WAIT_REPORT_MS, options.timeoutMs);
    for (;;) {
      try {
        const [body] = await dealer.receive();
        const reply = JSON.parse(String(body)) as Reply;
        if (reply.t === 'refused')
          throw new CollectiveError(
            `rank ${options.rank} was refused by the job at ${options.master}: ${reply.reason}`,
          );
        return [...reply.endpoints];
      } catch (error) {
        if (error instanceof CollectiveError) throw error;
        if ((error as { code?: string }).code !== 'EAGAIN') throw error;
      }
      const waited = Date.now() - started;
      if (waited >= options.timeoutMs)
        throw new CollectiveError(
          `rank ${options.rank}: rank 0 at ${options.master} did not complete the rendezvous within ${options.timeoutMs} ms (is rank 0 running, and MASTER_ADDR/MASTER_PORT right?)`,
          [0],
        );
      options.log(
        `waiting for rank 0 at ${options.master} (${Math.round(waited / 1000)} s of ${Math.round(options.timeoutMs / 1000)} s)`,
      );
      dealer.receiveTimeout = Math.min(WAIT_REPORT_MS, options.timeoutMs - waited);
    }
  } finally {
    dealer.close();
  }
}
