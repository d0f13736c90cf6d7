/**
 * `segtrain launch`: Paddle's `python -m paddle.distributed.launch` (spec b.5) with torchrun's
 * restarts. One rank per device of this machine (or `--nproc_per_node` ranks on a CPU adapter),
 * every machine of `--ips` running the same command; each rank's output in `log_dir/workerlog.N`,
 * local rank 0's also on the terminal. A failed rank stops the job, which is restarted from the
 * newest complete checkpoint up to `--max_restarts` times.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { cpus, networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MASTER_PORT, freePort } from '@segtrain/collective';
import { latestCheckpoint } from '@segtrain/trainer';
import { type CommandSpec, type FlagSpec, type ParsedArgs, UsageError } from '../args.js';
import type { Io } from '../io.js';

/** Paddle's default first port of the master in `--ips` mode. */
export const PADDLE_START_PORT = 6070;
/** How long a rank asked to stop (SIGTERM) gets before SIGKILL. */
const STOP_GRACE_MS = 5000;
const TAIL_LINES = 12;

const LAUNCH_FLAGS: Readonly<Record<string, FlagSpec>> = {
  devices: {
    kind: 'string',
    value: 'I,J',
    help: 'WebGPU adapters (indexes or names `segtrain doctor` lists) for the ranks of this machine, one rank each',
    aliases: ['gpus'],
  },
  nproc_per_node: {
    kind: 'int',
    min: 1,
    value: 'N',
    help: 'ranks on this machine (default: one per --devices entry, else 1); on a CPU adapter they share the cores',
  },
  ips: {
    kind: 'string',
    value: 'IP,IP',
    help: 'every machine of the job (run the same command on each); rank 0 is on the first',
  },
  master: {
    kind: 'string',
    value: 'HOST:PORT',
    help: `rank 0's rendezvous (default: the first --ips address at FLAGS_START_PORT or ${PADDLE_START_PORT}; one machine: a free local port)`,
  },
  log_dir: { kind: 'string', value: 'DIR', help: 'where workerlog.N go (default ./log)' },
  max_restarts: {
    kind: 'int',
    min: 0,
    value: 'K',
    help: 'restart the whole job up to K times from the newest checkpoint in save_dir when a rank fails (default 0)',
  },
};

export interface LaunchPlan {
  readonly nodeRank: number;
  readonly nodes: number;
  readonly perNode: number;
  readonly masterAddr: string;
  readonly masterPort: number;
  /** This machine's address as the others see it (127.0.0.1 on one machine). */
  readonly host: string;
  readonly hosts: readonly string[];
  readonly devices: readonly string[] | null;
  readonly startPort: number;
}

/** Addresses of this machine's interfaces (IPv4 and IPv6, without zone ids). */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .map((a) => a?.address.replace(/%.*$/, '') ?? '')
    .filter((a) => a !== '');
}

function splitList(value: string | undefined): string[] | null {
  if (value === undefined) return null;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return items.length > 0 ? items : null;
}

/** Rank layout and rendezvous from the flags, Paddle's way (rank = node rank × per-node count + local index). */
export function planLaunch(
  flags: ParsedArgs['flags'],
  env: Readonly<Record<string, string | undefined>>,
  addresses: readonly string[],
  port: number,
): LaunchPlan {
  const devices = splitList(flags.devices as string | undefined);
  const requested = flags.nproc_per_node as number | undefined;
  if (devices && requested !== undefined && requested !== devices.length)
    throw new UsageError(
      `segtrain launch: --nproc_per_node ${requested} but --devices lists ${devices.length} adapter(s) (${devices.join(',')}): give one, or make them agree`,
    );
  const perNode = requested ?? devices?.length ?? 1;
  const ips = splitList(flags.ips as string | undefined);
  const envPort = env.FLAGS_START_PORT ?? env.PADDLE_START_PORT;
  const startPort = envPort !== undefined ? Number(envPort) : ips ? PADDLE_START_PORT : port;
  if (!Number.isInteger(startPort) || startPort < 1 || startPort > 65535)
    throw new UsageError(`segtrain launch: FLAGS_START_PORT=${envPort} is not a port number (1–65535)`);
  let nodeRank = 0;
  let host = '127.0.0.1';
  if (ips) {
    const preferred = env.POD_IP;
    nodeRank = preferred ? ips.indexOf(preferred) : ips.findIndex((ip) => addresses.includes(ip));
    if (nodeRank < 0)
      throw new UsageError(
        `segtrain launch: none of this machine's addresses (${addresses.join(', ')}) is in --ips ${ips.join(',')}: ` +
          'run the command on each machine of the list, with the addresses they reach each other by',
      );
    host = ips[nodeRank] as string;
  }
  let masterAddr = ips?.[0] ?? '127.0.0.1';
  let masterPort = startPort;
  const master = flags.master as string | undefined;
  if (master !== undefined) {
    const m = /^(.+):(\d+)$/.exec(master);
    const p = Number(m?.[2]);
    if (!m || !(p >= 1 && p <= 65535))
      throw new UsageError(
        `segtrain launch: --master ${master} is not HOST:PORT (e.g. 10.0.0.1:${DEFAULT_MASTER_PORT})`,
      );
    masterAddr = m[1] as string;
    masterPort = p;
  }
  return {
    nodeRank,
    nodes: ips?.length ?? 1,
    perNode,
    masterAddr,
    masterPort,
    host,
    hosts: ips ?? [host],
    devices,
    startPort,
  };
}

/** torchrun's and Paddle's variables for one rank (proxies dropped: they hang multi-node jobs). */
export function rankEnvironment(
  plan: LaunchPlan,
  local: number,
  base: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const world = plan.nodes * plan.perNode;
  const rank = plan.nodeRank * plan.perNode + local;
  const endpoints = plan.hosts.flatMap((h) =>
    Array.from({ length: plan.perNode }, (_, i) => `${h}:${plan.startPort + i}`),
  );
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base))
    if (v !== undefined && !/^(https?|all)_proxy$/i.test(k)) env[k] = v;
  Object.assign(env, {
    RANK: String(rank),
    WORLD_SIZE: String(world),
    LOCAL_RANK: String(local),
    LOCAL_WORLD_SIZE: String(plan.perNode),
    MASTER_ADDR: plan.masterAddr,
    MASTER_PORT: String(plan.masterPort),
    PADDLE_TRAINER_ID: String(rank),
    PADDLE_TRAINERS_NUM: String(world),
    PADDLE_TRAINER_ENDPOINTS: endpoints.join(','),
    PADDLE_CURRENT_ENDPOINT: endpoints[rank] as string,
    PADDLE_RANK_IN_NODE: String(local),
    PADDLE_LOCAL_RANK: String(local),
    PADDLE_NNODES: String(plan.nodes),
    SEGTRAIN_LAUNCHER_PID: String(process.pid),
    XDG_RUNTIME_DIR: base.XDG_RUNTIME_DIR ?? '/tmp',
  });
  const device = plan.devices?.[local];
  if (device !== undefined) {
    env.SEGTRAIN_ADAPTER = device;
    env.FLAGS_selected_gpus = device;
  }
  // lavapipe starts a thread per core in every process: share the cores instead of oversubscribing.
  env.LP_NUM_THREADS ??= String(Math.max(1, Math.floor(cpus().length / plan.perNode)));
  return env;
}

/** The train arguments with `--resume_model DIR` (replacing any given). */
export function withResume(args: readonly string[], checkpoint: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--resume_model') {
      i++;
      continue;
    }
    if (a.startsWith('--resume_model=')) continue;
    out.push(a);
  }
  return [...out, '--resume_model', checkpoint];
}

/** `--save_dir` of the train arguments (default ./output, as train's). */
function saveDirOf(args: readonly string[]): string {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--save_dir') return args[i + 1] ?? 'output';
    if (a.startsWith('--save_dir=')) return a.slice('--save_dir='.length);
  }
  return 'output';
}

interface RankExit {
  readonly rank: number;
  readonly local: number;
  readonly pid: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

function describeExit(e: RankExit): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const binPath = fileURLToPath(new URL('../bin.js', import.meta.url));

/**
 * Runs this machine's ranks once. Resolves with the first rank that failed (the others were
 * stopped), or null when all finished; `interrupted` when the user stopped the job.
 */
async function runRanks(
  plan: LaunchPlan,
  command: readonly string[],
  logDir: string,
  io: Io,
): Promise<{ failed: RankExit | null; interrupted: NodeJS.Signals | null }> {
  const children: ChildProcess[] = [];
  let failed: RankExit | null = null;
  let interrupted: NodeJS.Signals | null = null;
  const killTimers: NodeJS.Timeout[] = [];
  const stopAll = (signal: NodeJS.Signals) => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  const stopGracefully = () => {
    stopAll('SIGTERM');
    killTimers.push(setTimeout(() => stopAll('SIGKILL'), STOP_GRACE_MS));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      stopAll('SIGKILL');
      return;
    }
    interrupted = signal;
    io.err(`segtrain launch: ${signal}: stopping every rank (each saves a checkpoint; again to kill them)\n`);
    stopAll('SIGINT');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const exits = Array.from({ length: plan.perNode }, (_, local) => {
      const rank = plan.nodeRank * plan.perNode + local;
      const logPath = join(logDir, `workerlog.${local}`);
      const fd = openSync(logPath, 'w');
      const child = spawn(process.execPath, [binPath, ...command], {
        env: rankEnvironment(plan, local, process.env),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      io.out(`launch: rank ${rank} (local ${local}) pid ${child.pid}, log ${logPath}\n`);
      const write = (echo: (text: string) => void) => (chunk: Buffer) => {
        writeSync(fd, chunk);
        if (local === 0) echo(chunk.toString());
      };
      child.stdout?.on('data', write(io.out));
      child.stderr?.on('data', write(io.err));
      return new Promise<void>((done) => {
        child.once('close', (code, signal) => {
          closeSync(fd);
          const ok = code === 0 || (interrupted !== null && signal === null);
          if (!ok && !failed && !interrupted) {
            failed = { rank, local, pid: child.pid ?? -1, code, signal };
            stopGracefully();
          }
          done();
        });
        child.once('error', (error) => {
          io.err(`segtrain launch: rank ${rank} could not start: ${error.message}\n`);
        });
      });
    });
    await Promise.all(exits);
  } finally {
    for (const t of killTimers) clearTimeout(t);
    stopAll('SIGKILL');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return { failed, interrupted };
}

async function launchRun(args: ParsedArgs, io: Io): Promise<number> {
  const [command, ...rest] = args.positionals;
  if (command !== 'train')
    throw new UsageError(
      `segtrain launch: the command to launch is 'train' (got '${command ?? ''}'): segtrain launch [flags] train --config FILE …`,
    );
  const plan = planLaunch(args.flags, process.env, localAddresses(), await freePort());
  const logDir = resolve((args.flags.log_dir as string | undefined) ?? 'log');
  mkdirSync(logDir, { recursive: true });
  const maxRestarts = (args.flags.max_restarts as number | undefined) ?? 0;
  const world = plan.nodes * plan.perNode;
  io.out(
    `launch: ${world} rank(s) on ${plan.nodes} machine(s), this is machine ${plan.nodeRank} (${plan.host}) with ranks ` +
      `${plan.nodeRank * plan.perNode}–${(plan.nodeRank + 1) * plan.perNode - 1}; master ${plan.masterAddr}:${plan.masterPort}\n`,
  );
  let trainArgs = [...rest];
  for (let attempt = 0; ; attempt++) {
    const { failed, interrupted } = await runRanks(plan, ['train', ...trainArgs], logDir, io);
    if (interrupted) return 130;
    if (!failed) {
      io.out(`launch: all ${plan.perNode} rank(s) of this machine finished\n`);
      return 0;
    }
    const log = join(logDir, `workerlog.${failed.local}`);
    io.err(
      `segtrain launch: rank ${failed.rank} (pid ${failed.pid}) ${describeExit(failed)}; the other ranks were stopped. ` +
        `Last lines of ${log}:\n${tail(log, TAIL_LINES)}\n`,
    );
    if (attempt >= maxRestarts) return 1;
    const checkpoint = latestCheckpoint(resolve(saveDirOf(trainArgs)));
    io.err(
      `segtrain launch: restart ${attempt + 1} of ${maxRestarts} because rank ${failed.rank} ${describeExit(failed)}, ` +
        `${checkpoint ? `from ${checkpoint}` : 'from the start (no checkpoint yet)'}\n`,
    );
    if (checkpoint) trainArgs = withResume(trainArgs, checkpoint);
  }
}

export const LAUNCH: CommandSpec = {
  name: 'launch',
  description:
    'data-parallel training: one rank per device here, on every machine of --ips (Paddle launch flags)',
  flags: LAUNCH_FLAGS,
  arguments: '<command> [args...]',
  passThrough: true,
  run: launchRun,
};
