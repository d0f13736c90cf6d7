/**
 * PaddleSeg's optimizers (spec a.6, d.4) on the fused in-place kernels of @segtrain/tensor:
 * SGD (p ← p − lr·(g + wd·p)), Momentum (L2 on every parameter, BN and biases included), Adam (L2
 * joined to the gradient) and AdamW (decoupled decay), with PaddleSeg's `custom_cfg` parameter
 * groups and Paddle's gradient clipping. Options use PaddleSeg's snake_case names, so a resolved
 * `optimizer` config block can be passed in as it is.
 */
import {
  adamUpdates,
  add,
  clamp,
  div,
  full,
  momentumUpdates,
  mul,
  noGrad,
  persistent,
  sqrt,
  sum,
  type Tensor,
} from '@segtrain/tensor';
import type { HostTensor } from './module.js';

export type GradClipConfig =
  | { readonly name: 'ClipGradByGlobalNorm'; readonly clip_norm: number }
  | { readonly name: 'ClipGradByNorm'; readonly clip_norm: number }
  | { readonly name: 'ClipGradByValue'; readonly max: number; readonly min?: number | null };

/** One PaddleSeg `custom_cfg` entry: parameters whose structured name contains `name`. */
export interface ParamGroupConfig {
  readonly name: string;
  readonly lr_mult?: number | null;
  readonly weight_decay_mult?: number | null;
}

export type OptimizerType = 'SGD' | 'sgd' | 'Momentum' | 'Adam' | 'adam' | 'AdamW';

/** A resolved PaddleSeg `optimizer` block. */
export interface OptimizerConfig {
  readonly type: OptimizerType;
  /** SGD/Momentum/Adam: L2 added to the gradient; AdamW: the decoupled coefficient (default 0.01). */
  readonly weight_decay?: number | null;
  /** Momentum's μ (default 0.9). With type SGD, a `momentum` key turns it into Momentum as PaddleSeg does. */
  readonly momentum?: number | null;
  readonly use_nesterov?: boolean | null;
  readonly beta1?: number | null;
  readonly beta2?: number | null;
  readonly epsilon?: number | null;
  readonly grad_clip_cfg?: GradClipConfig | null;
  readonly custom_cfg?: readonly ParamGroupConfig[] | null;
}

/** A parameter group as resolved: its members, LR multiplier and weight decay. */
export interface ParamGroup {
  /** The custom_cfg `name` it came from; null for the default (unmatched) group. */
  readonly pattern: string | null;
  readonly lrMult: number;
  readonly weightDecay: number;
  readonly params: ReadonlyArray<readonly [string, Tensor]>;
}

interface Slot {
  readonly name: string;
  readonly param: Tensor;
  readonly velocity: Tensor | null;
  readonly moment1: Tensor | null;
  readonly moment2: Tensor | null;
  /** Adam's per-parameter step count (Paddle's beta-pow accumulators advance only on update). */
  t: number;
}

function opt<T>(value: T | null | undefined, fallback: T): T {
  return value === null || value === undefined ? fallback : value;
}

/** Largest finite f32, the upper bound for `max(norm, clip)` via clamp. */
const F32_MAX = 3.4028234663852886e38;

export class Optimizer {
  /** The Paddle optimizer actually run (after PaddleSeg's aliases). */
  readonly type: 'SGD' | 'Momentum' | 'Adam' | 'AdamW';
  readonly weightDecay: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly gradClip: GradClipConfig | null;
  readonly groups: readonly ParamGroup[];
  /** Whether the config defined groups: Paddle then clips each group separately (global norm per group). */
  readonly grouped: boolean;
  private readonly slots = new Map<Tensor, Slot>();
  /** Shared scratch velocity for SGD (momentum 0 never reads it back). */
  private scratch: Tensor | null = null;
  private steps = 0;

  constructor(namedParams: ReadonlyArray<readonly [string, Tensor]>, config: OptimizerConfig) {
    let type: string = config.type;
    if (type === 'sgd') type = 'SGD';
    if (type === 'adam') type = 'Adam';
    if (type === 'SGD' && config.momentum !== undefined && config.momentum !== null) type = 'Momentum';
    if (type !== 'SGD' && type !== 'Momentum' && type !== 'Adam' && type !== 'AdamW')
      throw new Error(
        `createOptimizer: unsupported optimizer type '${config.type}' (SGD, Momentum, Adam, AdamW)`,
      );
    this.type = type;
    this.weightDecay = opt(config.weight_decay, type === 'AdamW' ? 0.01 : 0);
    this.momentum = type === 'Momentum' ? opt(config.momentum, 0.9) : 0;
    this.nesterov = type === 'Momentum' && opt(config.use_nesterov, false);
    this.beta1 = opt(config.beta1, 0.9);
    this.beta2 = opt(config.beta2, 0.999);
    this.epsilon = opt(config.epsilon, 1e-8);
    this.gradClip = config.grad_clip_cfg ?? null;
    if (this.gradClip) {
      const c = this.gradClip;
      if (c.name === 'ClipGradByGlobalNorm' || c.name === 'ClipGradByNorm') {
        if (!(typeof c.clip_norm === 'number' && c.clip_norm > 0))
          throw new Error(`createOptimizer: ${c.name} needs clip_norm > 0, got ${c.clip_norm}`);
      } else if (c.name === 'ClipGradByValue') {
        if (typeof c.max !== 'number') throw new Error('createOptimizer: ClipGradByValue needs max');
        if (opt(c.min, -c.max) > c.max)
          throw new Error(`createOptimizer: ClipGradByValue min ${c.min} exceeds max ${c.max}`);
      } else {
        throw new Error(
          `createOptimizer: unknown grad_clip_cfg name '${(c as { name: unknown }).name}' (ClipGradByGlobalNorm, ClipGradByNorm, ClipGradByValue)`,
        );
      }
    }

    const trainable = namedParams.filter(([, t]) => t.requiresGrad);
    const custom = config.custom_cfg ?? [];
    this.grouped = custom.length > 0;
    const members: Array<Array<readonly [string, Tensor]>> = custom.map(() => []);
    const rest: Array<readonly [string, Tensor]> = [];
    for (const entry of trainable) {
      const idx = custom.findIndex((g) => entry[0].includes(g.name));
      if (idx >= 0) members[idx]?.push(entry);
      else rest.push(entry);
    }
    this.groups = [
      ...custom.map((g, i) => ({
        pattern: g.name,
        lrMult: opt(g.lr_mult, 1),
        weightDecay:
          g.weight_decay_mult === null || g.weight_decay_mult === undefined
            ? this.weightDecay
            : this.weightDecay * g.weight_decay_mult,
        params: members[i] ?? [],
      })),
      { pattern: null, lrMult: 1, weightDecay: this.weightDecay, params: rest },
    ];

    const adam = type === 'Adam' || type === 'AdamW';
    for (const [name, p] of trainable) {
      const zeros = () => persistent(p.device, new Float32Array(p.size), p.shape, `${name}.state`);
      this.slots.set(p, {
        name,
        param: p,
        velocity: type === 'Momentum' ? zeros() : null,
        moment1: adam ? zeros() : null,
        moment2: adam ? zeros() : null,
        t: 0,
      });
    }
    if (type === 'SGD' && trainable.length > 0) {
      const first = trainable[0]?.[1] as Tensor;
      const n = Math.max(...trainable.map(([, t]) => t.size));
      this.scratch = persistent(first.device, new Float32Array(n), [n], 'sgd.scratch');
    }
  }

  /** Number of `step()` calls so far (restored by loadStateValues). */
  get stepCount(): number {
    return this.steps;
  }

  /** Clipped copies of the gradients of one clip scope (or the gradients themselves). Inside noGrad. */
  private clip(grads: Tensor[]): Tensor[] {
    const c = this.gradClip;
    if (!c || grads.length === 0) return grads;
    const first = grads[0] as Tensor;
    if (c.name === 'ClipGradByValue') return grads.map((g) => clamp(g, opt(c.min, -c.max), c.max));
    const scaleBy = (sumSquares: Tensor): Tensor => {
      // Paddle: scale = clip_norm / max(norm, clip_norm), all on the GPU.
      const norm = sqrt(sumSquares);
      const denom = clamp(norm, c.clip_norm, F32_MAX);
      const clipT = full(first.device, [1], c.clip_norm);
      const scale = div(clipT, denom);
      for (const t of [norm, denom, clipT]) t.dispose();
      return scale;
    };
    const squares = (g: Tensor): Tensor => {
      const sq = mul(g, g);
      const s = sum(sq);
      sq.dispose();
      return s;
    };
    if (c.name === 'ClipGradByNorm') {
      return grads.map((g) => {
        const s = squares(g);
        const scale = scaleBy(s);
        const out = mul(g, scale);
        s.dispose();
        scale.dispose();
        return out;
      });
    }
    let total = squares(first);
    for (const g of grads.slice(1)) {
      const s = squares(g);
      const next = add(total, s);
      total.dispose();
      s.dispose();
      total = next;
    }
    const scale = scaleBy(total);
    total.dispose();
    const out = grads.map((g) => mul(g, scale));
    scale.dispose();
    return out;
  }

  /** One update of every trainable parameter that has a gradient, at learning rate `lr`. */
  step(lr: number): void {
    this.steps++;
    noGrad(() => {
      // Without custom_cfg Paddle clips all gradients together; with groups, each group on its own.
      const scopes = this.grouped ? this.groups.map((g) => [g]) : [this.groups];
      for (const scope of scopes) {
        const work: Array<{ slot: Slot; group: ParamGroup; grad: Tensor }> = [];
        for (const group of scope)
          for (const [, p] of group.params) {
            const slot = this.slots.get(p);
            if (slot && p.grad) work.push({ slot, group, grad: p.grad });
          }
        const grads = this.clip(work.map((w) => w.grad));
        // One fused update per group of parameters sharing their options (and Adam's step count),
        // a few parameters per dispatch.
        const adam = this.type === 'Adam' || this.type === 'AdamW';
        const batches = new Map<
          string,
          { group: ParamGroup; t: number; entries: Array<{ slot: Slot; grad: Tensor }> }
        >();
        work.forEach(({ slot, group }, i) => {
          if (adam) slot.t++;
          const key = `${this.groups.indexOf(group)}/${slot.t}`;
          const batch = batches.get(key) ?? { group, t: slot.t, entries: [] };
          batch.entries.push({ slot, grad: grads[i] as Tensor });
          batches.set(key, batch);
        });
        for (const { group, t, entries } of batches.values()) {
          const plr = lr * group.lrMult;
          const device = (entries[0] as (typeof entries)[number]).slot.param.device;
          if (!adam) {
            const targets = entries.map(({ slot, grad }) => ({
              param: slot.param,
              grad,
              velocity: slot.velocity ?? (this.scratch as Tensor),
            }));
            momentumUpdates(device, targets, {
              lr: plr,
              momentum: this.momentum,
              weightDecay: group.weightDecay,
              nesterov: this.nesterov,
            });
          } else {
            const targets = entries.map(({ slot, grad }) => ({
              param: slot.param,
              grad,
              moment1: slot.moment1 as Tensor,
              moment2: slot.moment2 as Tensor,
            }));
            adamUpdates(device, targets, plr, t, {
              beta1: this.beta1,
              beta2: this.beta2,
              epsilon: this.epsilon,
              weightDecay: group.weightDecay,
              decoupled: this.type === 'AdamW',
            });
          }
        }
        grads.forEach((g, i) => {
          if (g !== work[i]?.grad) g.dispose();
        });
      }
    });
  }

  /** Disposes the gradients of the optimised parameters (Paddle's clear_grad). */
  zeroGrad(): void {
    for (const slot of this.slots.values()) {
      slot.param.grad?.dispose();
      slot.param.grad = null;
    }
  }

  private stateTensors(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const s of this.slots.values()) {
      if (s.velocity) out.push([`${s.name}.velocity`, s.velocity]);
      if (s.moment1) out.push([`${s.name}.moment1`, s.moment1]);
      if (s.moment2) out.push([`${s.name}.moment2`, s.moment2]);
    }
    return out;
  }

  /**
   * The optimizer state on the host: `<param>.velocity` (Momentum), `<param>.moment1`/`.moment2`
   * and `<param>.step` (Adam/AdamW), and `@step` (number of step() calls).
   */
  async stateValues(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [key, t] of this.stateTensors())
      out.set(key, { shape: [...t.shape], data: (await t.data()) as Float32Array });
    if (this.type === 'Adam' || this.type === 'AdamW')
      for (const s of this.slots.values())
        out.set(`${s.name}.step`, { shape: [1], data: Float32Array.of(s.t) });
    out.set('@step', { shape: [1], data: Float32Array.of(this.steps) });
    return out;
  }

  /**
   * Restores `stateValues()` output. A wrong shape is an error naming the key; with `strict`
   * (default) missing or unexpected keys are errors too.
   */
  loadStateValues(values: ReadonlyMap<string, HostTensor>, options: { strict?: boolean } = {}): void {
    const strict = options.strict ?? true;
    const expected = new Map<string, readonly number[]>();
    for (const [key, t] of this.stateTensors()) expected.set(key, t.shape);
    const adam = this.type === 'Adam' || this.type === 'AdamW';
    if (adam) for (const s of this.slots.values()) expected.set(`${s.name}.step`, [1]);
    expected.set('@step', [1]);
    const missing = [...expected.keys()].filter((k) => !values.has(k));
    const unexpected = [...values.keys()].filter((k) => !expected.has(k));
    if (strict && (missing.length || unexpected.length))
      throw new Error(
        `loadStateValues: ${missing.length} missing key(s) [${missing.slice(0, 5).join(', ')}] and ${unexpected.length} unexpected key(s) [${unexpected.slice(0, 5).join(', ')}]`,
      );
    for (const [key, shape] of expected) {
      const v = values.get(key);
      if (!v) continue;
      if (
        v.shape.length !== shape.length ||
        v.shape.some((d, i) => d !== shape[i]) ||
        v.data.length !== v.shape.reduce((a, b) => a * b, 1)
      )
        throw new Error(
          `loadStateValues: '${key}' has shape [${v.shape.join(', ')}] (${v.data.length} values) but the optimizer needs [${shape.join(', ')}]`,
        );
    }
    for (const [key, t] of this.stateTensors()) {
      const v = values.get(key);
      if (v) t.device.write(t.buffer, v.data);
    }
    if (adam)
      for (const s of this.slots.values()) {
        const v = values.get(`${s.name}.step`);
        if (v) s.t = v.data[0] ?? 0;
      }
    const step = values.get('@step');
    if (step) this.steps = step.data[0] ?? 0;
  }

  /** Frees the optimizer state (not the parameters or their gradients). */
  dispose(): void {
    for (const [, t] of this.stateTensors()) t.dispose();
    this.scratch?.dispose();
    this.scratch = null;
  }
}

/** Builds an optimizer over `namedParams` (e.g. `module.namedParameters()`); only trainable ones are updated. */
export function createOptimizer(
  namedParams: ReadonlyArray<readonly [string, Tensor]>,
  config: OptimizerConfig,
): Optimizer {
  return new Optimizer(namedParams, config);
}
