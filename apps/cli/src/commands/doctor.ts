import { execFileSync } from 'node:child_process';
import {
  type AdapterReport,
  AUTOTUNE_ENV,
  autotuneOptionsFromEnv,
  GPU_POLL_ENV,
  gpuPollModeFromEnv,
  probeAdapter,
} from '@segtrain/tensor';
import type { CommandSpec, FlagSpec, ParsedArgs } from '../args.js';
import type { Io } from '../io.js';

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  json: { kind: 'bool', help: 'print the report as JSON' },
};
const PINNED_PNPM = '12.4.2';
const KEY_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxBindGroups',
];
const KEY_FEATURES = ['subgroups', 'shader-f16', 'timestamp-query'];

interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly value: string;
  readonly advice?: string;
  /** Information for developers (pnpm, the ZeroMQ addon): shown, never a failure of `doctor`. */
  readonly info?: boolean;
}

function pnpmVersion(): string | undefined {
  try {
    return execFileSync('pnpm', ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

async function zeromqVersion(): Promise<{ version?: string; error?: string }> {
  try {
    const zmq = await import('zeromq');
    return { version: zmq.version };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

const ADAPTER_ADVICE =
  "No WebGPU adapter. Run `bash tools/quickstart.sh setup`: on Debian 12 as root it installs Mesa's lavapipe " +
  '(mesa-vulkan-drivers and libvulkan1 from bookworm-backports; Mesa 22 from bookworm main is too old for Dawn). ' +
  'Elsewhere install a Vulkan driver (a GPU vendor driver, or Mesa >= 23 with lavapipe) and the Vulkan loader, and set XDG_RUNTIME_DIR.';

/** A setting read from the environment: its description, or a failure naming it with what to set. */
function envCheck(name: string, describe: () => string, advice: string): Check {
  try {
    return { name, ok: true, value: describe() };
  } catch (error) {
    return { name, ok: false, value: error instanceof Error ? error.message : String(error), advice };
  }
}

/** Whether kernels will be tuned on this adapter, and where the choices are kept; a bad SEGTRAIN_AUTOTUNE stops training. */
const autotuneCheck = (software: boolean): Check =>
  envCheck(
    'autotune',
    () => {
      const { enabled, cacheFile } = autotuneOptionsFromEnv(software);
      const why = process.env[AUTOTUNE_ENV]
        ? `${AUTOTUNE_ENV}=${process.env[AUTOTUNE_ENV]}`
        : software
          ? 'a CPU adapter'
          : 'a GPU';
      return `${enabled ? 'on' : 'off'} (${why}); cache ${cacheFile}`;
    },
    `set ${AUTOTUNE_ENV} to 1 (tune kernels) or 0 (keep the defaults), or unset it`,
  );

/** How the main thread waits for the GPU; a bad SEGTRAIN_GPU_POLL stops training. */
const gpuPollCheck = (): Check =>
  envCheck(
    'gpu poll',
    () =>
      gpuPollModeFromEnv() === 'sleep'
        ? 'sleep (a wait for the GPU sleeps between its polls after the first 0.25 ms)'
        : `spin (${GPU_POLL_ENV}=spin: Dawn's busy polling)`,
    `set ${GPU_POLL_ENV} to sleep or spin, or unset it`,
  );

/** Exit 1 only for what stops `train` (no adapter, Node too old); pnpm and ZeroMQ are information. */
async function doctor(args: ParsedArgs, io: Io): Promise<number> {
  const checks: Check[] = [];
  const [nodeMajor = 0, nodeMinor = 0] = process.versions.node.split('.').map(Number);
  checks.push({
    name: 'node',
    ok: nodeMajor > 20 || (nodeMajor === 20 && nodeMinor >= 9),
    value: process.version,
    advice: 'install Node.js 20.9 or newer (the floor of sharp, the image decoder)',
  });
  const pnpm = pnpmVersion();
  checks.push({
    name: 'pnpm',
    ok: pnpm === PINNED_PNPM,
    value: pnpm ?? 'not found (needed only to develop segtrain)',
    advice: `to develop segtrain, install the pinned pnpm: npm i -g pnpm@${PINNED_PNPM} (corepack does not work here)`,
    info: true,
  });
  const zmq = await zeromqVersion();
  checks.push({
    name: 'zeromq',
    ok: zmq.version !== undefined,
    value: zmq.version ? `libzmq ${zmq.version}` : `failed to load (${zmq.error})`,
    advice:
      'data-parallel training needs it: reinstall with `pnpm install` (zeromq must be listed under allowBuilds in pnpm-workspace.yaml)',
    info: true,
  });
  const poll = gpuPollCheck();
  checks.push(poll);
  let adapter: AdapterReport | null = null;
  // Opening Dawn reads the same variable: a bad value is reported once, by its own check.
  if (poll.ok) {
    let adapterError: string | undefined;
    try {
      adapter = await probeAdapter();
    } catch (error) {
      adapterError = error instanceof Error ? error.message : String(error);
    }
    checks.push({
      name: 'webgpu',
      ok: adapter !== null,
      value: adapter
        ? `${adapter.vendor} ${adapter.name || adapter.device}${adapter.isFallback ? ' (CPU fallback)' : ''}`
        : (adapterError ?? 'no adapter'),
      advice: ADAPTER_ADVICE,
    });
  }
  if (adapter) checks.push(autotuneCheck(adapter.isFallback));
  const failed = checks.filter((c) => !c.ok && !c.info);
  const notes = checks.filter((c) => !c.ok && c.info);
  if (args.flags.json) {
    io.out(`${JSON.stringify({ ok: failed.length === 0, checks, adapter }, null, 2)}\n`);
    return failed.length ? 1 : 0;
  }
  for (const c of checks)
    io.out(`${c.ok ? 'ok  ' : c.info ? 'note' : 'FAIL'}  ${c.name.padEnd(8)} ${c.value}\n`);
  if (adapter) {
    io.out('\nWebGPU adapter\n');
    io.out(`  vendor        ${adapter.vendor}\n`);
    io.out(`  architecture  ${adapter.architecture || '(not reported)'}\n`);
    io.out(`  device        ${adapter.name || adapter.device}\n`);
    io.out(`  driver        ${adapter.driver || '(not reported)'}\n`);
    io.out(`  backend       ${adapter.backend}\n`);
    io.out(`  CPU fallback  ${adapter.isFallback ? 'yes (software rasteriser: expect CPU speed)' : 'no'}\n`);
    io.out(
      `  features      ${KEY_FEATURES.map((f) => `${f}: ${adapter?.features.includes(f) ? 'yes' : 'no'}`).join(', ')}\n`,
    );
    io.out('  limits\n');
    for (const key of KEY_LIMITS)
      if (adapter.limits[key] !== undefined) io.out(`    ${key.padEnd(36)}${adapter.limits[key]}\n`);
  }
  for (const c of notes) io.out(`\nnote: ${c.name}: ${c.advice}\n`);
  if (failed.length) {
    io.err('\nTo fix:\n');
    for (const c of failed) io.err(`- ${c.name}: ${c.advice}\n`);
    return 1;
  }
  return 0;
}

/** `segtrain doctor`: can this machine train? */
export const DOCTOR: CommandSpec = {
  name: 'doctor',
  description: 'check that training can run here (WebGPU adapter, Node); pnpm and ZeroMQ for developers',
  flags: FLAGS,
  run: doctor,
};
