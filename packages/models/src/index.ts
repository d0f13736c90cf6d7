export {
  type Backbone,
  type BackboneFactory,
  buildBackbone,
  buildModel,
  type ComponentConfig,
  knownModels,
  type ModelFactory,
  registerBackbone,
  registerModel,
  type SegModel,
} from './registry.js';
