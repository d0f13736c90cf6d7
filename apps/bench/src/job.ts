/**
 * One benchmark job: `ranks` worker processes, each on its own simulated node unless `link` is
 * loopback, with torchrun's variables plus `env`; every rank is killed if any fails. Returns the
 * last line rank 0 printed, parsed as JSON.
 */
import { spawn } from 'node:child_process';
import { freePort } from '@segtrain/collective';
import { createSimNet, type LinkRate, type SimNet } from '@segtrain/collective/simnet';

/** Where the ranks talk: loopback on this machine, or one simulated node each on links of a rate. */
export type BenchLink = 'loopback' | LinkRate;

export async function runBenchJob<T>(
  name: string,
  worker: string,
  ranks: number,
  link: BenchLink,
  env: Readonly<Record<string, string>>,
): Promise<T> {
  const net: SimNet | null = link === 'loopback' ? null : createSimNet(ranks, link);
  const addresses = net?.addresses ?? Array.from({ length: ranks }, () => '127.0.0.1');
  const port = String(net ? 29500 : await freePort());
  const children = Array.from({ length: ranks }, (_, rank) => {
    const [command, args] = net?.wrap(rank, process.execPath, [worker]) ?? [process.execPath, [worker]];
    return spawn(command, args, {
      env: {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(ranks),
        MASTER_ADDR: addresses[0],
        MASTER_PORT: port,
        BENCH_ADDRESSES: addresses.join(','),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
  });
  let out = '';
  children[0]?.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  try {
    const codes = await Promise.all(
      children.map((child) => new Promise<number | null>((resolve) => child.on('close', resolve))),
    );
    if (codes.some((c) => c !== 0))
      throw new Error(`${name} with ${ranks} ranks failed: exit codes ${codes.join(', ')}`);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    net?.close();
  }
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as T;
}
