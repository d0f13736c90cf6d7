import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError } from '../src/index.js';

/** Writes a tree of config files into a fresh temp dir and returns its path. */
export function writeConfigs(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'segtrain-config-'));
  for (const [name, text] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
  return dir;
}

/** Asserts `fn` throws a ConfigError whose message names the file (basename or path), the key and each fragment. */
export function assertConfigError(
  fn: () => unknown,
  expected: { file: string; key?: string; line?: number; includes?: string[] },
): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(
    caught instanceof ConfigError,
    `expected a ConfigError, got ${caught instanceof Error ? caught.stack : String(caught)}`,
  );
  const message = caught.message;
  assert.ok(message.includes(expected.file), `message should name file '${expected.file}': ${message}`);
  if (expected.key !== undefined) {
    assert.equal(caught.keyPath, expected.key, `keyPath in: ${message}`);
    assert.ok(message.includes(`'${expected.key}'`), `message should name key '${expected.key}': ${message}`);
  }
  if (expected.line !== undefined) assert.equal(caught.origin.line, expected.line, `line in: ${message}`);
  for (const fragment of expected.includes ?? [])
    assert.ok(message.includes(fragment), `message should include '${fragment}': ${message}`);
  return caught;
}
