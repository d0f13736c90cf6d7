import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadConfig, printableConfig } from '@segtrain/config';
import { paddlesegConfig, repoRoot } from '@segtrain/tensor/testing';
import { describe, it } from 'vitest';

const ours = join(repoRoot, 'configs');
const theirs = paddlesegConfig('.');

function modelConfigs(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === '_base_' ? [] : modelConfigs(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

describe("the zoo's configs/ tree", () => {
  const files = modelConfigs(ours);

  it('every model config resolves', () => {
    assert.ok(files.length >= 3);
    for (const file of files) assert.doesNotThrow(() => loadConfig(file), `${relative(repoRoot, file)}`);
  });

  // Our configs are written by us, in PaddleSeg's format; their resolved values must be PaddleSeg's.
  for (const name of [
    'pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml',
    'ocrnet/ocrnet_hrnetw18_cityscapes_1024x512_160k.yml',
    'segformer/segformer_b0_cityscapes_1024x1024_160k.yml',
  ]) {
    it(`${name} resolves to the same values as PaddleSeg's`, () => {
      assert.deepEqual(
        printableConfig(loadConfig(join(ours, name))),
        printableConfig(loadConfig(join(theirs, name))),
      );
    });
  }
});
