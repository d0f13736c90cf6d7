/**
 * ONNX export: one eval-mode forward of the model under `traceOps` records every op with its
 * inputs and attributes; walking back from the main output keeps the ops that matter, and each
 * becomes standard ONNX (opset 17) nodes. Parameters and BatchNorm statistics become initializers;
 * an eval-mode BatchNorm whose input comes only from a Conv is folded into that Conv's weights.
 */

import {
  DeviceLimitError,
  noGrad,
  type Tensor,
  type TracedOp,
  tidy,
  traceOps,
  zeros,
} from '@segtrain/tensor';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** What `exportOnnx` needs of a model: an eval switch, a forward, and its named state. */
export interface ExportableModel {
  readonly device: Tensor['device'];
  eval(): void;
  forward(x: Tensor): Tensor[];
  stateDict(): ReadonlyMap<string, Tensor>;
}

export type OutputOp = 'argmax' | 'softmax' | 'none';

export interface ExportOptions {
  /** NCHW the model is traced at; H and W are fixed in the graph, N is dynamic unless `staticBatch`. */
  readonly inputShape: readonly [number, number, number, number];
  /** Fix the batch dimension too (default: a symbolic `N`). */
  readonly staticBatch?: boolean;
  /** Where notes go (e.g. a batch fixed because the second trace does not fit the adapter). */
  readonly log?: (line: string) => void;
  /** PaddleSeg export.py's --output_op: int32 class ids (default), probabilities, or logits. */
  readonly outputOp?: OutputOp;
}

/** The exported model, and whether its batch dimension is dynamic (`N`) or fixed. */
export interface OnnxExport {
  readonly bytes: Uint8Array;
  readonly dynamicBatch: boolean;
}

/** An op (or shape) the exporter cannot write as ONNX; the message names it. */
export class OnnxExportError extends Error {}

export const OPSET = 17;
const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;

type NodeProto = ReturnType<typeof onnx.NodeProto.create>;
type TensorProto = ReturnType<typeof onnx.TensorProto.create>;
type AttributeValue = number | number[] | string;

function attribute(name: string, value: AttributeValue) {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: A.INTS, ints: value };
  return Number.isInteger(value) ? { name, type: A.INT, i: value } : { name, type: A.FLOAT, f: value };
}

function floatTensor(name: string, dims: readonly number[], data: Float32Array): TensorProto {
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i] ?? 0, true);
  return onnx.TensorProto.create({ name, dims: [...dims], dataType: FLOAT, rawData: raw });
}

function int64Tensor(name: string, values: readonly number[]): TensorProto {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setBigInt64(i * 8, BigInt(values[i] ?? 0), true);
  return onnx.TensorProto.create({ name, dims: [values.length], dataType: INT64, rawData: raw });
}

/** A graph input/output; dim 0 is the symbolic batch `N` when `dynamicBatch`. */
function valueInfo(name: string, elemType: number, shape: readonly number[], dynamicBatch: boolean) {
  const dim = shape.map((d, i) => (i === 0 && dynamicBatch ? { dimParam: 'N' } : { dimValue: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

/** Graph under construction: nodes, initializers and unique names. */
class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private count = 0;

  fresh(hint: string): string {
    return `${hint}_${this.count++}`;
  }
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs: Record<string, AttributeValue> = {},
  ): void {
    this.nodes.push(
      onnx.NodeProto.create({
        opType,
        input: [...inputs],
        output: [...outputs],
        name: this.fresh(opType),
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
  }
  /** One-output node into a fresh name. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttributeValue> = {},
    out?: string,
  ): string {
    const name = out ?? this.fresh(opType.toLowerCase());
    this.node(opType, inputs, [name], attrs);
    return name;
  }
  float(hint: string, dims: readonly number[], data: Float32Array): string {
    const name = this.fresh(hint);
    this.initializers.push(floatTensor(name, dims, data));
    return name;
  }
  scalar(value: number): string {
    return this.float('const', [], Float32Array.of(value));
  }
  ints(values: readonly number[]): string {
    const name = this.fresh('ints');
    this.initializers.push(int64Tensor(name, values));
    return name;
  }
}

interface Geometry2d {
  readonly h: number;
  readonly w: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly dh?: number;
  readonly dw?: number;
}

/** ONNX pads [top, left, bottom, right] from the top/left padding and the output size. */
function pads(g: Geometry2d, pt: number, pl: number, outH: number, outW: number): number[] {
  const dh = g.dh ?? 1;
  const dw = g.dw ?? 1;
  const pb = (outH - 1) * g.sh + (g.kh - 1) * dh + 1 - g.h - pt;
  const pr = (outW - 1) * g.sw + (g.kw - 1) * dw + 1 - g.w - pl;
  return [pt, pl, Math.max(pb, 0), Math.max(pr, 0)];
}

/** Exact GELU from opset-17 ops: x · 0.5 · (1 + erf(x / √2)). */
function gelu(g: GraphBuilder, x: string, out?: string): string {
  const erf = g.op('Erf', [g.op('Div', [x, g.scalar(Math.SQRT2)])]);
  return g.op('Mul', [x, g.op('Mul', [g.op('Add', [erf, g.scalar(1)]), g.scalar(0.5)])], {}, out);
}

const UNARY: Record<string, string> = {
  relu: 'Relu',
  sigmoid: 'Sigmoid',
  tanh: 'Tanh',
  exp: 'Exp',
  log: 'Log',
  sqrt: 'Sqrt',
  neg: 'Neg',
};
const BINARY: Record<string, string> = { add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div' };

/**
 * Exports `model` as an ONNX ModelProto (bytes). The graph has one input `x` (float32, the given
 * NCHW) and one output `output`: int32 class ids [N, H, W] (argmax), probabilities or logits.
 * The batch is dynamic unless `staticBatch`, or unless a trace one sample larger does not fit the
 * adapter (then it is fixed, with a note to `log`).
 */
export async function exportOnnx(model: ExportableModel, options: ExportOptions): Promise<OnnxExport> {
  const outputOp = options.outputOp ?? 'argmax';
  model.eval();
  const x = zeros(model.device, [...options.inputShape]);
  const { result: outputs, ops } = noGrad(() => traceOps(() => model.forward(x)));
  const main = outputs[0];
  if (!main) throw new OnnxExportError('the model returned no output');
  try {
    let counterparts: Map<TracedOp, Counterpart> | null = null;
    if (!options.staticBatch)
      try {
        counterparts = batchCounterparts(model, options.inputShape, ops);
      } catch (error) {
        if (!(error instanceof DeviceLimitError)) throw error;
        options.log?.(
          `[NOTE] the batch is fixed at ${options.inputShape[0]}: the second trace, one sample larger, exceeds this adapter (${error.message})`,
        );
      }
    return {
      bytes: await buildModel(model, x, main, ops, outputOp, counterparts),
      dynamicBatch: counterparts !== null,
    };
  } finally {
    // The trace's activations (every op's output) are not needed past the export.
    for (const op of ops) if (op.output.kind === 'activation' && !op.output.isDisposed) op.output.dispose();
    for (const t of outputs) if (!t.isDisposed) t.dispose();
    x.dispose();
  }
}

/** An op's output shape and slice bounds in the trace one sample larger. */
interface Counterpart {
  readonly shape: readonly number[];
  readonly start: number;
  readonly length: number;
}

/**
 * Each traced op's counterpart in a second trace one sample larger (the forward is the same
 * sequence of ops at any batch): what differs between the two grows with the batch, and shapes
 * written into the graph (Reshape targets, Resize sizes, Slice bounds) take it from the input at
 * run time.
 */
function batchCounterparts(
  model: ExportableModel,
  shape: readonly number[],
  ops: readonly TracedOp[],
): Map<TracedOp, Counterpart> {
  const bigger = zeros(model.device, [(shape[0] ?? 1) + 1, ...shape.slice(1)]);
  try {
    // Only shapes and slice bounds are kept: the trace's activations are freed with the scope.
    const again = tidy(() =>
      noGrad(() =>
        traceOps(() => model.forward(bigger)).ops.map((op) => ({
          op: op.op,
          shape: [...op.output.shape],
          start: Number(op.attrs.start ?? 0),
          length: Number(op.attrs.length ?? 0),
        })),
      ),
    );
    if (again.length !== ops.length || again.some((op, i) => op.op !== ops[i]?.op))
      throw new OnnxExportError(
        'the forward runs different ops at another batch size, so the batch cannot be dynamic: export with a static batch',
      );
    return new Map(ops.map((op, i) => [op, again[i] as Counterpart]));
  } finally {
    bigger.dispose();
  }
}

async function buildModel(
  model: ExportableModel,
  x: Tensor,
  main: Tensor,
  ops: readonly TracedOp[],
  outputOp: OutputOp,
  counterparts: ReadonlyMap<TracedOp, Counterpart> | null,
): Promise<Uint8Array> {
  const dynamicBatch = counterparts !== null;
  /** Output axes of `op` that grow with the batch. */
  const batchAxes = (op: TracedOp) => {
    const other = counterparts?.get(op);
    return other ? op.output.shape.flatMap((d, axis) => (other.shape[axis] !== d ? [axis] : [])) : [];
  };
  // The last op that produced each tensor, and the ops the main output needs (inputs first).
  const producer = new Map<Tensor, TracedOp>();
  for (const op of ops) producer.set(op.output, op);
  const needed: TracedOp[] = [];
  const seen = new Set<TracedOp>();
  const visit = (t: Tensor) => {
    const op = producer.get(t);
    if (!op || seen.has(op)) return;
    seen.add(op);
    for (const input of op.inputs) visit(input);
    for (const v of Object.values(op.attrs)) if (isTensor(v)) visit(v);
    needed.push(op);
  };
  visit(main);
  const consumers = new Map<Tensor, number>();
  for (const op of needed)
    for (const input of op.inputs) consumers.set(input, (consumers.get(input) ?? 0) + 1);

  const paramNames = new Map<Tensor, string>();
  for (const [name, t] of model.stateDict()) paramNames.set(t, name);
  const g = new GraphBuilder();
  const names = new Map<Tensor, string>([[x, 'x']]);
  const hostData = async (t: Tensor) => {
    if (t.isDisposed)
      throw new OnnxExportError(
        `a constant of shape [${t.shape.join(', ')}] was freed during the forward: not exportable`,
      );
    return Float32Array.from(await t.data());
  };
  const constant = async (t: Tensor): Promise<string> => {
    const known = names.get(t);
    if (known) return known;
    const name = paramNames.get(t) ?? g.fresh('const');
    g.initializers.push(floatTensor(name, t.shape, await hostData(t)));
    names.set(t, name);
    return name;
  };
  const nameOf = async (t: Tensor): Promise<string> => names.get(t) ?? constant(t);
  // A Conv whose only consumer is an eval-mode BatchNorm is written with that BatchNorm folded in.
  const foldedInto = new Map<TracedOp, TracedOp>();
  for (const op of needed) {
    const input = op.inputs[0];
    const conv = input ? producer.get(input) : undefined;
    if (
      op.op === 'batchNorm2d' &&
      conv?.op === 'conv2d' &&
      input &&
      consumers.get(input) === 1 &&
      seen.has(conv)
    )
      foldedInto.set(conv, op);
  }

  for (const op of needed) {
    if (names.has(op.output)) continue;
    const out = g.fresh(op.op);
    const bn = foldedInto.get(op);
    // A folded Conv's own weights are not written: only its input's name is needed.
    const ins = await Promise.all((bn ? op.inputs.slice(0, 1) : op.inputs).map(nameOf));
    const a = op.attrs;
    switch (op.op) {
      case 'conv2d': {
        const geo = a.geometry as Geometry2d & {
          pt: number;
          pl: number;
          hout: number;
          wout: number;
          groups: number;
          dh: number;
          dw: number;
        };
        const attrs = {
          kernel_shape: [geo.kh, geo.kw],
          strides: [geo.sh, geo.sw],
          dilations: [geo.dh, geo.dw],
          pads: pads(geo, geo.pt, geo.pl, geo.hout, geo.wout),
          group: geo.groups,
        };
        if (!bn) {
          g.op('Conv', ins, attrs, out);
          break;
        }
        const [w, bias] = [op.inputs[1] as Tensor, op.inputs[2]];
        const [gamma, beta] = [bn.inputs[1] as Tensor, bn.inputs[2] as Tensor];
        const mean = await hostData(bn.attrs.runningMean as Tensor);
        const variance = await hostData(bn.attrs.runningVar as Tensor);
        const eps = bn.attrs.eps as number;
        const [wData, gData, bData] = await Promise.all([hostData(w), hostData(gamma), hostData(beta)]);
        const b0 = bias ? await hostData(bias) : new Float32Array(mean.length);
        const cout = w.shape[0] ?? 1;
        const per = wData.length / cout;
        const folded = new Float32Array(wData.length);
        const foldedBias = new Float32Array(cout);
        for (let c = 0; c < cout; c++) {
          // In float64, rounded once.
          const s = (gData[c] ?? 0) / Math.sqrt((variance[c] ?? 0) + eps);
          for (let i = 0; i < per; i++) folded[c * per + i] = (wData[c * per + i] ?? 0) * s;
          foldedBias[c] = ((b0[c] ?? 0) - (mean[c] ?? 0)) * s + (bData[c] ?? 0);
        }
        const conv = g.op(
          'Conv',
          [
            ins[0] as string,
            g.float('conv_bn_weight', w.shape, folded),
            g.float('conv_bn_bias', [cout], foldedBias),
          ],
          attrs,
        );
        names.set(op.output, conv);
        // A ReLU fused into the BatchNorm follows the folded Conv.
        names.set(bn.output, bn.attrs.activation === 'relu' ? g.op('Relu', [conv]) : conv);
        continue;
      }
      case 'batchNorm2d': {
        if (a.training)
          throw new OnnxExportError('batchNorm2d in training mode: export runs the model in eval mode');
        const [mean, variance] = await Promise.all([
          constant(a.runningMean as Tensor),
          constant(a.runningVar as Tensor),
        ]);
        const normalized = g.op(
          'BatchNormalization',
          [ins[0] as string, ins[1] as string, ins[2] as string, mean, variance],
          { epsilon: a.eps as number },
          a.activation === 'relu' ? undefined : out,
        );
        if (a.activation === 'relu') g.op('Relu', [normalized], {}, out);
        break;
      }
      case 'add':
      case 'sub':
      case 'mul':
      case 'div':
        g.op(BINARY[op.op] as string, ins, {}, out);
        break;
      case 'relu':
      case 'sigmoid':
      case 'tanh':
      case 'exp':
      case 'log':
      case 'sqrt':
      case 'neg':
        g.op(UNARY[op.op] as string, ins, {}, out);
        break;
      case 'gelu':
        gelu(g, ins[0] as string, out);
        break;
      case 'affine': {
        const [scale = 1, shift = 0] = a.scalars as number[];
        const scaled = g.op('Mul', [ins[0] as string, g.scalar(scale)]);
        g.op('Add', [scaled, g.scalar(shift)], {}, out);
        break;
      }
      case 'pow':
        g.op('Pow', [ins[0] as string, g.scalar((a.scalars as number[])[0] ?? 1)], {}, out);
        break;
      case 'clamp': {
        const [lo = 0, hi = 0] = a.scalars as number[];
        g.op('Clip', [ins[0] as string, g.scalar(lo), g.scalar(hi)], {}, out);
        break;
      }
      case 'matmul':
        g.op('MatMul', ins, {}, out);
        break;
      case 'linear': {
        let y = g.op('MatMul', [ins[0] as string, ins[1] as string]);
        if (ins[2]) y = g.op('Add', [y, ins[2]]);
        if (a.activation === 'relu') y = g.op('Relu', [y]);
        else if (a.activation === 'gelu') y = gelu(g, y);
        else if (a.activation !== 'none')
          throw new OnnxExportError(`linear with activation '${String(a.activation)}'`);
        names.set(op.output, y);
        continue;
      }
      case 'layerNorm':
        g.op('LayerNormalization', ins, { axis: -1, epsilon: a.eps as number }, out);
        break;
      case 'softmax':
        g.op('Softmax', ins, { axis: a.axis as number }, out);
        break;
      case 'sum':
        g.op(
          'ReduceSum',
          [ins[0] as string, g.ints(a.axes as number[])],
          { keepdims: a.keepDims ? 1 : 0 },
          out,
        );
        break;
      case 'mean':
      case 'max':
        g.op(
          op.op === 'mean' ? 'ReduceMean' : 'ReduceMax',
          ins,
          {
            axes: a.axes as number[],
            keepdims: a.keepDims ? 1 : 0,
          },
          out,
        );
        break;
      case 'resizeBilinear':
      case 'resizeNearest': {
        const bilinear = op.op === 'resizeBilinear';
        // With a dynamic batch, N and C come from the input's shape at run time.
        const sizes = dynamicBatch
          ? g.op(
              'Concat',
              [
                g.op('Slice', [g.op('Shape', [ins[0] as string]), g.ints([0]), g.ints([2])]),
                g.ints(op.output.shape.slice(2)),
              ],
              { axis: 0 },
            )
          : g.ints(op.output.shape);
        g.op(
          'Resize',
          [ins[0] as string, '', '', sizes],
          bilinear
            ? {
                mode: 'linear',
                coordinate_transformation_mode: a.alignCorners ? 'align_corners' : 'half_pixel',
              }
            : { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
          out,
        );
        break;
      }
      case 'avg_pool2d':
      case 'max_pool2d': {
        const geo = a.geometry as Geometry2d & {
          padTop: number;
          padLeft: number;
          outH: number;
          outW: number;
        };
        const attrs: Record<string, AttributeValue> = {
          kernel_shape: [geo.kh, geo.kw],
          strides: [geo.sh, geo.sw],
          pads: pads(geo, geo.padTop, geo.padLeft, geo.outH, geo.outW),
        };
        if (op.op === 'avg_pool2d') attrs.count_include_pad = a.exclusive ? 0 : 1;
        g.op(op.op === 'avg_pool2d' ? 'AveragePool' : 'MaxPool', ins, attrs, out);
        break;
      }
      case 'adaptive_avg_pool2d': {
        // Bins are rectangles, so the pooling is separable: out = A_h · x · A_wᵀ with A's rows
        // averaging each bin (start ⌊i·H/b⌋, end ⌈(i+1)·H/b⌉): two MatMuls with constant matrices,
        // exact for every size (AveragePool covers only even bins).
        const geo = a.geometry as { h: number; w: number; outH: number; outW: number };
        if (geo.outH === 1 && geo.outW === 1) {
          g.op('GlobalAveragePool', ins, {}, out);
          break;
        }
        const binMatrix = (size: number, bins: number, transpose: boolean) => {
          const m = new Float32Array(size * bins);
          for (let i = 0; i < bins; i++) {
            const start = Math.floor((i * size) / bins);
            const end = Math.ceil(((i + 1) * size) / bins);
            for (let j = start; j < end; j++) m[transpose ? j * bins + i : i * size + j] = 1 / (end - start);
          }
          return m;
        };
        const aw = g.float('adaptive_pool_w', [geo.w, geo.outW], binMatrix(geo.w, geo.outW, true));
        const ah = g.float('adaptive_pool_h', [geo.outH, geo.h], binMatrix(geo.h, geo.outH, false));
        g.op('MatMul', [ah, g.op('MatMul', [ins[0] as string, aw])], {}, out);
        break;
      }
      case 'reshape': {
        // The one axis that grows with the batch (N, or N·heads) is inferred (−1) at run time.
        const target = [...op.output.shape];
        const axes = batchAxes(op);
        if (axes.length > 1)
          throw new OnnxExportError(
            `reshape to [${target.join(', ')}] spreads the batch over ${axes.length} axes: export with a static batch`,
          );
        if (axes[0] !== undefined) target[axes[0]] = -1;
        g.op('Reshape', [ins[0] as string, g.ints(target)], {}, out);
        break;
      }
      case 'transpose':
        g.op('Transpose', ins, { perm: a.perm as number[] }, out);
        break;
      case 'slice': {
        const start = a.start as number;
        const other = counterparts?.get(op);
        if (other && (other.start !== start || other.length !== a.length)) {
          // Bounds that scale with the batch (a slice of a batch-folded axis): start·D/D₀ at run time.
          const axis = a.axis as number;
          const d0 = op.inputs[0]?.shape[axis] ?? 1;
          const size = g.op('Slice', [g.op('Shape', [ins[0] as string]), g.ints([axis]), g.ints([axis + 1])]);
          const scaled = (v: number) => g.op('Div', [g.op('Mul', [size, g.ints([v])]), g.ints([d0])]);
          g.op(
            'Slice',
            [ins[0] as string, scaled(start), scaled(start + (a.length as number)), g.ints([axis])],
            {},
            out,
          );
          break;
        }
        g.op(
          'Slice',
          [
            ins[0] as string,
            g.ints([start]),
            g.ints([start + (a.length as number)]),
            g.ints([a.axis as number]),
          ],
          {},
          out,
        );
        break;
      }
      case 'concat':
        g.op('Concat', ins, { axis: a.axis as number }, out);
        break;
      case 'meanMaxOverChannels': {
        const reduce = (type: string, x: string) => g.op(type, [x], { axes: [1], keepdims: 1 });
        const parts = ins.flatMap((x) => [reduce('ReduceMean', x), reduce('ReduceMax', x)]);
        g.op('Concat', parts, { axis: 1 }, out);
        break;
      }
      case 'blendByMap': {
        const [x, y, alpha, s] = ins as [string, string, string, string];
        const rest = g.op('Sub', [s, alpha]);
        g.op('Add', [g.op('Mul', [x, alpha]), g.op('Mul', [y, rest])], {}, out);
        break;
      }
      default:
        throw new OnnxExportError(`the op '${op.op}' has no ONNX export yet`);
    }
    names.set(op.output, out);
  }

  const logits = await nameOf(main);
  const [n = 1, , h = 1, w = 1] = main.shape;
  let output: string;
  let elemType = FLOAT;
  let outShape: readonly number[] = main.shape;
  if (outputOp === 'argmax') {
    output = g.op('Cast', [g.op('ArgMax', [logits], { axis: 1, keepdims: 0 })], { to: INT32 }, 'output');
    elemType = INT32;
    outShape = [n, h, w];
  } else if (outputOp === 'softmax') output = g.op('Softmax', [logits], { axis: 1 }, 'output');
  else output = g.op('Identity', [logits], {}, 'output');

  const proto = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'segtrain',
    graph: {
      name: 'segtrain',
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo('x', FLOAT, x.shape, dynamicBatch)],
      output: [valueInfo(output, elemType, outShape, dynamicBatch)],
    },
  });
  return onnx.ModelProto.encode(proto).finish();
}

function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'buffer' in v && 'device' in v;
}
