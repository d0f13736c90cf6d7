import { z } from 'zod';
import { ConfigError, describeValue } from './errors.js';
import {
  type ConfigNode,
  formatPath,
  type MapNode,
  originAt,
  type PathSegment,
  type PlainMap,
  type PlainValue,
  toPlain,
} from './node.js';
import {
  DATASET_CONSTANTS,
  type DatasetConfig,
  datasetConfig,
  type InnerSchedulerConfig,
  type LossListConfig,
  type LrSchedulerConfig,
  linearWarmupSchema,
  lossListConfig,
  type ModelConfig,
  modelConfig,
  type OptimizerConfig,
  optimizerConfig,
  schedulerSchemas,
  type TestConfig,
  testConfig,
  unionOf,
} from './schemas/index.js';
import { parseBlock } from './validate.js';

/** The validated config, PaddleSeg's keys and values after builder-time normalisation. */
export interface SegConfig {
  batch_size: number;
  iters: number;
  train_dataset: DatasetConfig;
  val_dataset: DatasetConfig | null;
  optimizer: OptimizerConfig;
  lr_scheduler: LrSchedulerConfig;
  loss: LossListConfig;
  distill_loss: LossListConfig | null;
  model: ModelConfig;
  test_config: TestConfig;
  to_static_training: boolean;
  print_mem_info: boolean;
  log_ranks: string;
  /** Top-level keys PaddleSeg keeps in the dict but does not consume (e.g. keys that only hold YAML anchors). */
  extra: PlainMap;
}

export interface ConfigSource {
  /** The config file named by the user (absolute). */
  readonly file: string;
  /** Every file read: the named one, then its `_base_` chain in load order. */
  readonly files: readonly string[];
  /** What normalisation changed, as PaddleSeg logs it. */
  readonly notes: readonly string[];
}

export interface ResolvedConfig extends SegConfig {
  readonly source: ConfigSource;
}

const REQUIRED_KEYS = [
  'batch_size',
  'iters',
  'train_dataset',
  'optimizer',
  'lr_scheduler',
  'loss',
  'model',
] as const;
const KNOWN_TOP_LEVEL = new Set<string>([
  ...REQUIRED_KEYS,
  'val_dataset',
  'test_config',
  'distill_loss',
  'to_static_training',
  'print_mem_info',
  'log_ranks',
]);

function isMap(value: PlainValue | undefined): value is PlainMap {
  return value !== null && value !== undefined && typeof value === 'object' && !Array.isArray(value);
}

/** Builder-time normalisation and the sanity rules of PaddleSeg's config checker, on a mutable plain copy. */
class Normaliser {
  readonly notes: string[] = [];
  constructor(
    private readonly root: MapNode,
    readonly dic: PlainMap,
  ) {}

  fail(
    path: readonly PathSegment[],
    details: { problem?: string; expected?: string; found?: string; hint?: string },
  ): never {
    throw new ConfigError({ origin: originAt(this.root, path), keyPath: formatPath(path), ...details });
  }

  primaryRule(): void {
    for (const key of REQUIRED_KEYS) {
      if (this.dic[key] === undefined || this.dic[key] === null) {
        this.fail([key], {
          problem: `required top-level key '${key}' is missing`,
          hint: `A training config needs ${REQUIRED_KEYS.join(', ')} (directly or through _base_)`,
        });
      }
    }
    for (const key of [
      'train_dataset',
      'optimizer',
      'lr_scheduler',
      'loss',
      'model',
      'val_dataset',
      'test_config',
      'distill_loss',
    ]) {
      const value = this.dic[key];
      if (value !== undefined && value !== null && !isMap(value))
        this.fail([key], { expected: 'a mapping', found: describeValue(value) });
    }
  }

  private datasets(): Array<[string, PlainMap]> {
    return (['train_dataset', 'val_dataset'] as const).flatMap((k) => {
      const d = this.dic[k];
      return isMap(d) ? [[k, d] as [string, PlainMap]] : [];
    });
  }

  private get isGenericDataset(): boolean {
    return isMap(this.dic.train_dataset) && this.dic.train_dataset.type === 'Dataset';
  }

  syncNumClasses(): void {
    if (!this.isGenericDataset) return;
    const model = this.dic.model as PlainMap;
    const val = this.dic.val_dataset;
    if (isMap(val) && val.type !== 'Dataset') {
      this.fail(['val_dataset', 'type'], {
        expected: "'Dataset', the same type as train_dataset",
        found: describeValue(val.type),
      });
    }
    const values = new Map<string, PlainValue>();
    if (model.num_classes !== undefined) values.set('model.num_classes', model.num_classes);
    for (const [name, d] of this.datasets()) {
      if (d.num_classes === undefined)
        this.fail([name], {
          problem: "a 'Dataset' needs num_classes",
          hint: `Add num_classes under ${name}`,
        });
      values.set(`${name}.num_classes`, d.num_classes);
    }
    const distinct = new Set([...values.values()].map((v) => JSON.stringify(v)));
    if (distinct.size > 1) {
      const [firstKey] = [...values.keys()].filter((k) => k !== 'model.num_classes');
      this.fail((firstKey ?? 'model.num_classes').split('.'), {
        problem: `num_classes is not consistent: ${[...values].map(([k, v]) => `${k}=${String(v)}`).join(', ')}`,
        hint: 'Set the same num_classes in model, train_dataset and val_dataset',
      });
    }
    if (model.num_classes === undefined) {
      model.num_classes = (this.dic.train_dataset as PlainMap).num_classes ?? null;
      this.notes.push(
        `num_classes is not set in model; copied ${String(model.num_classes)} from train_dataset.`,
      );
    }
  }

  syncImgChannels(): void {
    if (!this.isGenericDataset) return;
    const model = this.dic.model as PlainMap;
    const holder = isMap(model.backbone) ? model.backbone : model;
    const holderPath = holder === model ? ['model'] : ['model', 'backbone'];
    const values = new Map<string, PlainValue>();
    if (holder.in_channels !== undefined)
      values.set(`${holderPath.join('.')}.in_channels`, holder.in_channels);
    for (const [name, d] of this.datasets()) values.set(`${name}.img_channels`, d.img_channels ?? 3);
    const distinct = new Set([...values.values()].map((v) => JSON.stringify(v)));
    if (distinct.size > 1) {
      this.fail([...holderPath, 'in_channels'], {
        problem: `image channels are not consistent: ${[...values].map(([k, v]) => `${k}=${String(v)}`).join(', ')}`,
        hint: 'Make in_channels of the backbone equal to img_channels of the datasets',
      });
    }
    if (holder.in_channels === undefined) {
      const train = this.dic.train_dataset as PlainMap;
      holder.in_channels = train.img_channels ?? 3;
    }
  }

  lossRule(name: 'loss' | 'distill_loss'): void {
    const loss = this.dic[name];
    if (!isMap(loss)) return;
    for (const key of ['types', 'coef'] as const) {
      if (loss[key] === undefined)
        this.fail([name], {
          problem: `the loss block needs '${key}'`,
          hint: 'Write loss: {types: [...], coef: [...]}',
        });
      if (!Array.isArray(loss[key]))
        this.fail([name, key], { expected: 'a list', found: describeValue(loss[key]) });
    }
    const types = loss.types as PlainValue[];
    const coef = loss.coef as PlainValue[];
    if (types.length !== coef.length) {
      if (types.length === 1) {
        loss.types = coef.map(() => structuredClone(types[0]) as PlainValue);
        this.notes.push(
          `${name}.types has one loss and coef has ${coef.length} values: the loss is repeated ${coef.length} times.`,
        );
      } else {
        this.fail([name, 'coef'], {
          problem: `types has ${types.length} losses but coef has ${coef.length} values`,
          hint: 'Give one coef per loss type (or a single loss type to repeat)',
        });
      }
    }
  }

  private lossesOf(name: 'loss' | 'distill_loss'): Array<[PathSegment[], PlainMap]> {
    const loss = this.dic[name];
    if (!isMap(loss) || !Array.isArray(loss.types)) return [];
    const out: Array<[PathSegment[], PlainMap]> = [];
    loss.types.forEach((item, i) => {
      if (!isMap(item)) return;
      if (item.type === 'MixedLoss' && Array.isArray(item.losses)) {
        item.losses.forEach((sub, j) => {
          if (isMap(sub)) out.push([[name, 'types', i, 'losses', j], sub]);
        });
      } else out.push([[name, 'types', i], item]);
    });
    return out;
  }

  /** Every loss gets the dataset's ignore_index when it has none, and must agree when it has one. */
  private syncIgnoreIndex(name: 'loss' | 'distill_loss', ignoreIndex: number, from: string): void {
    for (const [path, item] of this.lossesOf(name)) {
      if (item.ignore_index === undefined) {
        item.ignore_index = ignoreIndex;
      } else if (item.ignore_index !== ignoreIndex) {
        this.fail([...path, 'ignore_index'], {
          problem: `ignore_index differs from the dataset's (${ignoreIndex}, from ${from})`,
          expected: String(ignoreIndex),
          found: describeValue(item.ignore_index),
        });
      }
    }
  }

  syncIgnoreIndexForDataset(name: 'loss' | 'distill_loss'): void {
    if (!this.isGenericDataset) return;
    const values = this.datasets().map(([k, d]) => [k, d.ignore_index ?? 255] as const);
    const [first] = values;
    if (!first) return;
    for (const [k, v] of values) {
      if (v !== first[1]) {
        this.fail([k, 'ignore_index'], {
          problem: `ignore_index differs between datasets (${first[0]}: ${String(first[1])})`,
          found: describeValue(v),
        });
      }
    }
    this.syncIgnoreIndex(name, Number(first[1]), `${first[0]}.ignore_index`);
  }

  /** SegBuilder's checks for named dataset classes (Cityscapes, ...): class constants fill the model and losses. */
  builderDatasetConstants(): void {
    const train = this.dic.train_dataset as PlainMap;
    if (this.isGenericDataset || typeof train.type !== 'string') return;
    const constants = DATASET_CONSTANTS[train.type];
    if (!constants) return;
    const model = this.dic.model as PlainMap;
    if (model.num_classes === undefined) {
      model.num_classes = constants.numClasses;
      this.notes.push(
        `num_classes is not set in model; using NUM_CLASSES (${constants.numClasses}) of ${train.type}.`,
      );
    } else if (model.num_classes !== constants.numClasses) {
      this.fail(['model', 'num_classes'], {
        problem: `model.num_classes must match ${train.type}'s NUM_CLASSES`,
        expected: String(constants.numClasses),
        found: describeValue(model.num_classes),
      });
    }
    for (const name of ['loss', 'distill_loss'] as const) {
      const missing = this.lossesOf(name).filter(([, item]) => item.ignore_index === undefined).length;
      this.syncIgnoreIndex(name, constants.ignoreIndex, `${train.type}.IGNORE_INDEX`);
      if (missing)
        this.notes.push(
          `ignore_index is not set in ${missing} ${name} entr${missing === 1 ? 'y' : 'ies'}; using IGNORE_INDEX (${constants.ignoreIndex}) of ${train.type}.`,
        );
    }
  }

  optimizerAliases(): void {
    const optimizer = this.dic.optimizer as PlainMap;
    const aliases: Record<string, string> = { sgd: 'SGD', adam: 'Adam' };
    if (typeof optimizer.type === 'string' && aliases[optimizer.type])
      optimizer.type = aliases[optimizer.type] ?? optimizer.type;
    if (optimizer.type === 'SGD' && optimizer.momentum !== undefined) {
      optimizer.type = 'Momentum';
      this.notes.push(
        'If the type is SGD and momentum in optimizer config, the type is changed to Momentum.',
      );
    }
  }
}

const innerSchedulerConfig = unionOf(schedulerSchemas);

function resolveScheduler(n: Normaliser, root: MapNode, iters: number): LrSchedulerConfig {
  const raw = { ...(n.dic.lr_scheduler as PlainMap) };
  const hasIters = raw.warmup_iters !== undefined;
  const hasStart = raw.warmup_start_lr !== undefined;
  if (hasIters !== hasStart) {
    n.fail(['lr_scheduler', hasIters ? 'warmup_iters' : 'warmup_start_lr'], {
      problem: 'warmup_iters and warmup_start_lr must be set together',
      hint: `Add lr_scheduler.${hasIters ? 'warmup_start_lr' : 'warmup_iters'} or remove both`,
    });
  }
  let warmup: { iters: number; startLr: number } | undefined;
  if (hasIters) {
    const iterCheck = z.int().min(1).safeParse(raw.warmup_iters);
    if (!iterCheck.success)
      n.fail(['lr_scheduler', 'warmup_iters'], {
        expected: 'an int >= 1',
        found: describeValue(raw.warmup_iters),
      });
    const startCheck = z.number().min(0).safeParse(raw.warmup_start_lr);
    if (!startCheck.success)
      n.fail(['lr_scheduler', 'warmup_start_lr'], {
        expected: 'a number >= 0',
        found: describeValue(raw.warmup_start_lr),
      });
    warmup = { iters: iterCheck.data, startLr: startCheck.data };
    delete raw.warmup_iters;
    delete raw.warmup_start_lr;
  }
  if (raw.type === 'PolynomialDecay' && raw.decay_steps === undefined)
    raw.decay_steps = Math.max(iters - (warmup?.iters ?? 0), 1);
  const inner: InnerSchedulerConfig = parseBlock(innerSchedulerConfig, raw, ['lr_scheduler'], root);
  if (!warmup) return inner;
  const peak = 'learning_rate' in inner ? inner.learning_rate : (inner.values[0] ?? 0);
  return linearWarmupSchema.parse({
    type: 'LinearWarmup',
    learning_rate: inner,
    warmup_steps: warmup.iters,
    start_lr: warmup.startLr,
    end_lr: peak,
  });
}

/** Normalises and validates a merged config tree into the typed config. */
export function resolveTree(root: MapNode, file: string, files: readonly string[]): ResolvedConfig {
  const dic = toPlain(root) as PlainMap;
  const n = new Normaliser(root, dic);
  n.primaryRule();
  n.syncNumClasses();
  n.syncImgChannels();
  n.lossRule('loss');
  n.syncIgnoreIndexForDataset('loss');
  n.lossRule('distill_loss');
  n.syncIgnoreIndexForDataset('distill_loss');
  n.builderDatasetConstants();
  n.optimizerAliases();

  const node: ConfigNode = root;
  const batchSize = parseBlock(z.int().min(1), dic.batch_size, ['batch_size'], node);
  const iters = parseBlock(z.int().min(1), dic.iters, ['iters'], node);
  const extra: PlainMap = {};
  for (const [key, value] of Object.entries(dic)) if (!KNOWN_TOP_LEVEL.has(key)) extra[key] = value;
  const config: SegConfig = {
    batch_size: batchSize,
    iters,
    train_dataset: parseBlock(datasetConfig, dic.train_dataset, ['train_dataset'], node),
    val_dataset:
      dic.val_dataset == null ? null : parseBlock(datasetConfig, dic.val_dataset, ['val_dataset'], node),
    optimizer: parseBlock(optimizerConfig, dic.optimizer, ['optimizer'], node),
    lr_scheduler: resolveScheduler(n, root, iters),
    loss: parseBlock(lossListConfig, dic.loss, ['loss'], node),
    distill_loss:
      dic.distill_loss == null ? null : parseBlock(lossListConfig, dic.distill_loss, ['distill_loss'], node),
    model: parseBlock(modelConfig, dic.model, ['model'], node),
    test_config: parseBlock(testConfig, dic.test_config ?? {}, ['test_config'], node),
    to_static_training: parseBlock(
      z.boolean().default(false),
      dic.to_static_training ?? undefined,
      ['to_static_training'],
      node,
    ),
    print_mem_info: parseBlock(
      z.boolean().default(true),
      dic.print_mem_info ?? undefined,
      ['print_mem_info'],
      node,
    ),
    log_ranks: parseBlock(
      z.union([z.string(), z.int()]).default('0'),
      dic.log_ranks ?? undefined,
      ['log_ranks'],
      node,
    ).toString(),
    extra,
  };
  if (config.model.num_classes === undefined) {
    n.fail(['model'], {
      problem: 'num_classes is not set in model and the dataset type does not define it',
      hint: 'Add model.num_classes',
    });
  }
  return { ...config, source: { file, files, notes: n.notes } };
}
