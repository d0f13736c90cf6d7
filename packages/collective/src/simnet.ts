/**
 * Simulated machines on one host: one network namespace per node, joined by veth pairs to a bridge,
 * each link shaped with tbf in both directions (this kernel has no netem: no added latency). Needs
 * root; everything is removed on close() and, as a last resort, when the process exits.
 */
import { execFileSync } from 'node:child_process';

export type LinkRate = 'none' | '1gbit' | '10gbit' | '25gbit';

export const LINK_RATES: readonly LinkRate[] = ['none', '1gbit', '10gbit', '25gbit'];

/** Bits per second of a shaped link (null: unshaped, the host's own speed). */
export function linkBitsPerSecond(rate: LinkRate): number | null {
  return rate === 'none' ? null : Number(rate.replace('gbit', '')) * 1e9;
}

export interface SimNet {
  readonly nodes: number;
  readonly rate: LinkRate;
  /** Node i's address on the bridge. */
  readonly addresses: readonly string[];
  /** The command and arguments that run `command args…` inside node i. */
  wrap(node: number, command: string, args: readonly string[]): [string, string[]];
  /** Takes the link of node i down without closing anything (as a pulled cable looks). */
  cut(node: number): void;
  close(): void;
}

/** Why simulated nodes cannot be made here, or null when they can. */
export function simNetUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0)
    return 'network namespaces and tc need root (run as root, or use --link none)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    execFileSync('tc', ['-V'], { stdio: 'ignore' });
  } catch {
    return "the 'ip' and 'tc' commands (iproute2) are missing: apt-get install iproute2";
  }
  return null;
}

const run = (args: readonly string[]) => {
  const [command, ...rest] = args;
  execFileSync(command ?? 'true', rest, { stdio: ['ignore', 'ignore', 'pipe'] });
};
const quietly = (args: readonly string[]) => {
  try {
    run(args);
  } catch {
    // Already gone.
  }
};

let created = 0;

/** Makes `nodes` namespaces on one bridge, links shaped to `rate` each way. */
export function createSimNet(nodes: number, rate: LinkRate): SimNet {
  const why = simNetUnavailable();
  if (why) throw new Error(`simulated nodes unavailable: ${why}`);
  if (nodes < 1 || nodes > 200) throw new Error(`simulated nodes: ${nodes} is outside 1…200`);
  // Interface names hold 15 characters: pid and a counter keep concurrent runs apart.
  const tag = `${process.pid % 100000}${String.fromCharCode(97 + (created++ % 26))}`;
  const bridge = `stb${tag}`;
  const spaces = Array.from({ length: nodes }, (_, i) => `segtrain-${tag}-${i}`);
  const hostEnds = Array.from({ length: nodes }, (_, i) => `stv${tag}x${i}`);
  const addresses = Array.from(
    { length: nodes },
    (_, i) => `10.77.${Math.floor((i + 1) / 250)}.${((i + 1) % 250) + 1}`,
  );
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    process.off('exit', close);
    for (const space of spaces) quietly(['ip', 'netns', 'del', space]);
    quietly(['ip', 'link', 'del', bridge]);
  };
  process.on('exit', close);
  const bits = linkBitsPerSecond(rate);
  // tbf needs a bucket of at least rate/HZ bytes (HZ ≤ 1000 here) to reach its rate.
  const shape = (prefix: string[], device: string) => {
    if (bits === null) return;
    const burst = Math.max(256 * 1024, Math.ceil(bits / 8 / 250));
    run([
      ...prefix,
      'tc',
      'qdisc',
      'add',
      'dev',
      device,
      'root',
      'tbf',
      'rate',
      rate,
      'burst',
      String(burst),
      'latency',
      '50ms',
    ]);
  };
  try {
    run(['ip', 'link', 'add', bridge, 'type', 'bridge']);
    run(['ip', 'link', 'set', bridge, 'up']);
    spaces.forEach((space, i) => {
      const hostEnd = hostEnds[i] as string;
      run(['ip', 'netns', 'add', space]);
      run(['ip', 'link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', space]);
      run(['ip', 'link', 'set', hostEnd, 'master', bridge, 'up']);
      run(['ip', '-n', space, 'addr', 'add', `${addresses[i]}/16`, 'dev', 'eth0']);
      run(['ip', '-n', space, 'link', 'set', 'eth0', 'up']);
      run(['ip', '-n', space, 'link', 'set', 'lo', 'up']);
      shape(['ip', 'netns', 'exec', space], 'eth0'); // node → bridge
      shape([], hostEnd); // bridge → node
    });
  } catch (error) {
    close();
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`simulated nodes: setting up the network failed: ${stderr || (error as Error).message}`);
  }
  return {
    nodes,
    rate,
    addresses,
    wrap: (node, command, args) => ['ip', ['netns', 'exec', spaces[node] ?? '', command, ...args]],
    cut: (node) => run(['ip', 'link', 'set', hostEnds[node] ?? '', 'down']),
    close,
  };
}
