import assert from 'node:assert/strict';
import { getDevice } from '@segtrain/tensor';
import { describe, it } from 'vitest';
import { buildBackbone, buildModel } from '../src/index.js';

describe('model registry', () => {
  it('an unknown type is an error listing the known ones', async () => {
    const device = await getDevice();
    assert.throws(() => buildModel(device, { type: 'DeepLabV9' }), /unknown model type 'DeepLabV9'; known: /);
    assert.throws(
      () => buildBackbone(device, { type: 'ResNet1000' }),
      /unknown backbone type 'ResNet1000'; known: /,
    );
  });
});
