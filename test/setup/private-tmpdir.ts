/**
 * Every test file gets its own temporary directory as `os.tmpdir()` (TMPDIR, which the CLI and
 * launcher processes it spawns inherit) and loses it when the file ends, passed or failed. Tests write
 * checkpoints, datasets and run logs there: left behind, a few dozen local runs filled the disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const systemTmp = tmpdir();
const fileTmp = mkdtempSync(join(systemTmp, 'segtrain-test-'));
process.env.TMPDIR = fileTmp;

afterAll(() => {
  process.env.TMPDIR = systemTmp;
  if (process.env.SEGTRAIN_KEEP_TEST_TMP === '1') {
    console.log(`kept the test's temporary files in ${fileTmp} (SEGTRAIN_KEEP_TEST_TMP=1)`);
    return;
  }
  rmSync(fileTmp, { recursive: true, force: true });
});
