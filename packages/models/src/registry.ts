import type { Layer, Module } from '@segtrain/nn';
import type { Device, Tensor } from '@segtrain/tensor';

/** A segmentation model: logits at the input's H×W, every head in training, only the main one in eval. */
export interface SegModel extends Module {
  forward(x: Tensor): Tensor[];
}

/** A backbone: feature maps at increasing strides, and their channel counts. */
export interface Backbone extends Module {
  readonly featChannels: readonly number[];
  forward(x: Tensor): Tensor[];
}

/** A component block as PaddleSeg configs write it (`type` plus keyword arguments). */
export interface ComponentConfig {
  readonly type: string;
  readonly [key: string]: unknown;
}

export type ModelFactory = (device: Device, config: ComponentConfig) => SegModel;
export type BackboneFactory = (device: Device, config: ComponentConfig) => Backbone;

const models = new Map<string, ModelFactory>();
const backbones = new Map<string, BackboneFactory>();

export function registerModel(type: string, factory: ModelFactory): void {
  models.set(type, factory);
}

export function registerBackbone(type: string, factory: BackboneFactory): void {
  backbones.set(type, factory);
}

export function buildBackbone(device: Device, config: ComponentConfig): Backbone {
  const factory = backbones.get(config.type);
  if (!factory)
    throw new Error(`unknown backbone type '${config.type}'; known: ${[...backbones.keys()].join(', ')}`);
  return factory(device, config);
}

/** Builds a model from a resolved `model` block (num_classes filled in, `backbone` a component). */
export function buildModel(device: Device, config: ComponentConfig): SegModel {
  const factory = models.get(config.type);
  if (!factory)
    throw new Error(`unknown model type '${config.type}'; known: ${[...models.keys()].join(', ')}`);
  return factory(device, config);
}

export function knownModels(): string[] {
  return [...models.keys()];
}

/** A Layer typed as a module that returns one tensor, for heads built from nn layers. */
export type { Layer };
