import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePdparams, type HostTensor, loadStateFile } from '@segtrain/nn';
import { Autotuner, type Device, getDevice, liveTensorCount, type TuneResult } from '@segtrain/tensor';
import { describe, it } from 'vitest';
import { EvaluationError, NonFiniteLossError, readEvents, type TrainOptions, train } from '../src/index.js';
import { tinyConfig, tinyRun } from './fixtures.js';

let devicePromise: Promise<Device> | undefined;
const device = () => {
  devicePromise ??= getDevice();
  return devicePromise;
};

async function options(
  saveDir: string,
  extra: Partial<TrainOptions> = {},
  opts: string[] = [],
): Promise<TrainOptions> {
  const run = await tinyRun();
  const lines: string[] = [];
  return {
    device: await device(),
    config: tinyConfig(run, opts),
    saveDir: join(run.dir, saveDir),
    saveInterval: 2,
    logIters: 1,
    numWorkers: 0,
    doEval: true,
    useVdl: true,
    resumeModel: null,
    seed: 7,
    keepCheckpointMax: 5,
    earlyStopIntervals: null,
    log: (line) => lines.push(line),
    ...extra,
  };
}

let fullRun: Promise<string> | undefined;
/** An uninterrupted 4-iteration run with evaluation at 2 and 4: what every resume must end equal to. */
function uninterrupted(): Promise<string> {
  fullRun ??= (async () => {
    const full = await options('run-full');
    (await train(full)).model.dispose();
    return full.saveDir;
  })();
  return fullRun;
}

const fileAt = (dir: string, iter: number, file: string) => readFileSync(join(dir, `iter_${iter}`, file));
const stateAt = (dir: string, iter: number) => JSON.parse(fileAt(dir, iter, 'train_state.json').toString());

describe('train (tiny demo data, lavapipe)', () => {
  it('trains with evaluation, checkpoints, best_model, event file and plot', async () => {
    const lines: string[] = [];
    const o = await options('run-a', { log: (l) => lines.push(l) });
    const before = liveTensorCount();
    const result = await train(o);
    result.model.dispose();
    assert.equal(result.iter, 4);
    assert.equal(liveTensorCount(), before, 'no tensors leak past train()');
    const train4 = lines.filter((l) => l.startsWith('[TRAIN]'));
    assert.equal(train4.length, 4);
    assert.match(
      train4[0] as string,
      /^\[TRAIN\] epoch: 1, iter: 1\/4, loss: \d+\.\d{4}, lr: 0\.002000, batch_cost: \d+\.\d{4}, reader_cost: \d+\.\d{5}, ips: \d+\.\d{4} samples\/sec \| ETA \d\d:\d\d:\d\d$/,
    );
    // 8 images, batch 2 → 4 iterations per epoch; lr of iter 3 = 0.002·(1 − 2/4)^0.9.
    assert.match(train4[2] as string, new RegExp(`lr: ${(0.002 * 0.5 ** 0.9).toFixed(6)}`));
    assert.equal(lines.filter((l) => l.startsWith('[EVAL] #Images: 2 mIoU: ')).length, 2);
    assert.equal(
      lines.filter((l) => /^\[EVAL\] mIoU over \d+ classes present: \d\.\d{4}$/.test(l)).length,
      2,
    );
    for (const name of ['iter_2', 'iter_4', 'best_model', 'training.html'])
      assert.ok(existsSync(join(o.saveDir, name)), `${name} written`);
    for (const file of ['model.safetensors', 'optimizer.safetensors', 'train_state.json', 'eval.json'])
      assert.ok(existsSync(join(o.saveDir, 'iter_4', file)), `iter_4/${file}`);
    const evalRecord = JSON.parse(readFileSync(join(o.saveDir, 'iter_4', 'eval.json'), 'utf8'));
    assert.equal(evalRecord.iter, 4);
    assert.ok(evalRecord.mIoU >= 0 && evalRecord.mIoU <= 1);
    assert.ok(!readdirSync(o.saveDir).some((n) => n.includes('.tmp-')), 'no temp directories left');
    const events = readdirSync(o.saveDir).find((n) => n.startsWith('events.out.tfevents.'));
    assert.ok(events, 'an event file');
    const scalars = readEvents(join(o.saveDir, events)).flatMap((e) =>
      (e.summary ?? []).map((s) => `${s.tag}@${e.step}`),
    );
    for (const tag of ['Train/loss@1', 'Train/lr@4', 'Train/loss_2@4', 'Evaluate/mIoU@2', 'Evaluate/Acc@4'])
      assert.ok(scalars.includes(tag), `${tag} in ${scalars.join(' ')}`);
    const html = readFileSync(join(o.saveDir, 'training.html'), 'utf8');
    assert.equal((html.match(/<svg/g) ?? []).length, 3);
  });

  it("resumes from PaddleSeg's iter_N (model.pdparams + model.pdopt) to the same weights", async () => {
    const full = await uninterrupted();
    const run = await tinyRun();
    // PaddleSeg's layout: accumulators by internal name, matched through the name table.
    const paddleDir = join(run.dir, 'paddle-ckpt', 'iter_2');
    mkdirSync(paddleDir, { recursive: true });
    const weights = (await loadStateFile(join(full, 'iter_2', 'model.safetensors'))).values;
    const optimizer = (await loadStateFile(join(full, 'iter_2', 'optimizer.safetensors'))).values;
    const nameTable = new Map([...weights.keys()].map((k, i) => [k, `param_${i}.w_0`]));
    writeFileSync(join(paddleDir, 'model.pdparams'), encodePdparams(weights, { nameTable }));
    const pdopt = new Map<string, HostTensor>();
    for (const [structured, internal] of nameTable) {
      const m1 = optimizer.get(`${structured}.moment1`);
      if (!m1) continue;
      pdopt.set(`${internal}_moment1_0`, m1);
      pdopt.set(`${internal}_moment2_0`, optimizer.get(`${structured}.moment2`) as HostTensor);
      const t = optimizer.get(`${structured}.step`)?.data[0] ?? 0;
      pdopt.set(`${internal}_beta1_pow_acc_0`, { shape: [1], data: Float32Array.of(0.9 ** (t + 1)) });
    }
    writeFileSync(join(paddleDir, 'model.pdopt'), encodePdparams(pdopt));
    const lines: string[] = [];
    const resumed = await options('run-from-paddle', { resumeModel: paddleDir, log: (l) => lines.push(l) });
    (await train(resumed)).model.dispose();
    assert.ok(lines.some((l) => l.startsWith(`Resume model from ${paddleDir}, continuing after iter 2`)));
    // Same seed and iteration: the same batches, so the same weights and optimizer state at iter 4.
    for (const file of ['model.safetensors', 'optimizer.safetensors'])
      assert.ok(fileAt(full, 4, file).equals(fileAt(resumed.saveDir, 4, file)), file);
  });

  it('resumes from iter_2 to bit-identical weights, optimizer state and best mIoU', async () => {
    const full = await uninterrupted();
    // A fresh process would start from the seed and checkpoint alone; a different --seed is ignored.
    const resumed = await options('run-resumed', { resumeModel: join(full, 'iter_2'), seed: 99 });
    (await train(resumed)).model.dispose();
    for (const file of ['model.safetensors', 'optimizer.safetensors'])
      assert.ok(fileAt(full, 4, file).equals(fileAt(resumed.saveDir, 4, file)), file);
    assert.equal(stateAt(resumed.saveDir, 4).bestMiou, stateAt(full, 4).bestMiou);
    assert.deepEqual(stateAt(resumed.saveDir, 4).history, stateAt(full, 4).history);
  });

  it('chooses best_model by the mean IoU over the classes present, and says so', async () => {
    const lines: string[] = [];
    const o = await options('run-best', { log: (l) => lines.push(l) });
    (await train(o)).model.dispose();
    const { bestMiou, bestIter, history } = stateAt(o.saveDir, 4);
    const present = history.evals.map((e: { miouPresent: number }) => e.miouPresent);
    assert.equal(bestMiou, Math.max(...present));
    assert.equal(bestIter, history.evals[present.indexOf(bestMiou)].iter);
    const best = JSON.parse(readFileSync(join(o.saveDir, 'best_model', 'eval.json'), 'utf8'));
    assert.deepEqual([best.iter, best.mIoUPresent], [bestIter, bestMiou]);
    assert.ok(
      lines.includes(
        `[EVAL] The model with the best validation mIoU over the classes present (${bestMiou.toFixed(4)}) was saved at iter ${bestIter}.`,
      ),
    );
  });

  it('an evaluation failure keeps the checkpoint written before it; the resume evaluates it first', async () => {
    const run = await tinyRun();
    const valCopy = join(run.dir, 'val-copy');
    cpSync(run.data, valCopy, { recursive: true });
    const valDir = join(valCopy, 'leftImg8bit', 'val', 'renderheim');
    const image = join(valDir, readdirSync(valDir)[0] as string);
    const good = readFileSync(image);
    writeFileSync(image, good.subarray(0, 40));
    const o = await options('run-evalfail', {}, [`val_dataset.dataset_root=${valCopy}`]);
    const iter2 = join(o.saveDir, 'iter_2');
    await assert.rejects(train(o), (error: unknown) => {
      assert.ok(error instanceof EvaluationError);
      assert.match(error.message, /^evaluation at iter 2 failed: image '.*' cannot be decoded/);
      assert.ok(
        error.message.endsWith(
          `The checkpoint ${iter2} was written before it: fix the validation data, then resume with --resume_model ${iter2}`,
        ),
        error.message,
      );
      return true;
    });
    assert.equal(stateAt(o.saveDir, 2).pendingEval, true);
    assert.ok(!existsSync(join(iter2, 'eval.json')));
    writeFileSync(image, good);
    (await train({ ...o, resumeModel: iter2 })).model.dispose();
    assert.equal(stateAt(o.saveDir, 2).pendingEval, undefined);
    assert.equal(JSON.parse(readFileSync(join(iter2, 'eval.json'), 'utf8')).iter, 2);
    const full = await uninterrupted();
    assert.ok(fileAt(full, 4, 'model.safetensors').equals(fileAt(o.saveDir, 4, 'model.safetensors')));
    assert.deepEqual(stateAt(o.saveDir, 4).history, stateAt(full, 4).history);
  });

  it('an abort (SIGINT/SIGTERM in the CLI) finishes the step and saves it; the resume ends as an uninterrupted run', async () => {
    const controller = new AbortController();
    const o = await options('run-abort', {
      signal: controller.signal,
      log: (line) => {
        if (line.startsWith('[TRAIN] epoch: 1, iter: 1/')) controller.abort();
      },
    });
    const stopped = await train(o);
    stopped.model.dispose();
    assert.equal(stopped.iter, 1);
    assert.deepEqual(stopped.interrupted, { checkpoint: join(o.saveDir, 'iter_1') });
    assert.equal(stateAt(o.saveDir, 1).interrupted, true);
    const resumed = await train({
      ...o,
      signal: new AbortController().signal,
      resumeModel: join(o.saveDir, 'iter_1'),
    });
    resumed.model.dispose();
    assert.equal(resumed.interrupted, null);
    const full = await uninterrupted();
    for (const file of ['model.safetensors', 'optimizer.safetensors'])
      assert.ok(fileAt(full, 4, file).equals(fileAt(o.saveDir, 4, file)), file);
  });

  it('keeps only keep_checkpoint_max iter_* directories, never best_model', async () => {
    const o = await options('run-keep', { keepCheckpointMax: 1, saveInterval: 1, doEval: false });
    (await train(o)).model.dispose();
    const dirs = readdirSync(o.saveDir).filter((n) => n.startsWith('iter_'));
    assert.deepEqual(dirs, ['iter_4']);
    const state = JSON.parse(readFileSync(join(o.saveDir, 'iter_4', 'train_state.json'), 'utf8'));
    assert.deepEqual(state.checkpoints, ['iter_4']);
  });

  it('stops on a non-finite loss, naming the iteration, and leaves the last checkpoint intact', async () => {
    const o = await options('run-nan', { saveInterval: 1, doEval: false }, [
      'iters=30',
      'lr_scheduler.learning_rate=1e30',
      'optimizer.type=Adam',
    ]);
    await assert.rejects(train(o), (error: unknown) => {
      assert.ok(error instanceof NonFiniteLossError);
      assert.match(error.message, /^loss is (NaN|Infinity|-Infinity) at iter (\d+) \(epoch \d+\)/);
      const iter = Number(/at iter (\d+)/.exec(error.message)?.[1]);
      assert.ok(iter >= 2, 'the first step is finite');
      assert.match(error.message, new RegExp(`iter_${iter - 1}\\) is intact`));
      assert.ok(existsSync(join(o.saveDir, `iter_${iter - 1}`, 'model.safetensors')));
      assert.ok(!existsSync(join(o.saveDir, `iter_${iter}`)));
      return true;
    });
  });

  it('tunes the kernel shape classes a step meets once, right after that step', async () => {
    const dev = await device();
    // Notes classes as the real autotuner does, and "tunes" them without timing anything.
    class RecordingTuner extends Autotuner {
      private readonly noted = new Set<string>();
      private readonly tuned = new Set<string>();
      readonly runs: number[] = [];
      constructor() {
        super('trainer test', { enabled: true, cacheFile: null }, () => dev.sync());
      }
      override choose<C>(family: string, shapeClass: () => string, fallback: C): C {
        const id = `${family}|${shapeClass()}`;
        if (!this.tuned.has(id)) this.noted.add(id);
        return fallback;
      }
      override get pending(): number {
        return this.noted.size;
      }
      override async run(): Promise<TuneResult[]> {
        const ids = [...this.noted];
        for (const id of ids) this.tuned.add(id);
        this.noted.clear();
        this.runs.push(ids.length);
        return ids.map((id) => ({ family: id, shapeClass: id, chosen: 'a', fallback: 'a', ms: { a: 1 } }));
      }
    }
    const tuner = new RecordingTuner();
    const saved = dev.tuner;
    dev.tuner = tuner;
    const lines: string[] = [];
    try {
      const o = await options('run-tune', { doEval: false, log: (l) => lines.push(l) }, ['iters=3']);
      (await train(o)).model.dispose();
    } finally {
      dev.tuner = saved;
    }
    assert.equal(tuner.runs.length, 1, `tuned after ${tuner.runs.length} steps`);
    const classes = tuner.runs[0] as number;
    assert.ok(classes > 10, `${classes} conv classes in PP-LiteSeg's step`);
    const tuned = lines.filter((l) => l.startsWith('autotune: '));
    assert.equal(tuned.length, 1, lines.join('\n'));
    assert.match(
      tuned[0] as string,
      new RegExp(`^autotune: ${classes} kernel shape class\\(es\\) tuned in \\d+\\.\\d s$`),
    );
    const firstTrain = lines.findIndex((l) => l.startsWith('[TRAIN] epoch: 1, iter: 1/3'));
    assert.ok(
      lines.indexOf(tuned[0] as string) < firstTrain,
      'tuned after the first step, before its log line',
    );
  });
});
