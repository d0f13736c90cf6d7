import { type Device, parameter, persistent, type Tensor } from '@segtrain/tensor';
import { currentRng, type Initializer, type Rng } from './init.js';

/** Host-side values of one state-dict entry (float32, Paddle's layouts). */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface LoadReport {
  readonly loaded: string[];
  readonly missing: string[];
  readonly unexpected: string[];
}

/**
 * A tree of named parameters, buffers and child modules. Names join attribute paths with `.`, as
 * Paddle's state dicts do (`backbone.features.0.conv.weight`), so a PaddleSeg state dict maps key
 * for key.
 */
/** A state dict that does not fit the module (a shape mismatch, or missing/unexpected keys when strict). */
export class StateDictError extends Error {}

export class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  constructor(readonly device: Device) {}

  /** Registers a trainable parameter initialised by `init` (seeded by `rng`). */
  protected addParameter(
    name: string,
    shape: readonly number[],
    init: Initializer,
    rng: Rng = currentRng(),
  ): Tensor {
    const t = parameter(this.device, init(shape, rng), shape, name);
    this.params.set(name, t);
    return t;
  }

  /** A parameter saved in the state dict but not trained (Paddle stop_gradient, e.g. UAFM's `_scale`). */
  protected addFrozenParameter(
    name: string,
    shape: readonly number[],
    init: Initializer,
    rng: Rng = currentRng(),
  ): Tensor {
    const t = persistent(this.device, init(shape, rng), shape, name);
    this.params.set(name, t);
    return t;
  }

  /** Registers persistent non-parameter state (BN running statistics). */
  protected addBuffer(name: string, shape: readonly number[], init: Initializer): Tensor {
    const t = persistent(this.device, init(shape, currentRng()), shape, name);
    this.buffers.set(name, t);
    return t;
  }

  protected addModule<M extends Module>(name: string, module: M): M {
    this.children.set(name, module);
    return module;
  }

  /** Parameters in registration order, depth first, with their state-dict names. */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [name, t] of this.params) out.push([prefix + name, t]);
    for (const [name, child] of this.children) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  namedBuffers(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [name, t] of this.buffers) out.push([prefix + name, t]);
    for (const [name, child] of this.children) out.push(...child.namedBuffers(`${prefix}${name}.`));
    return out;
  }

  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix.replace(/\.$/, ''), this]];
    for (const [name, child] of this.children) out.push(...child.namedModules(`${prefix}${name}.`));
    return out;
  }

  /** Trainable parameters (requiresGrad). */
  parameters(): Tensor[] {
    return this.namedParameters()
      .map(([, t]) => t)
      .filter((t) => t.requiresGrad);
  }

  /** Number of trainable values (BN statistics and frozen parameters excluded). */
  parameterCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Every parameter and buffer by state-dict name, in Paddle's order (a module's own entries first). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const visit = (m: Module, prefix: string) => {
      for (const [name, t] of m.params) out.set(prefix + name, t);
      for (const [name, t] of m.buffers) out.set(prefix + name, t);
      for (const [name, child] of m.children) visit(child, `${prefix}${name}.`);
    };
    visit(this, '');
    return out;
  }

  /** Reads the state dict back to the host. */
  async stateDictValues(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [name, t] of this.stateDict())
      out.set(name, { shape: [...t.shape], data: (await t.data()) as Float32Array });
    return out;
  }

  /**
   * Loads values by name. A shape mismatch is an error naming the key; with `strict`, missing or
   * unexpected keys are errors too, else they are reported.
   */
  loadStateDict(values: ReadonlyMap<string, HostTensor>, options: { strict?: boolean } = {}): LoadReport {
    const own = this.stateDict();
    const loaded: string[] = [];
    const missing: string[] = [];
    for (const [name, t] of own) {
      const v = values.get(name);
      if (!v) {
        missing.push(name);
        continue;
      }
      if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
        throw new StateDictError(
          `loadStateDict: '${name}' has shape [${v.shape.join(', ')}] in the state dict but [${t.shape.join(', ')}] in the model`,
        );
      }
      this.device.write(t.buffer, v.data);
      loaded.push(name);
    }
    const unexpected = [...values.keys()].filter((k) => !own.has(k));
    if (options.strict && (missing.length || unexpected.length)) {
      throw new StateDictError(
        `loadStateDict: ${missing.length} missing key(s)${missing.length ? ` (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''})` : ''}` +
          ` and ${unexpected.length} unexpected key(s)${unexpected.length ? ` (${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', ...' : ''})` : ''}`,
      );
    }
    return { loaded, missing, unexpected };
  }

  /** Frees every parameter and buffer of the tree. */
  dispose(): void {
    for (const [, t] of this.stateDict()) t.dispose();
  }
}

/** A module with one tensor in and one out. */
export abstract class Layer extends Module {
  abstract forward(x: Tensor): Tensor;
}

/** Children named 0, 1, ... (Paddle's LayerList / Sequential naming). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[];
  constructor(device: Device, items: readonly M[]) {
    super(device);
    this.items = items.map((m, i) => this.addModule(String(i), m));
  }
}

export class Sequential extends Layer {
  readonly layers: Layer[];
  constructor(device: Device, layers: readonly Layer[]) {
    super(device);
    this.layers = layers.map((m, i) => this.addModule(String(i), m));
  }

  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, layer) => layer.forward(h), x);
  }
}
