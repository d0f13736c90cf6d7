import { accumulate, fill } from '../kernels/elementwise.js';
import { formatShape, type GradNode, sameShape, type Tensor } from '../tensor.js';

let gradEnabled = true;

/** Runs `fn` without recording autograd history (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * One op call as `traceOps` saw it: the op's name, its tensor inputs, its output and the
 * attributes (stride, axis, eps, …) an exporter needs to rebuild it. Ops called inside another op
 * are recorded too, before it; walking back from the outputs skips them (the outer op's inputs are
 * not their outputs).
 */
export interface TracedOp {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly output: Tensor;
  readonly attrs: Readonly<Record<string, unknown>>;
}

let tracing: TracedOp[] | null = null;
const pendingAttrs = new WeakMap<Tensor, Readonly<Record<string, unknown>>>();

/** Attaches an op's attributes to its output before `record` (a no-op unless tracing). */
export function traceAttrs(output: Tensor, attrs: Readonly<Record<string, unknown>>): void {
  if (tracing) pendingAttrs.set(output, attrs);
}

/** Runs `fn`, recording every op it calls (graph export: ONNX). Not reentrant. */
export function traceOps<T>(fn: () => T): { result: T; ops: TracedOp[] } {
  if (tracing) throw new Error('traceOps: already tracing');
  const ops: TracedOp[] = [];
  tracing = ops;
  try {
    return { result: fn(), ops };
  } finally {
    tracing = null;
  }
}

/**
 * Attaches a node to `output` when grad mode is on and an input needs a gradient. `backward`
 * maps the output gradient to one gradient per input (null for none).
 */
export function record(
  output: Tensor,
  name: string,
  inputs: readonly Tensor[],
  saved: readonly Tensor[],
  backward: (grad: Tensor) => Array<Tensor | null>,
): Tensor {
  tracing?.push({ op: name, inputs, output, attrs: pendingAttrs.get(output) ?? {} });
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return output;
  const depth = 1 + Math.max(0, ...inputs.map((t) => t.gradFn?.depth ?? 0));
  output.requiresGrad = true;
  output.gradFn = { name, inputs, depth, saved, backward };
  return output;
}

export interface BackwardOptions {
  /** The gradient of `root` (defaults to ones). */
  readonly grad?: Tensor;
  /** Keep intermediate activations alive after their last use (for debugging). */
  readonly retainGraph?: boolean;
}

/**
 * Reverse-mode autodiff from `root`: nodes run deepest first, so every gradient is complete before
 * it is used; gradients and saved activations are released after their last use; a leaf's
 * `onGradFinal` hooks fire as soon as its gradient is final (while the rest of backward runs).
 */
export function backward(root: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad || !root.gradFn)
    throw new Error(
      `backward(): the tensor ${formatShape(root.shape)} does not require grad (no recorded history)`,
    );
  const device = root.device;
  // Every node reachable from root, and how many pending consumers each tensor has.
  const nodes = new Set<GradNode>();
  const owners = new Map<GradNode, Tensor>();
  const pending = new Map<Tensor, number>();
  const savedUses = new Map<Tensor, number>();
  const stack: Tensor[] = [root];
  const visited = new Set<Tensor>([root]);
  // Decided up front: releasing a tensor mid-backward clears its gradFn, which must not turn an
  // intermediate into a "leaf".
  const leaves = new Set<Tensor>();
  const intermediates = new Set<Tensor>();
  while (stack.length) {
    const tensor = stack.pop() as Tensor;
    const node = tensor.gradFn;
    if (!node) {
      leaves.add(tensor);
      continue;
    }
    intermediates.add(tensor);
    nodes.add(node);
    owners.set(node, tensor);
    for (const saved of node.saved) savedUses.set(saved, (savedUses.get(saved) ?? 0) + 1);
    for (const input of node.inputs) {
      if (!input.requiresGrad) continue;
      pending.set(input, (pending.get(input) ?? 0) + 1);
      if (!visited.has(input)) {
        visited.add(input);
        stack.push(input);
      }
    }
  }
  const grads = new Map<Tensor, Tensor>();
  if (options.grad && !sameShape(options.grad.shape, root.shape)) {
    throw new Error(
      `backward(): grad shape ${formatShape(options.grad.shape)} does not match ${formatShape(root.shape)}`,
    );
  }
  grads.set(root, options.grad ?? fill(device, root.shape, 1));
  const order = [...nodes].sort((a, b) => b.depth - a.depth);
  for (const node of order) {
    const output = owners.get(node) as Tensor;
    const gradOutput = grads.get(output);
    grads.delete(output);
    if (gradOutput) {
      const inputGrads = node.backward(gradOutput);
      if (gradOutput !== options.grad) gradOutput.dispose('released by backward() after its last use');
      node.inputs.forEach((input, i) => {
        const g = inputGrads[i];
        if (!input.requiresGrad) {
          g?.dispose();
          return;
        }
        if (g) {
          if (!sameShape(g.shape, input.shape))
            throw new Error(
              `backward of ${node.name}: gradient ${formatShape(g.shape)} for input ${formatShape(input.shape)}`,
            );
          const previous = grads.get(input);
          if (previous) {
            accumulate(device, previous, g);
            g.dispose();
          } else grads.set(input, g);
        }
        const left = (pending.get(input) ?? 1) - 1;
        pending.set(input, left);
        if (left === 0 && leaves.has(input)) finishLeaf(input, grads);
      });
    } else {
      for (const input of node.inputs) {
        if (!input.requiresGrad) continue;
        const left = (pending.get(input) ?? 1) - 1;
        pending.set(input, left);
        if (left === 0 && leaves.has(input)) finishLeaf(input, grads);
      }
    }
    if (!options.retainGraph) {
      for (const saved of node.saved) {
        const uses = (savedUses.get(saved) ?? 1) - 1;
        savedUses.set(saved, uses);
        if (uses === 0 && !saved.isLeaf && !saved.retained && saved !== root)
          saved.dispose('released by backward() after its last use');
      }
      output.gradFn = null;
    }
  }
}

/** A leaf's gradient is final: accumulate into `.grad` (as PyTorch does) and fire its hooks. */
function finishLeaf(leaf: Tensor, grads: Map<Tensor, Tensor>): void {
  const g = grads.get(leaf);
  grads.delete(leaf);
  if (!g) return;
  if (leaf.grad) {
    accumulate(leaf.device, leaf.grad, g);
    g.dispose();
  } else {
    g.keep();
    leaf.grad = g;
  }
  leaf.fireGradHooks(leaf.grad);
}
