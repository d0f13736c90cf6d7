import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import * as T from '../src/index.js';
import { checkOp, testDevice } from '../src/testing/index.js';

describe('autograd engine', () => {
  it('an intermediate consumed by two ops, one of which saves it, gets its whole gradient (regression)', () =>
    checkOp({
      name: 'mean+max of relu',
      inputs: [{ shape: [2, 3, 4] }],
      gpu: ([x]) => {
        const h = T.relu(x as T.Tensor);
        return T.add(T.mean(h, 1, true), T.max(h, 1, true));
      },
      ref: ([x]) => {
        const out = new Float64Array(8);
        for (let n = 0; n < 2; n++)
          for (let w = 0; w < 4; w++) {
            let s = 0;
            let m = Number.NEGATIVE_INFINITY;
            for (let c = 0; c < 3; c++) {
              const v = Math.max(x?.[n * 12 + c * 4 + w] ?? 0, 0);
              s += v;
              m = Math.max(m, v);
            }
            out[n * 4 + w] = s / 3 + m;
          }
        return out;
      },
    }));

  it('diamonds and reused leaves accumulate; onGradFinal fires once with the final gradient', async () => {
    const device = await testDevice();
    const a = T.parameter(device, [1, 2, 3], [3]);
    const seen: number[][] = [];
    a.onGradFinal((g) => {
      seen.push([]);
      void g.data().then((d) => seen[seen.length - 1]?.push(...d));
    });
    T.tidy(() => {
      const b = T.mul(a, a); // 2a
      const c = T.add(b, a); // +1
      const d = T.mul(c, a); // (a² + a)·a → 3a² + 2a
      T.backward(T.sum(d));
    });
    await device.sync();
    assert.deepEqual(Array.from((await a.grad?.data()) ?? []), [5, 16, 33]);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0], [5, 16, 33]);
    a.dispose();
  });

  it('intermediates are released after their last use unless retained; use after free says so', async () => {
    const device = await testDevice();
    const a = T.parameter(device, [1, -2, 3], [3]);
    let kept: T.Tensor | null = null;
    let freed: T.Tensor | null = null;
    T.tidy(() => {
      freed = T.exp(a);
      kept = T.relu(a).retain();
      T.backward(T.sum(T.add(T.mul(freed, freed), kept)));
      return kept;
    });
    assert.deepEqual(Array.from((await (kept as unknown as T.Tensor).data()) ?? []), [1, 0, 3]);
    assert.throws(
      () => (freed as unknown as T.Tensor).buffer,
      /was released by backward\(\) after its last use; call retain\(\) on it before backward\(\) to keep it/,
    );
    (kept as unknown as T.Tensor).dispose();
    a.dispose();
  });

  it('noGrad records nothing; tidy frees what it created; backward on a constant is an error', async () => {
    const device = await testDevice();
    const a = T.parameter(device, [1, 2], [2]);
    const before = T.liveTensorCount();
    const y = T.tidy(() => T.noGrad(() => T.exp(T.mul(a, a))));
    assert.equal(y.requiresGrad, false);
    assert.equal(T.liveTensorCount(), before + 1);
    assert.throws(() => T.backward(y), /backward\(\): the tensor \[2\] does not require grad/);
    y.dispose();
    assert.equal(T.liveTensorCount(), before);
    a.dispose();
  });
});
