#!/usr/bin/env node
// Probe for a usable WebGPU adapter through Dawn (npm package `webgpu`).
// Exit 0 and print one line (vendor/device/driver) when an adapter is found and a device can be
// created on it; exit 2 when there is none. Used by tools/quickstart.sh; needs `pnpm install` first.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NO_ADAPTER = 2;
const TIMEOUT_MS = 60_000;

// `webgpu` is a dependency of @segtrain/tensor, not of the workspace root: resolve it from there.
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const requireFromTensor = createRequire(join(repoRoot, 'packages', 'tensor', 'package.json'));

let webgpuPath;
try {
  webgpuPath = requireFromTensor.resolve('webgpu');
} catch {
  console.error('probe-adapter: the `webgpu` package is not installed; run `pnpm install` first');
  process.exit(1);
}

process.env.XDG_RUNTIME_DIR ??= '/tmp';

const timer = setTimeout(() => {
  console.error(`probe-adapter: no answer from Dawn within ${TIMEOUT_MS / 1000} s`);
  process.exit(NO_ADAPTER);
}, TIMEOUT_MS);

const { create, globals } = await import(pathToFileURL(webgpuPath).href);
Object.assign(globalThis, globals);
// Dawn lives as long as this object does: keep it referenced until we are done.
const gpu = create([]);

let device;
let code = NO_ADAPTER;
try {
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    console.error('probe-adapter: no WebGPU adapter found');
  } else {
    const info = adapter.info;
    // An adapter is only useful if a device can be created on it.
    device = await adapter.requestDevice();
    // In this Dawn, isFallbackAdapter is on adapter.info (GPUAdapter has none).
    const fallback = info.isFallbackAdapter || adapter.isFallbackAdapter ? ', CPU fallback' : '';
    const vendor = info.vendor || 'unknown vendor';
    const arch = info.architecture || 'unknown architecture';
    console.log(
      `adapter: ${vendor} / ${info.device || 'unknown device'} [${arch}${fallback}] ${info.description}`,
    );
    code = 0;
  }
} catch (err) {
  console.error(`probe-adapter: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  device?.destroy();
  clearTimeout(timer);
}
void gpu;
process.exit(code);
