import { registerBackbone, registerModel } from '../registry.js';
import { ppLiteSegFromConfig } from './pp_liteseg.js';
import { stdcFromConfig } from './stdc.js';

registerBackbone('STDC1', (device, config) => stdcFromConfig(device, config, [2, 2, 2]));
registerBackbone('STDC2', (device, config) => stdcFromConfig(device, config, [4, 5, 3]));
registerModel('PPLiteSeg', ppLiteSegFromConfig);

export { PPLiteSeg, type PPLiteSegOptions } from './pp_liteseg.js';
export { STDCNet, type StdcInit } from './stdc.js';
