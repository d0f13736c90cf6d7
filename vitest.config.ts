/**
 * One vitest config for the workspace: a project per package. `pnpm vitest run` at the root runs them
 * all; each package's `test` script runs its own project (`--project @segtrain/NAME`), so turbo keeps
 * running and caching the packages one at a time.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = dirname(fileURLToPath(import.meta.url));

/** Packages whose tests drive the WebGPU device: one test file at a time. */
const GPU_PACKAGES = new Set([
  'packages/tensor',
  'packages/nn',
  'packages/models',
  'packages/trainer',
  'packages/onnx',
  'apps/cli',
  'apps/bench',
]);

const PACKAGES: ReadonlyArray<{ dir: string; include: string }> = [
  ...['config', 'data', 'tensor', 'nn', 'models', 'trainer', 'collective', 'onnx'].map((name) => ({
    dir: `packages/${name}`,
    include: 'test/**/*.test.ts',
  })),
  { dir: 'apps/cli', include: 'test/**/*.test.ts' },
  { dir: 'apps/bench', include: 'test/**/*.test.ts' },
  { dir: 'test', include: 'e2e/**/*.test.ts' },
];

const packageName = (dir: string): string =>
  (JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as { name: string }).name;

export default defineConfig({
  test: {
    // Child processes, not worker threads: Dawn's native addon (webgpu) holds a Vulkan instance per
    // process and has crashed when loaded into short-lived worker threads; a fork tears down cleanly.
    pool: 'forks',
    // Model overfit tests train for minutes on lavapipe; a hung GPU queue still fails the run.
    testTimeout: 10 * 60_000,
    hookTimeout: 5 * 60_000,
    // The JSON report lands beside the package whose script ran (tools/run-checks.mjs sums them).
    // Each test file writes under its own temporary directory, removed when the file ends.
    setupFiles: [join(root, 'test', 'setup', 'private-tmpdir.ts')],
    reporters: ['default', 'json'],
    outputFile: { json: join(process.cwd(), '.test-results', 'vitest.json') },
    projects: PACKAGES.map(({ dir, include }) => ({
      extends: true,
      test: {
        name: packageName(dir),
        root: join(root, dir),
        include: [include],
        // The machine has 2 cores and a GPU test uses both (lavapipe): GPU packages run one file at a time.
        fileParallelism: !GPU_PACKAGES.has(dir),
      },
    })),
  },
});
