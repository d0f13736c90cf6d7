#!/usr/bin/env node
// The whole test suite: lint, typecheck, build and every package's tests (vitest, through turbo), then
// one summary line over all packages' vitest JSON reports, `tests: N passed, N failed`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);
const workspaces = ['packages', 'apps']
  .flatMap((group) =>
    existsSync(join(root, group))
      ? readdirSync(join(root, group)).map((name) => join(root, group, name))
      : [],
  )
  .concat(join(root, 'test'))
  .filter((dir) => existsSync(join(dir, 'package.json')));

process.env.XDG_RUNTIME_DIR ??= '/tmp';
process.env.TURBO_TELEMETRY_DISABLED ??= '1';

const steps = [
  ['lint (biome)', bin('biome'), ['check', '.']],
  ['typecheck', bin('turbo'), ['run', 'typecheck', '--output-logs=errors-only']],
  // One package's tests at a time: the machine has 2 cores and the GPU tests use both.
  ['tests', bin('turbo'), ['run', 'test', '--concurrency=1']],
];

// Results from an earlier run must not count for this one.
for (const dir of workspaces) rmSync(join(dir, '.test-results'), { recursive: true, force: true });

const failedSteps = [];
for (const [name, command, args] of steps) {
  console.log(`\n==> ${name}: ${relative(root, command)} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) failedSteps.push(name);
}

let passed = 0;
let failed = 0;
let skipped = 0;
console.log('\n==> results by package');
for (const dir of workspaces) {
  const report = join(dir, '.test-results', 'vitest.json');
  const name = relative(root, dir);
  if (!existsSync(report)) {
    console.log(`  ${name.padEnd(24)} no results (its tests did not run)`);
    failed += 1;
    continue;
  }
  const results = JSON.parse(readFileSync(report, 'utf8'));
  // A file that fails to load has no failed test, only a failed suite: count it once.
  const loadFailures = results.success || results.numFailedTests ? 0 : 1;
  const [p, f, s] = [
    results.numPassedTests,
    results.numFailedTests + loadFailures,
    results.numPendingTests + results.numTodoTests,
  ];
  if (p + f === 0) {
    console.log(`  ${name.padEnd(24)} ran no test`);
    failed += 1;
    continue;
  }
  console.log(`  ${name.padEnd(24)} ${p} passed, ${f} failed${s ? `, ${s} skipped` : ''}`);
  passed += p;
  failed += f;
  skipped += s;
}
if (failedSteps.length) console.log(`\nfailed steps: ${failedSteps.join(', ')}`);
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failedSteps.length || failed ? 1 : 0;
