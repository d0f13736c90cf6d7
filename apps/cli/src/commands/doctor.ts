import { execFileSync } from 'node:child_process';
import { type AdapterReport, probeAdapter } from '@segtrain/tensor';
import { type FlagSpec, formatHelp, parseArgs } from '../args.js';
import type { Io } from '../io.js';

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  json: { kind: 'bool', help: 'print the report as JSON' },
  help: { kind: 'bool', help: 'show this help' },
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

export async function doctorCommand(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs('segtrain doctor', argv, FLAGS);
  if (args.flags.help) {
    io.out(formatHelp('Usage: segtrain doctor [--json]', FLAGS));
    return 0;
  }
  const checks: Check[] = [];
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  checks.push({
    name: 'node',
    ok: nodeMajor >= 20,
    value: process.version,
    advice: 'Install Node.js 20 or newer',
  });
  const pnpm = pnpmVersion();
  checks.push({
    name: 'pnpm',
    ok: pnpm === PINNED_PNPM,
    value: pnpm ?? 'not found',
    advice: `Install the pinned pnpm: npm i -g pnpm@${PINNED_PNPM} (corepack does not work here)`,
  });
  const zmq = await zeromqVersion();
  checks.push({
    name: 'zeromq',
    ok: zmq.version !== undefined,
    value: zmq.version ? `libzmq ${zmq.version}` : `failed to load (${zmq.error})`,
    advice: 'Reinstall with `pnpm install` (zeromq must be listed under allowBuilds in pnpm-workspace.yaml)',
  });
  let adapter: AdapterReport | null = null;
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
  const failed = checks.filter((c) => !c.ok);
  if (args.flags.json) {
    io.out(`${JSON.stringify({ ok: failed.length === 0, checks, adapter }, null, 2)}\n`);
    return failed.length ? 1 : 0;
  }
  for (const c of checks) io.out(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(8)} ${c.value}\n`);
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
  if (failed.length) {
    io.err('\nTo fix:\n');
    for (const c of failed) io.err(`- ${c.name}: ${c.advice}\n`);
    return 1;
  }
  return 0;
}
