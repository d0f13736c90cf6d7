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

/** Where a launcher keeps the rank, the world size and the local rank, and how its master is found. */
interface LauncherVariables {
  readonly launcher: Launcher;
  readonly rank: string;
  readonly size: string;
  readonly local: string;
  readonly master: (env: Env) => { readonly master: string; readonly source: string };
}

const LAUNCHERS: readonly LauncherVariables[] = [
  {
    launcher: 'torchrun',
    rank: 'RANK',
    size: 'WORLD_SIZE',
    local: 'LOCAL_RANK',
    master: (env) => ({ master: masterFrom(env, 'torchrun'), source: 'MASTER_ADDR, MASTER_PORT' }),
  },
  {
    launcher: 'paddle',
    rank: 'PADDLE_TRAINER_ID',
    size: 'PADDLE_TRAINERS_NUM',
    local: 'PADDLE_LOCAL_RANK',
    master: (env) => {
      const first = (env.PADDLE_TRAINER_ENDPOINTS ?? '').split(',').find(Boolean);
      if (!first)
        throw new CollectiveError(
          'environment: PADDLE_TRAINER_ID is set but PADDLE_TRAINER_ENDPOINTS is empty (it lists host:port per trainer)',
        );
      return { master: first, source: 'PADDLE_TRAINER_ENDPOINTS[0]' };
    },
  },
  {
    launcher: 'openmpi',
    rank: 'OMPI_COMM_WORLD_RANK',
    size: 'OMPI_COMM_WORLD_SIZE',
    local: 'OMPI_COMM_WORLD_LOCAL_RANK',
    master: (env) => ({ master: masterFrom(env, 'Open MPI'), source: 'MASTER_ADDR, MASTER_PORT' }),
  },
  {
    launcher: 'slurm',
    rank: 'SLURM_PROCID',
    size: 'SLURM_NTASKS',
    local: 'SLURM_LOCALID',
    master: (env) => {
      const host =
        env.MASTER_ADDR ?? expandSlurmNodeList(env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST ?? '')[0];
      if (!host)
        throw new CollectiveError(
          'environment: SLURM_PROCID is set but neither MASTER_ADDR nor SLURM_JOB_NODELIST names the master host',
        );
      const port = env.MASTER_PORT ? integer(env, 'MASTER_PORT', 1) : slurmPort(env.SLURM_JOB_ID);
      return {
        master: `${host}:${port}`,
        source: `${env.MASTER_ADDR ? 'MASTER_ADDR' : 'SLURM_JOB_NODELIST[0]'}, ${env.MASTER_PORT ? 'MASTER_PORT' : 'port from SLURM_JOB_ID'}`,
      };
    },
  },
];

/** Rank, world size and master from the first launcher whose variables are set (null: none is). */
export function launchInfoFromEnv(env: Env = process.env): LaunchInfo | null {
  const found = LAUNCHERS.find((l) => env[l.rank] !== undefined && env[l.size] !== undefined);
  if (!found) return null;
  const rank = integer(env, found.rank, 0);
  const worldSize = integer(env, found.size, 1);
  const { master, source } = found.master(env);
  return {
    rank,
    worldSize,
    master,
    localRank: env[found.local] ? integer(env, found.local, 0) : 0,
    launcher: found.launcher,
    source: `${found.rank}, ${found.size}, ${source}`,
  };
}
