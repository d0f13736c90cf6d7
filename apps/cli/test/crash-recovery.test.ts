/**
 * Kills `segtrain train` with SIGKILL at 11 points spread over checkpoint writes, retention and
 * best_model replacement (the trainer's SEGTRAIN_CRASH_AT test hook picks the instruction), resumes
 * each time from the newest complete checkpoint, and checks that the end equals an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { latestCheckpoint } from '@segtrain/trainer';
import { afterEach, beforeAll, describe, it } from 'vitest';
import { killChildren, startCli, tinyProject } from './helpers.js';

/**
 * 6 iterations, a save point (and evaluation) every 2, two iter_* kept (retention at iter 6); a log
 * line every iteration, so the loss history does not depend on where a run was resumed.
 */
const TRAIN = ['--iters', '6', '--save_interval', '2', '--keep_checkpoint_max', '2', '--do_eval'];
const SEED_AND_LOG = ['--seed', '3', '--log_iters', '1'];

interface Step {
  /** SEGTRAIN_CRASH_AT for this process: `point#k` is the point's k-th passage in this process. */
  readonly crashAt: string;
  /** Resume from this iter_N instead of the newest (a user picking an older checkpoint). */
  readonly resumeFrom?: string;
}

let reference = '';
let config = '';
let root = '';

async function trainIn(saveDir: string, resume: string | null, env: Record<string, string> = {}) {
  const args = ['train', '--config', config, ...TRAIN, ...SEED_AND_LOG, '--save_dir', saveDir];
  return startCli(resume ? [...args, '--resume_model', resume] : args, env).done;
}

const bytes = (dir: string, rel: string) => readFileSync(join(dir, rel));
const leftovers = (dir: string) => readdirSync(dir).filter((n) => /\.(tmp|old|del)-\d+$/.test(n));

/**
 * Runs `steps` as successive processes on one save_dir, each killed at its crash point and the next
 * resumed from the newest complete checkpoint, then a last run to the end; compares with the reference.
 */
async function crashChain(name: string, steps: readonly Step[]): Promise<void> {
  const saveDir = join(root, name);
  let resume: string | null = null;
  for (const step of steps) {
    const from = step.resumeFrom ? join(saveDir, step.resumeFrom) : resume;
    const killed = await trainIn(saveDir, from, { SEGTRAIN_CRASH_AT: step.crashAt });
    assert.equal(
      killed.signal,
      'SIGKILL',
      `${step.crashAt} was reached (exit ${killed.code}):\n${killed.err}`,
    );
    resume = latestCheckpoint(saveDir);
    assert.ok(resume, `after a kill at ${step.crashAt} a complete checkpoint is there`);
  }
  const last = await trainIn(saveDir, resume);
  assert.equal(last.code, 0, last.err);
  assert.match(last.out, /Taking over the lock .*is no longer running/);
  assert.deepEqual(leftovers(saveDir), [], 'no temp directory survives the start');
  for (const rel of [
    'iter_6/model.safetensors',
    'iter_6/optimizer.safetensors',
    'best_model/model.safetensors',
  ])
    assert.ok(bytes(saveDir, rel).equals(bytes(reference, rel)), `${rel} equals the uninterrupted run's`);
  const state = (dir: string) => JSON.parse(bytes(dir, 'iter_6/train_state.json').toString());
  assert.deepEqual(state(saveDir).history, state(reference).history);
  assert.deepEqual(
    [state(saveDir).bestMiou, state(saveDir).bestIter],
    [state(reference).bestMiou, state(reference).bestIter],
  );
  assert.deepEqual(
    readdirSync(saveDir)
      .filter((n) => n.startsWith('iter_'))
      .sort(),
    ['iter_4', 'iter_6'],
  );
}

describe('crash recovery: SIGKILL at 11 points, then resume', () => {
  afterEach(killChildren);

  beforeAll(async () => {
    const project = await tinyProject();
    config = project.config;
    root = mkdtempSync(join(project.dir, 'crash-'));
    reference = join(root, 'reference');
    const done = await trainIn(reference, null);
    assert.equal(done.code, 0, done.err);
    const evals = JSON.parse(bytes(reference, 'iter_6/train_state.json').toString()).history.evals;
    const present = evals.map((e: { miouPresent: number }) => e.miouPresent);
    // The chains below replace best_model at iters 4 and 6: each evaluation must beat the last.
    assert.ok(present[1] > present[0] && present[2] > present[1], `improving evaluations: ${present}`);
  });

  it('chain A: evaluation, best_model writes and replacement, retention, the evaluation record', async () => {
    await crashChain('chain-a', [
      { crashAt: 'eval.done#1' }, // iter_2 saved, its evaluation not recorded
      { crashAt: 'best.filled#1' }, // (resumed at 2: the pending evaluation) best_model's temp full, not renamed
      { crashAt: 'iter.renamed#1' }, // iter_4 in place, before its evaluation
      { crashAt: 'best.set-aside#1' }, // (resumed at 4) the old best_model set aside, the new one not in place
      { crashAt: 'retention.renamed#1' }, // iter_2 renamed for deletion at iter 6, not yet deleted
      { crashAt: 'state.eval-written#1' }, // (resumed at 6) eval.json written, train_state.json not
    ]);
  });

  it('chain B: before a save, replacing an existing iter_N, the temp of a new one, best_model in place', async () => {
    await crashChain('chain-b', [
      { crashAt: 'save.start#2' }, // at iter 4, before anything of iter_4 is written
      { crashAt: 'best.renamed#1' }, // (resumed at 2) iter 4's best_model in place, evaluation not recorded
      { crashAt: 'iter.set-aside#1', resumeFrom: 'iter_2' }, // the complete iter_4 set aside for its replacement
      { crashAt: 'iter.filled#2' }, // (resumed at 2) iter_6's temp complete, not renamed
      { crashAt: 'eval.done#1' }, // (resumed at 4) iter_6 saved and evaluated, nothing recorded
    ]);
  });
});
