import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'vitest';
import {
  ADAPTER_ENV,
  formatAdapterReport,
  listAdapters,
  matchAdapter,
  parseAdapterListing,
  probeAdapter,
} from '../src/index.js';
import { testDevice } from '../src/testing/index.js';

const MiB = 1024 * 1024;
const savedChoice = process.env[ADAPTER_ENV];

function restoreChoice(): void {
  if (savedChoice === undefined) delete process.env[ADAPTER_ENV];
  else process.env[ADAPTER_ENV] = savedChoice;
}

describe('probeAdapter (real Dawn adapter)', () => {
  afterEach(restoreChoice);

  it('finds an adapter and describes it', async () => {
    const report = await probeAdapter();
    assert.ok(report, 'no WebGPU adapter found: run `bash tools/quickstart.sh setup`');
    console.log(`adapter: ${formatAdapterReport(report)}`);

    assert.equal(typeof report.vendor, 'string');
    assert.ok(report.vendor.length > 0, 'vendor is empty');
    assert.equal(typeof report.device, 'string');
    assert.ok(report.device.length > 0, 'device is empty');
    assert.ok(report.name.length > 0, 'name is empty');
    assert.ok(report.driver.length > 0, 'driver description is empty');
    assert.ok(report.backend.length > 0, 'backend is empty');
    assert.equal(typeof report.isFallback, 'boolean');

    const storage = report.limits.maxStorageBufferBindingSize;
    assert.equal(typeof storage, 'number');
    assert.ok(storage !== undefined && storage >= 128 * MiB, `maxStorageBufferBindingSize ${storage}`);
    const wgX = report.limits.maxComputeWorkgroupSizeX;
    assert.ok(wgX !== undefined && wgX >= 256, `maxComputeWorkgroupSizeX ${wgX}`);
    for (const [key, value] of Object.entries(report.limits)) {
      assert.equal(typeof value, 'number', `limit ${key}`);
      assert.ok(Number.isFinite(value), `limit ${key} = ${value}`);
    }

    assert.ok(Array.isArray(report.features));
    for (const feature of report.features) assert.equal(typeof feature, 'string');
  });

  it('flags CPU (software) adapters as fallback', async () => {
    const report = await probeAdapter();
    assert.ok(report);
    const text = `${report.device} ${report.description} ${report.name}`;
    if (/llvmpipe|lavapipe|swiftshader/i.test(text)) {
      assert.equal(report.isFallback, true, `${text} should be a fallback adapter`);
    } else {
      // A real GPU: Dawn does not flag it as fallback.
      assert.equal(report.isFallback, false, `${text} should not be a fallback adapter`);
    }
  });

  it("the device's `software` flag (kernel tuning) agrees with the report", async () => {
    const report = await probeAdapter();
    const device = await testDevice();
    assert.ok(report);
    assert.equal(device.software, report.isFallback);
  });

  it('lists the adapters Dawn sees, including the default one', async () => {
    const seen = await listAdapters();
    assert.ok(seen.length > 0, 'Dawn listed no adapters');
    seen.forEach((a, i) => {
      assert.equal(a.index, i);
      assert.ok(a.name.length > 0);
      assert.ok(a.backend.length > 0);
    });
    delete process.env[ADAPTER_ENV];
    const report = await probeAdapter();
    assert.ok(report);
    assert.ok(
      seen.some((a) => a.name === report.name && a.backend === report.backend),
      `default adapter ${report.name} (${report.backend}) not in ${JSON.stringify(seen)}`,
    );
  });

  it(`honours ${ADAPTER_ENV} as an index`, async () => {
    const seen = await listAdapters();
    const last = seen.at(-1);
    assert.ok(last);
    process.env[ADAPTER_ENV] = String(last.index);
    const report = await probeAdapter();
    assert.ok(report);
    assert.equal(report.name, last.name);
    assert.equal(report.backend, last.backend);
  });

  it(`honours ${ADAPTER_ENV} as a case-insensitive substring of the name`, async () => {
    const [first] = await listAdapters();
    assert.ok(first);
    const word = first.name.split(/\s+/)[0] ?? first.name;
    process.env[ADAPTER_ENV] = word.toUpperCase();
    const report = await probeAdapter();
    assert.ok(report);
    assert.ok(report.name.toLowerCase().includes(word.toLowerCase()), `${report.name} vs ${word}`);
  });

  it(`throws, naming the value and the adapters seen, when ${ADAPTER_ENV} matches nothing`, async () => {
    const seen = await listAdapters();
    process.env[ADAPTER_ENV] = 'no-such-gpu-xyz';
    await assert.rejects(probeAdapter(), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /SEGTRAIN_ADAPTER="no-such-gpu-xyz"/);
      for (const a of seen) assert.ok(err.message.includes(a.name), `${a.name} missing from: ${err.message}`);
      return true;
    });
    process.env[ADAPTER_ENV] = String(seen.length + 5);
    await assert.rejects(probeAdapter(), new RegExp(`SEGTRAIN_ADAPTER="${seen.length + 5}"`));
  });
});

describe('adapter listing helpers', () => {
  const message = [
    'no suitable backends found',
    'Available adapters:',
    " * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'",
    " * backend: 'vulkan', name: 'NVIDIA GeForce RTX 4090'",
  ].join('\n');

  it('parses Dawn adapter lists', () => {
    assert.deepEqual(parseAdapterListing(message), [
      { index: 0, backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)' },
      { index: 1, backend: 'vulkan', name: 'NVIDIA GeForce RTX 4090' },
    ]);
    assert.deepEqual(parseAdapterListing('no suitable backends found\nAvailable adapters:\n'), []);
  });

  it('matches by index or substring and reports misses', () => {
    const seen = parseAdapterListing(message);
    assert.equal(matchAdapter('1', seen).name, 'NVIDIA GeForce RTX 4090');
    assert.equal(matchAdapter('rtx', seen).index, 1);
    assert.equal(matchAdapter('LLVMpipe', seen).index, 0);
    assert.throws(() => matchAdapter('2', seen), /SEGTRAIN_ADAPTER="2".*\[0\] llvmpipe.*\[1\] NVIDIA/);
    assert.throws(() => matchAdapter('amd', []), /SEGTRAIN_ADAPTER="amd".*adapters seen: none/);
  });
});
