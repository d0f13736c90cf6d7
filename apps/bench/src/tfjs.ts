import { create, globals } from 'webgpu';

/** tfjs-core with the WebGPU backend on the same Dawn adapter as ours (the same-run baseline). */
export interface Tfjs {
  readonly tf: typeof import('@tensorflow/tfjs');
  /** Resolves when everything tfjs has queued has run on the GPU. */
  readonly sync: () => Promise<void>;
}

let gpuHold: GPU | undefined;

export async function loadTfjs(): Promise<Tfjs> {
  Object.assign(globalThis, globals);
  gpuHold ??= create([]);
  // tfjs-backend-webgpu registers itself only when navigator.gpu exists at import time.
  Object.defineProperty(globalThis, 'navigator', {
    value: { gpu: gpuHold, userAgent: 'node' },
    configurable: true,
  });
  // The union package: its node build registers the gradients that tfjs-core's does not.
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs: the webgpu backend did not initialise');
  await tf.ready();
  const backend = tf.backend() as unknown as {
    endComputePassEncoder(): void;
    submitQueue(): void;
    device: GPUDevice;
  };
  return {
    tf,
    sync: async () => {
      backend.endComputePassEncoder();
      backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
    },
  };
}
