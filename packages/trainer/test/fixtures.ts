import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type ResolvedConfig } from '@segtrain/config';
import { generateDemoDataset } from '@segtrain/data';
import { DEMO_CONFIG } from '@segtrain/tensor/testing';

export interface TinyRun {
  readonly dir: string;
  readonly data: string;
  readonly configPath: string;
}

let shared: Promise<TinyRun> | undefined;

/**
 * A tiny demo dataset (8 train + 2 val street scenes at 32×64) and a config inheriting the demo
 * config with 32×64 crops and batch 2: a few training iterations take seconds on lavapipe.
 */
export function tinyRun(): Promise<TinyRun> {
  shared ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segtrain-trainer-'));
    const data = join(dir, 'demo');
    await generateDemoDataset({ root: data, trainCount: 8, valCount: 2, width: 64, height: 32, seed: 3 });
    const configPath = join(dir, 'tiny.yml');
    writeFileSync(
      configPath,
      [
        `_base_: ${JSON.stringify(DEMO_CONFIG)}`,
        'batch_size: 2',
        'iters: 4',
        'train_dataset:',
        `  dataset_root: ${JSON.stringify(data)}`,
        '  transforms:',
        '    - { type: RandomPaddingCrop, crop_size: [64, 32] }',
        '    - { type: RandomHorizontalFlip }',
        '    - { type: Normalize }',
        'val_dataset:',
        `  dataset_root: ${JSON.stringify(data)}`,
        'lr_scheduler:',
        '  learning_rate: 0.002',
        'loss:',
        '  types:',
        '    - { type: CrossEntropyLoss }',
        '    - { type: CrossEntropyLoss }',
        '    - { type: CrossEntropyLoss }',
        '  coef: [1, 1, 1]',
        '',
      ].join('\n'),
    );
    return { dir, data, configPath };
  })();
  return shared;
}

export function tinyConfig(run: TinyRun, opts: string[] = []): ResolvedConfig {
  return loadConfig(run.configPath, { opts });
}
