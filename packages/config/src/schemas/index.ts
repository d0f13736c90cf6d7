export * from './common.js';
export * from './datasets.js';
export * from './losses.js';
export * from './models.js';
export * from './optimizers.js';
export * from './schedulers.js';
export * from './test-config.js';
export * from './transforms.js';
