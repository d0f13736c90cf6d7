import type { Device } from '../device/device.js';
import { fill } from '../kernels/elementwise.js';
import { emptyTensor } from '../kernels/launch.js';
import { type DType, formatShape, type Shape, shapeSize, Tensor } from '../tensor.js';

function checkData(data: ArrayLike<number>, shape: Shape): void {
  if (data.length !== shapeSize(shape))
    throw new Error(
      `tensor data has ${data.length} values; shape ${formatShape(shape)} needs ${shapeSize(shape)}`,
    );
}

/** An activation tensor holding `data` (pooled; freed by dispose or tidy). */
export function tensor(device: Device, data: ArrayLike<number>, shape: Shape, dtype: DType = 'f32'): Tensor {
  checkData(data, shape);
  const out = emptyTensor(device, shape, dtype);
  device.write(out.buffer, dtype === 'f32' ? Float32Array.from(data) : Int32Array.from(data));
  return out;
}

/** A trainable leaf outside the churn pool (requiresGrad, never freed by tidy). */
export function parameter(device: Device, data: ArrayLike<number>, shape: Shape, label = 'param'): Tensor {
  checkData(data, shape);
  const buffer = device.createParamBuffer(shapeSize(shape) * 4, label);
  const out = new Tensor(device, shape, 'f32', buffer, 'param');
  device.write(buffer, Float32Array.from(data));
  out.requiresGrad = true;
  return out;
}

/** A non-trainable persistent buffer (BN running statistics, optimizer state). */
export function persistent(device: Device, data: ArrayLike<number>, shape: Shape, label = 'state'): Tensor {
  checkData(data, shape);
  const buffer = device.createParamBuffer(shapeSize(shape) * 4, label);
  device.write(buffer, Float32Array.from(data));
  return new Tensor(device, shape, 'f32', buffer, 'param');
}

export function zeros(device: Device, shape: Shape): Tensor {
  return fill(device, shape, 0);
}

export function ones(device: Device, shape: Shape): Tensor {
  return fill(device, shape, 1);
}

export function full(device: Device, shape: Shape, value: number): Tensor {
  return fill(device, shape, value);
}

const constantCache = new WeakMap<Device, Map<string, Tensor>>();

/**
 * A small persistent constant (class weights, fixed filters), uploaded once per device and values,
 * not every step (an upload flushes the recorded work). Shared: never dispose the result.
 */
export function cachedConstant(device: Device, values: readonly number[], shape: Shape): Tensor {
  let byKey = constantCache.get(device);
  if (!byKey) {
    byKey = new Map();
    constantCache.set(device, byKey);
  }
  const key = `${shape.join('x')}:${values.join(',')}`;
  let t = byKey.get(key);
  if (!t || t.isDisposed) {
    t = persistent(device, values, shape, 'constant');
    byKey.set(key, t);
  }
  return t;
}
