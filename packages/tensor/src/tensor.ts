import type { Device } from './device/device.js';

export type DType = 'f32' | 'i32';
export type Shape = readonly number[];

/** An autograd node: how to turn the output's gradient into the inputs' gradients. */
export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Longest path from a leaf; backward runs deepest first. */
  readonly depth: number;
  /** Returns one gradient per input (null where the input needs none). */
  backward(gradOutput: Tensor): Array<Tensor | null>;
  /** Tensors this node keeps for its backward (released after it ran). */
  readonly saved: readonly Tensor[];
}

export function shapeSize(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

interface Scope {
  readonly tensors: Set<Tensor>;
}
const scopes: Scope[] = [];
let liveTensors = 0;

/**
 * A tensor on the GPU, row-major (NCHW for images). Memory is explicit: `dispose()`, or a `tidy`
 * scope that disposes what it created. Parameters live outside the churn pool (`kind: 'param'`).
 */
export class Tensor {
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: GradNode | null = null;
  /** Set by `retain()`: backward() will not release this intermediate after its last use. */
  retained = false;
  private gradHooks: Array<(grad: Tensor) => void> = [];
  private disposedBy: string | null = null;

  constructor(
    readonly device: Device,
    readonly shape: Shape,
    readonly dtype: DType,
    private buffer_: GPUBuffer,
    readonly kind: 'activation' | 'param',
  ) {
    this.size = shapeSize(shape);
    liveTensors++;
    if (kind === 'activation') scopes.at(-1)?.tensors.add(this);
  }

  get bytes(): number {
    return this.size * 4;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  get isDisposed(): boolean {
    return this.disposedBy !== null;
  }

  /** The GPU buffer; throws a clear error on use after free. */
  get buffer(): GPUBuffer {
    if (this.disposedBy !== null) {
      throw new Error(
        `tensor ${formatShape(this.shape)} was ${this.disposedBy}` +
          (this.disposedBy.includes('backward') ? '; call retain() on it before backward() to keep it' : ''),
      );
    }
    return this.buffer_;
  }

  /** Called with this leaf's gradient once it is final (all contributions accumulated). */
  onGradFinal(hook: (grad: Tensor) => void): void {
    this.gradHooks.push(hook);
  }

  /** @internal */
  fireGradHooks(grad: Tensor): void {
    for (const hook of this.gradHooks) hook(grad);
  }

  retain(): this {
    this.retained = true;
    return this;
  }

  /** Keeps the tensor alive past the enclosing tidy scope. */
  keep(): this {
    for (const scope of scopes) scope.tensors.delete(this);
    return this;
  }

  dispose(reason = 'disposed'): void {
    if (this.disposedBy !== null) return;
    this.disposedBy = reason;
    liveTensors--;
    for (const scope of scopes) scope.tensors.delete(this);
    if (this.kind === 'param') this.device.destroyParamBuffer(this.buffer_);
    else this.device.release(this.buffer_);
    if (this.grad && this.grad !== this) this.grad.dispose();
    this.grad = null;
    this.gradFn = null;
  }

  /** Reads the values back (waits for the GPU). */
  async data(): Promise<Float32Array | Int32Array> {
    const raw = await this.device.read(this.buffer, this.bytes);
    return this.dtype === 'f32' ? new Float32Array(raw) : new Int32Array(raw);
  }

  async item(): Promise<number> {
    if (this.size !== 1)
      throw new Error(`item() needs a tensor of one element, this one has shape ${formatShape(this.shape)}`);
    const [value = Number.NaN] = await this.data();
    return value;
  }
}

/** Live tensor count, for leak checks. */
export function liveTensorCount(): number {
  return liveTensors;
}

type Kept =
  | Tensor
  | readonly Kept[]
  | { readonly [key: string]: Kept }
  | number
  | string
  | boolean
  | null
  | undefined
  // biome-ignore lint/suspicious/noConfusingVoidType: a step callback may return nothing
  | void;

function collectKept(value: Kept, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) for (const v of value) collectKept(v as Kept, out);
  else if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) collectKept(v as Kept, out);
}

/**
 * Runs `fn` and disposes every activation tensor it created, except those it returns (and those
 * `keep()`-ed). The memory scope around one training step.
 */
export function tidy<T extends Kept>(fn: () => T): T {
  const scope: Scope = { tensors: new Set() };
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const kept = new Set<Tensor>();
  collectKept(result, kept);
  for (const tensor of scope.tensors) {
    if (kept.has(tensor)) scopes.at(-1)?.tensors.add(tensor);
    else tensor.dispose('disposed at the end of its tidy() scope');
  }
  return result;
}

/** Async variant of tidy for steps that await (e.g. a loss readback). */
export async function tidyAsync<T extends Kept>(fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { tensors: new Set() };
  scopes.push(scope);
  let result: T;
  try {
    result = await fn();
  } finally {
    scopes.splice(scopes.indexOf(scope), 1);
  }
  const kept = new Set<Tensor>();
  collectKept(result, kept);
  for (const tensor of scope.tensors) {
    if (kept.has(tensor)) scopes.at(-1)?.tensors.add(tensor);
    else tensor.dispose('disposed at the end of its tidy() scope');
  }
  return result;
}
