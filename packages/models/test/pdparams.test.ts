import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getDevice } from '@segtrain/tensor';
import { afterAll, describe, it } from 'vitest';
import { buildModel, buildModelWithPretrained, type ComponentConfig, loadPretrained } from '../src/index.js';

// Fixtures: tools/fixtures/make-pdparams.sh (Python pickle + numpy, as paddle.save writes).
const FIXTURES = join(import.meta.dirname, 'fixtures/pdparams');
// spec.json: per seed model, its config, resolved model block (no pretrained) and the fixture's keys.
interface Seed {
  readonly config: string;
  readonly block: ComponentConfig;
  readonly entries: Array<[string, number[]]>;
}
const SPEC = JSON.parse(readFileSync(join(FIXTURES, 'spec.json'), 'utf8')) as Record<string, Seed>;
const SEEDS = ['pp_liteseg_t', 'segformer_b0', 'ocrnet_hrnetw18'];
const seed = (name: string) => SPEC[name] as Seed;
const tmp = mkdtempSync(join(tmpdir(), 'segtrain-pdparams-models-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** make-pdparams.py's pdparams_value. */
const valueAt = (key: number, i: number) => (((i * 37 + key * 101) % 251) - 125) / 128;

function modelBlock(name: string, backbonePretrained?: string): ComponentConfig {
  const block = seed(name).block;
  const backbone = block.backbone as ComponentConfig;
  return {
    ...block,
    backbone: backbonePretrained ? { ...backbone, pretrained: backbonePretrained } : backbone,
  };
}

async function expectFixtureValues(
  stateValues: Map<string, { data: Float32Array }>,
  spec: Array<[string, number[]]>,
) {
  spec.forEach(([name], k) => {
    const got = stateValues.get(name)?.data;
    assert.ok(got, `${name} is not in the model`);
    for (let i = 0; i < got.length; i++)
      if (got[i] !== valueAt(k, i))
        assert.fail(`${name}[${i}] = ${got[i]}, the fixture holds ${valueAt(k, i)}`);
  });
}

describe("the seed models' PaddleSeg state-dict layouts load from .pdparams", () => {
  for (const name of SEEDS)
    for (const protocol of [2, 4])
      it(`${name} (${seed(name).config}), pickle protocol ${protocol}`, async () => {
        const spec = seed(name).entries;
        const model = buildModel(await getDevice(), modelBlock(name));
        try {
          const lines: string[] = [];
          const report = await loadPretrained(model, join(FIXTURES, `${name}.p${protocol}.pdparams`), {
            log: (l) => lines.push(l),
          });
          const total = model.stateDict().size;
          assert.equal(report.loaded.length, spec.length);
          assert.equal(
            lines.at(-1),
            `There are ${spec.length}/${total} variables loaded into ${model.constructor.name}.`,
          );
          assert.equal(report.unexpected.length, 0, 'every fixture key is a model key');
          await expectFixtureValues(await model.stateDictValues(), spec);
        } finally {
          model.dispose();
        }
      });
});

describe("PaddleSeg's released backbone archive (PP_STDCNet1.tar.gz: PP_STDCNet1/model.pdparams)", () => {
  const spec = seed('stdc1_backbone').entries;
  const archive = join(FIXTURES, 'PP_STDCNet1.tar.gz');
  const backboneValues = async (model: { namedModules(): Array<[string, unknown]> }) => {
    const backbone = model.namedModules().find(([n]) => n === 'backbone')?.[1] as {
      stateDictValues(): Promise<Map<string, { data: Float32Array }>>;
    };
    return backbone.stateDictValues();
  };

  it('backbone.pretrained: a local .tar.gz loads into the backbone, PaddleSeg-style log', async () => {
    const lines: string[] = [];
    const model = await buildModelWithPretrained(
      await getDevice(),
      modelBlock('pp_liteseg_t', archive),
      (l) => lines.push(l),
    );
    try {
      assert.equal(lines[0], `Loading pretrained model from ${archive}`);
      assert.match(
        lines.at(-1) ?? '',
        new RegExp(`^There are ${spec.length}/\\d+ variables loaded into STDCNet\\.$`),
      );
      assert.ok(
        lines.some((l) => / is not in pretrained model$/.test(l)),
        'missing keys are listed',
      );
      await expectFixtureValues(await backboneValues(model), spec);
    } finally {
      model.dispose();
    }
  });

  it("a URL loads PaddleSeg's download from the cache, nothing downloaded", async () => {
    const cacheDir = join(tmp, 'cache');
    mkdirSync(cacheDir, { recursive: true });
    copyFileSync(archive, join(cacheDir, 'PP_STDCNet1.tar.gz'));
    const model = buildModel(await getDevice(), modelBlock('pp_liteseg_t'));
    try {
      const backbone = model.namedModules().find(([n]) => n === 'backbone')?.[1];
      assert.ok(backbone);
      const report = await loadPretrained(
        backbone,
        'https://bj.bcebos.com/paddleseg/dygraph/PP_STDCNet1.tar.gz',
        {
          cacheDir,
          log: () => {},
        },
      );
      assert.equal(report.status, 'loaded');
      assert.equal(report.file, join(cacheDir, 'PP_STDCNet1.tar.gz'));
      assert.equal(report.loaded.length, spec.length);
    } finally {
      model.dispose();
    }
  });
});
