import type { TuneCandidate } from '../device/autotune.js';
import type { Device } from '../device/device.js';
import type { Tensor } from '../tensor.js';
import { fill } from './elementwise.js';

/**
 * A kernel family's config for this call through the device's autotuner (see device/autotune.ts):
 * `fallback` until its shape class is tuned. A trial runs `run` on zero-filled scratch tensors of
 * `scratch` elements each (in the order of the call's operands), never on the caller's tensors,
 * which may be gone by the time the tuner runs.
 */
export function tunedConfig<C>(
  device: Device,
  family: string,
  shapeClass: () => string,
  fallback: C,
  candidates: () => readonly TuneCandidate<C>[],
  scratch: readonly number[],
  run: (operands: readonly Tensor[], config: C) => void,
): C {
  return device.tuner.choose(family, shapeClass, fallback, candidates, () => {
    const operands = scratch.map((elements) => fill(device, [elements], 0));
    return {
      run: (config) => run(operands, config),
      dispose: () => {
        for (const operand of operands) operand.dispose();
      },
    };
  });
}

/** v rounded up to a power of two: shape classes group sizes by it. */
export const pow2Class = (v: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, v)));
