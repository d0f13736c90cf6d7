/**
 * Where a process learns its rank, the world size and the master from the launcher that started it:
 * torchrun (and `segtrain launch`), Paddle's launcher, Open MPI's mpirun and Slurm's srun.
 */
import { CollectiveError } from './errors.js';

export type Launcher = 'torchrun' | 'paddle' | 'openmpi' | 'slurm';

export interface LaunchInfo {
  readonly rank: number;
  readonly worldSize: number;
  /** `host:port` of rank 0's rendezvous store. */
  readonly master: string;
  readonly localRank: number;
  readonly launcher: Launcher;
  /** The variables the values came from, for `describe()` and error messages. */
  readonly source: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The port torchrun uses when MASTER_PORT is unset. */
export const DEFAULT_MASTER_PORT = 29500;

function integer(env: Env, name: string, min: number): number {
  const text = env[name];
  const value = Number(text);
  if (text === undefined || !/^\d+$/.test(text.trim()) || value < min)
    throw new CollectiveError(`environment: ${name}=${JSON.stringify(text)} is not an integer ≥ ${min}`);
  return value;
}

function masterFrom(env: Env, launcher: string, fallbackPort?: number): string {
  const host = env.MASTER_ADDR;
  if (!host)
    throw new CollectiveError(
      `environment: ${launcher} variables are set but MASTER_ADDR is not: export MASTER_ADDR (and MASTER_PORT) to rank 0's host`,
    );
  const port = env.MASTER_PORT ? integer(env, 'MASTER_PORT', 1) : (fallbackPort ?? DEFAULT_MASTER_PORT);
  return `${host}:${port}`;
}

/**
 * Expands Slurm's compact node list (`node[01-03,07],gpu-a[1-2]`, `a,b`) into host names, in order.
 * Ranges keep their zero padding (`[08-10]` → 08, 09, 10).
 */
export function expandSlurmNodeList(list: string): string[] {
  const hosts: string[] = [];
  // Split on commas that are outside brackets.
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(list.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(list.slice(start));
  for (const part of parts.map((p) => p.trim()).filter(Boolean)) {
    const m = /^([^[]*)\[([^\]]+)\](.*)$/.exec(part);
    if (!m) {
      hosts.push(part);
      continue;
    }
    const [, prefix = '', ranges = '', rest = ''] = m;
    const tails = rest ? expandSlurmNodeList(rest) : [''];
    for (const range of ranges.split(',')) {
      const r = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
      if (!r)
        throw new CollectiveError(
          `environment: SLURM_JOB_NODELIST range '${range}' in '${list}' is not N or N-M`,
        );
      const [, lo = '', hi = lo] = r;
      const width = lo.length;
      for (let n = Number(lo); n <= Number(hi); n++)
        for (const tail of tails) hosts.push(`${prefix}${String(n).padStart(width, '0')}${tail}`);
    }
  }
  return hosts;
}

/** The master port Slurm jobs use without MASTER_PORT: derived from the job id, in 20000–29999. */
export function slurmPort(jobId: string | undefined): number {
  const id = Number(jobId);
  return 20000 + (Number.isFinite(id) ? Math.abs(Math.trunc(id)) % 10000 : 0);
}

/** Rank, world size and master from the first launcher whose variables are set (null: none is). */
export function launchInfoFromEnv(env: Env = process.env): LaunchInfo | null {
  if (env.RANK !== undefined && env.WORLD_SIZE !== undefined)
    return {
      rank: integer(env, 'RANK', 0),
      worldSize: integer(env, 'WORLD_SIZE', 1),
      master: masterFrom(env, 'torchrun'),
      localRank: env.LOCAL_RANK ? integer(env, 'LOCAL_RANK', 0) : 0,
      launcher: 'torchrun',
      source: 'RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT',
    };
  if (env.PADDLE_TRAINER_ID !== undefined && env.PADDLE_TRAINERS_NUM !== undefined) {
    const endpoints = (env.PADDLE_TRAINER_ENDPOINTS ?? '').split(',').filter(Boolean);
    if (!endpoints[0])
      throw new CollectiveError(
        'environment: PADDLE_TRAINER_ID is set but PADDLE_TRAINER_ENDPOINTS is empty (it lists host:port per trainer)',
      );
    return {
      rank: integer(env, 'PADDLE_TRAINER_ID', 0),
      worldSize: integer(env, 'PADDLE_TRAINERS_NUM', 1),
      master: endpoints[0],
      localRank: env.PADDLE_LOCAL_RANK ? integer(env, 'PADDLE_LOCAL_RANK', 0) : 0,
      launcher: 'paddle',
      source: 'PADDLE_TRAINER_ID, PADDLE_TRAINERS_NUM, PADDLE_TRAINER_ENDPOINTS[0]',
    };
  }
  if (env.OMPI_COMM_WORLD_RANK !== undefined && env.OMPI_COMM_WORLD_SIZE !== undefined)
    return {
      rank: integer(env, 'OMPI_COMM_WORLD_RANK', 0),
      worldSize: integer(env, 'OMPI_COMM_WORLD_SIZE', 1),
      master: masterFrom(env, 'Open MPI'),
      localRank: env.OMPI_COMM_WORLD_LOCAL_RANK ? integer(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 0) : 0,
      launcher: 'openmpi',
      source: 'OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, MASTER_ADDR, MASTER_PORT',
    };
  if (env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined) {
    const first =
      env.MASTER_ADDR ?? expandSlurmNodeList(env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST ?? '')[0];
    if (!first)
      throw new CollectiveError(
        'environment: SLURM_PROCID is set but neither MASTER_ADDR nor SLURM_JOB_NODELIST names the master host',
      );
    const port = env.MASTER_PORT ? integer(env, 'MASTER_PORT', 1) : slurmPort(env.SLURM_JOB_ID);
    return {
      rank: integer(env, 'SLURM_PROCID', 0),
      worldSize: integer(env, 'SLURM_NTASKS', 1),
      master: `${first}:${port}`,
      localRank: env.SLURM_LOCALID ? integer(env, 'SLURM_LOCALID', 0) : 0,
      launcher: 'slurm',
      source: `SLURM_PROCID, SLURM_NTASKS, ${env.MASTER_ADDR ? 'MASTER_ADDR' : 'SLURM_JOB_NODELIST[0]'}, ${env.MASTER_PORT ? 'MASTER_PORT' : 'port from SLURM_JOB_ID'}`,
    };
  }
  return null;
}
