// Host time per dispatch: records 2000 small adds without waiting for the GPU and prints the
// recording time per dispatch (the JS and Dawn work a step pays before the GPU runs anything).
//   node tools/dispatch-host.mjs     (needs `pnpm build`)
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const T = await import(join(root, 'packages/tensor/dist/index.js'));
const device = await T.getDevice();
const a = T.tensor(device, new Float32Array(4096).fill(1), [4096]);
const b = T.tensor(device, new Float32Array(4096).fill(1), [4096]);
const samples = [];
for (let rep = 0; rep < 6; rep++) {
  await device.sync();
  const start = performance.now();
  for (let i = 0; i < 2000; i++) T.add(a, b).dispose();
  const recorded = performance.now();
  await device.sync();
  if (rep > 0) samples.push(((recorded - start) * 1000) / 2000);
}
samples.sort((x, y) => x - y);
console.log(
  `recording: ${samples[Math.floor(samples.length / 2)].toFixed(1)} µs per dispatch (median of ${samples.length})`,
);
process.exit(0);
