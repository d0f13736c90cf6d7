/**
 * `@segtrain/tensor/testing`: what every package's tests share. Seeded values and float64 comparisons,
 * op checks (forward against a float64 reference, gradients against finite differences), float64
 * oracles, and where the repository's and PaddleSeg's files are.
 */
export { assertClose, assertSameBitsWithout, assertSameValues, erf64, rand, stridesOf } from './numeric.js';
export { checkOp, type InputSpec, inputGradient, type OpCase, type Ref, testDevice } from './ops.js';
export { DEMO_CONFIG, paddlesegConfig, repoRoot } from './paths.js';
export { type TunedChoice, withTunedChoices } from './tuning.js';
