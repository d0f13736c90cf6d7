import { add, scale, type Tensor } from '@segtrain/tensor';

/** coef·loss; a coef of 1 (every seed config's) returns the loss itself: no dispatch each way. */
const scaledBy = (loss: Tensor, coef: number): Tensor => (coef === 1 ? loss : scale(loss, coef));

import { bceLoss } from './bce.js';
import { crossEntropyLossAsync, ohemCrossEntropyLoss } from './cross_entropy.js';
import { detailAggregateLoss } from './detail.js';
import { diceLoss } from './dice.js';
import { lovaszSoftmaxLoss } from './lovasz.js';

/** A loss on (logits [N, C, H, W], i32 labels [N, H, W]) → scalar; async where it reads back. */
export type LossFn = (logits: Tensor, labels: Tensor) => Tensor | Promise<Tensor>;

/** A loss component config: `{type, ...options}` as in PaddleSeg YAML. */
export interface LossConfig {
  readonly type: string;
  readonly [key: string]: unknown;
}

/**
 * PaddleSeg MixedLoss: returns the list of coef_i·loss_i(logits, labels) (not their sum); the
 * composer (lossFromConfig) adds each term times the outer coef.
 */
export class MixedLoss {
  readonly losses: readonly LossFn[];
  readonly coef: readonly number[];
  constructor(losses: readonly LossFn[], coef: readonly number[]) {
    if (!Array.isArray(losses)) throw new TypeError('`losses` must be a list!');
    if (!Array.isArray(coef)) throw new TypeError('`coef` must be a list!');
    if (losses.length !== coef.length)
      throw new Error(
        `The length of \`losses\` should equal to \`coef\`, but they are ${losses.length} and ${coef.length}.`,
      );
    this.losses = losses;
    this.coef = coef;
  }

  async terms(logits: Tensor, labels: Tensor): Promise<Tensor[]> {
    const out: Tensor[] = [];
    for (let i = 0; i < this.losses.length; i++) {
      const loss = await (this.losses[i] as LossFn)(logits, labels);
      out.push(scaledBy(loss, this.coef[i] ?? 1));
    }
    return out;
  }
}

function opt<T>(config: LossConfig, key: string): T | undefined {
  return config[key] as T | undefined;
}

const KNOWN: Record<string, readonly string[]> = {
  CrossEntropyLoss: ['weight', 'ignore_index', 'top_k_percent_pixels', 'avg_non_ignore', 'data_format'],
  OhemCrossEntropyLoss: ['thresh', 'min_kept', 'ignore_index'],
  DiceLoss: ['weight', 'ignore_index', 'smooth'],
  BCELoss: ['weight', 'pos_weight', 'ignore_index', 'edge_label'],
  LovaszSoftmaxLoss: ['ignore_index', 'classes'],
  DetailAggregateLoss: ['ignore_index'],
  MixedLoss: ['losses', 'coef'],
};

/** Builds one loss component from its config dict (unknown keys are an error, as a Python kwarg would be). */
export function buildLoss(config: LossConfig): LossFn | MixedLoss {
  const type = config.type;
  const known = KNOWN[type];
  if (!known)
    throw new Error(`loss type '${type}' is not supported (known: ${Object.keys(KNOWN).join(', ')})`);
  for (const key of Object.keys(config))
    if (key !== 'type' && !known.includes(key))
      throw new TypeError(`${type}.__init__() got an unexpected keyword argument '${key}'`);
  switch (type) {
    case 'CrossEntropyLoss': {
      const format = opt<string>(config, 'data_format') ?? 'NCHW';
      if (format !== 'NCHW') throw new Error('CrossEntropyLoss: only data_format NCHW is supported');
      const options = {
        weight: opt<number[] | null>(config, 'weight') ?? null,
        ignore_index: opt<number>(config, 'ignore_index') ?? 255,
        top_k_percent_pixels: opt<number>(config, 'top_k_percent_pixels') ?? 1.0,
        avg_non_ignore: opt<boolean>(config, 'avg_non_ignore') ?? true,
      };
      return (logits, labels) => crossEntropyLossAsync(logits, labels, options);
    }
    case 'OhemCrossEntropyLoss': {
      const options = {
        thresh: opt<number>(config, 'thresh') ?? 0.7,
        min_kept: opt<number>(config, 'min_kept') ?? 10000,
        ignore_index: opt<number>(config, 'ignore_index') ?? 255,
      };
      return (logits, labels) => ohemCrossEntropyLoss(logits, labels, options);
    }
    case 'DiceLoss': {
      const options = {
        weight: opt<number[] | null>(config, 'weight') ?? null,
        ignore_index: opt<number>(config, 'ignore_index') ?? 255,
        smooth: opt<number>(config, 'smooth') ?? 1.0,
      };
      return (logits, labels) => diceLoss(logits, labels, options);
    }
    case 'BCELoss': {
      const options = {
        weight: opt<number[] | 'dynamic' | null>(config, 'weight') ?? null,
        pos_weight: opt<number | 'dynamic' | null>(config, 'pos_weight') ?? null,
        ignore_index: opt<number>(config, 'ignore_index') ?? 255,
        edge_label: opt<boolean>(config, 'edge_label') ?? false,
      };
      return (logits, labels) => bceLoss(logits, labels, options);
    }
    case 'LovaszSoftmaxLoss': {
      const options = {
        ignore_index: opt<number>(config, 'ignore_index') ?? 255,
        classes: opt<'present' | 'all' | number[]>(config, 'classes') ?? 'present',
      };
      return (logits, labels) => lovaszSoftmaxLoss(logits, labels, options);
    }
    case 'DetailAggregateLoss': {
      const options = { ignore_index: opt<number>(config, 'ignore_index') ?? 255 };
      return (logits, labels) => detailAggregateLoss(logits, labels, options);
    }
    default: {
      const losses = opt<LossConfig[]>(config, 'losses');
      const coef = opt<number[]>(config, 'coef');
      if (!Array.isArray(losses)) throw new TypeError('`losses` must be a list!');
      const built = losses.map((c) => {
        const b = buildLoss(c);
        if (b instanceof MixedLoss) throw new Error('MixedLoss cannot contain a MixedLoss');
        return b;
      });
      return new MixedLoss(built, coef as number[]);
    }
  }
}

/** The `loss:` block of a PaddleSeg config (after `_base_` merge and replication). */
export interface LossBlock {
  readonly types: readonly LossConfig[];
  readonly coef: readonly number[];
}

export interface LossResult {
  /** Σ_i coef_i·loss_i (a MixedLoss adds each sub-term times its sub-coef and the outer coef). */
  readonly total: Tensor;
  /** One term per component, already multiplied by its coef (a MixedLoss term is its coef-scaled sub-sum). */
  readonly terms: Tensor[];
}

/**
 * Spec a.7: `(logitsList, labels) → {total, terms}` applying coef_i to loss_i on logits_i. Async,
 * because OhemCrossEntropyLoss, CrossEntropyLoss with top_k_percent_pixels < 1 and
 * LovaszSoftmaxLoss read back from the GPU.
 */
export function lossFromConfig(
  block: LossBlock,
): (logitsList: readonly Tensor[], labels: Tensor) => Promise<LossResult> {
  if (block.types.length !== block.coef.length)
    throw new Error(
      `The length of loss.types should equal to loss.coef: ${block.types.length} != ${block.coef.length}.`,
    );
  const losses = block.types.map((c) => buildLoss(c));
  return async (logitsList, labels) => {
    if (logitsList.length !== losses.length)
      throw new Error(
        `The length of logits_list should equal to the types of loss config: ${logitsList.length} != ${losses.length}.`,
      );
    const terms: Tensor[] = [];
    let total: Tensor | null = null;
    for (let i = 0; i < losses.length; i++) {
      const loss = losses[i] as LossFn | MixedLoss;
      const logits = logitsList[i] as Tensor;
      const c = block.coef[i] ?? 1;
      let term: Tensor;
      if (loss instanceof MixedLoss) {
        const subs = await loss.terms(logits, labels);
        let acc: Tensor | null = null;
        for (const s of subs) {
          const scaled = scaledBy(s, c);
          total = total ? add(total, scaled) : scaled;
          acc = acc ? add(acc, scaled) : scaled;
        }
        if (!acc) throw new Error('MixedLoss with no losses');
        term = acc;
      } else {
        term = scaledBy(await loss(logits, labels), c);
        total = total ? add(total, term) : term;
      }
      terms.push(term);
    }
    if (!total) throw new Error('loss config has no types');
    return { total, terms };
  };
}
