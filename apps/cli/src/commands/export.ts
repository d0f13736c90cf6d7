/**
 * `segtrain export`: PaddleSeg's tools/export.py for ONNX. Writes `save_dir/model.onnx` (standard
 * opset-17 ops, BatchNorm folded into Conv, a static input shape) and `save_dir/deploy.yaml` with
 * export.py's fields (keys sorted, as PyYAML writes them): the val transforms, the model file, the
 * input shape and the output op.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ResolvedConfig } from '@segtrain/config';
import { writeFileAtomic } from '@segtrain/nn';
import { exportOnnx, type OutputOp } from '@segtrain/onnx';
import { getDevice } from '@segtrain/tensor';
import { type CommandSpec, type FlagSpec, type ParsedArgs, UsageError } from '../args.js';
import type { Io } from '../io.js';
import { OVERRIDE_FLAGS, toYaml } from './config.js';
import { guarded, modelWithWeights, prepare } from './train.js';

const OUTPUT_OPS: readonly OutputOp[] = ['argmax', 'softmax', 'none'];
const DEFAULT_SHAPE = [1, 3, 512, 1024] as const;

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  config: { kind: 'string', value: 'FILE', help: 'the PaddleSeg-style config of the model', required: true },
  model_path: {
    kind: 'string',
    value: 'PATH',
    help: 'the weights: .safetensors, .pdparams, or a checkpoint directory (save_dir/best_model)',
    required: true,
  },
  save_dir: {
    kind: 'string',
    value: 'DIR',
    help: 'where model.onnx and deploy.yaml go (default ./output/inference_model)',
  },
  input_shape: {
    kind: 'list',
    value: 'N_C_H_W',
    help: 'the input shape traced (default 1 3 512 1024): C, H and W are fixed in the graph, the batch is dynamic',
  },
  output_op: {
    kind: 'string',
    value: 'argmax|softmax|none',
    help: 'argmax: int32 class ids (default); softmax: probabilities; none: logits',
  },
  ...OVERRIDE_FLAGS,
};

function inputShape(args: ParsedArgs): [number, number, number, number] {
  const given = args.flags.input_shape as string[] | undefined;
  if (!given) return [...DEFAULT_SHAPE];
  const dims = given.map(Number);
  if (dims.length !== 4 || !dims.every((d) => Number.isInteger(d) && d > 0))
    throw new UsageError(
      `segtrain export: --input_shape expects four positive integers N C H W, got '${given.join(' ')}'`,
    );
  return dims as [number, number, number, number];
}

/** export.py's deploy.yaml for an ONNX model (no `params`: the weights are inside model.onnx). */
function deployYaml(
  config: ResolvedConfig,
  shape: readonly number[],
  outputOp: OutputOp,
  dynamicBatch: boolean,
): string {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sortKeys)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
          )
        : v;
  const transforms = config.val_dataset?.transforms ?? [{ type: 'Normalize' }];
  return toYaml(
    sortKeys({
      Deploy: {
        // PaddleSeg writes None for a dynamic dim.
        input_shape: [dynamicBatch ? null : shape[0], ...shape.slice(1)],
        model: 'model.onnx',
        output_dtype: outputOp === 'argmax' ? 'int32' : 'float32',
        output_op: outputOp,
        transforms,
      },
    }) as Parameters<typeof toYaml>[0],
  );
}

async function exportRun(args: ParsedArgs, io: Io): Promise<number> {
  const config = prepare(args);
  const outputOp = (args.flags.output_op as string | undefined) ?? 'argmax';
  if (!(OUTPUT_OPS as readonly string[]).includes(outputOp))
    throw new UsageError(`segtrain export: --output_op must be argmax, softmax or none, got '${outputOp}'`);
  const shape = inputShape(args);
  const saveDir = resolve((args.flags.save_dir as string | undefined) ?? 'output/inference_model');
  return guarded(io, 'export', async () => {
    const log = (line: string) => io.err(`${line}\n`);
    const model = await modelWithWeights(await getDevice(), config, args.flags.model_path as string, log);
    try {
      const { bytes, dynamicBatch } = await exportOnnx(model, {
        inputShape: shape,
        outputOp: outputOp as OutputOp,
        log,
      });
      mkdirSync(saveDir, { recursive: true });
      await writeFileAtomic(join(saveDir, 'model.onnx'), bytes);
      await writeFileAtomic(
        join(saveDir, 'deploy.yaml'),
        new TextEncoder().encode(deployYaml(config, shape, outputOp as OutputOp, dynamicBatch)),
      );
      io.out(
        `Exported ${model.constructor.name} to ${join(saveDir, 'model.onnx')} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, input [${dynamicBatch ? 'N' : shape[0]}, ${shape.slice(1).join(', ')}], output ${outputOp}) and ${join(saveDir, 'deploy.yaml')}\n`,
      );
    } finally {
      model.dispose();
    }
    return 0;
  });
}

export const EXPORT: CommandSpec = {
  name: 'export',
  description:
    "the model and weights as ONNX (model.onnx) with PaddleSeg's deploy.yaml, for onnxruntime and friends",
  flags: FLAGS,
  run: exportRun,
};
