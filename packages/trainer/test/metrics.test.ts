import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'vitest';
import {
  ConfusionCounts,
  computeMetrics,
  formatEvalLines,
  numpyArrayStr,
  numpyRound,
  numpySum,
} from '../src/metrics.js';

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) <= 1e-12, `${what}: ${a} vs ${b}`);

/** 3 classes, class 2 absent from labels; one pixel labelled 255 predicted as class 2. */
function caseA(): ConfusionCounts {
  const c = new ConfusionCounts(3, 255);
  c.add([0, 1, 1, 1, 2], [0, 0, 1, 1, 255]);
  c.add(new Uint8Array([0, 0]), new Int32Array([0, 1]));
  return c;
}

/** Confusion matrix rows = label, cols = pred: [[20, 5], [10, 15]]. */
function kappaCase(): ConfusionCounts {
  const pred: number[] = [];
  const label: number[] = [];
  const cells: Array<[number, number, number]> = [
    [0, 0, 20],
    [0, 1, 5],
    [1, 0, 10],
    [1, 1, 15],
  ];
  for (const [l, p, k] of cells) {
    for (let i = 0; i < k; i++) {
      label.push(l);
      pred.push(p);
    }
  }
  const c = new ConfusionCounts(2);
  c.add(pred, label);
  return c;
}

describe('ConfusionCounts', () => {
  it('counts like calculate_area and leaves ignore pixels out of every count', () => {
    const c = caseA();
    assert.deepEqual(Array.from(c.intersect), [2, 2, 0]);
    assert.deepEqual(Array.from(c.predArea), [3, 3, 0]);
    assert.deepEqual(Array.from(c.labelArea), [3, 3, 0]);
  });

  it('labels outside [0, n) other than ignore count in pred area only', () => {
    const c = new ConfusionCounts(3, 255);
    c.add([1, 1, 7], [5, 1, 7]);
    assert.deepEqual(Array.from(c.intersect), [0, 1, 0]);
    assert.deepEqual(Array.from(c.predArea), [0, 2, 0]);
    assert.deepEqual(Array.from(c.labelArea), [0, 1, 0]);
  });

  it('an in-range ignore index is excluded too', () => {
    const c = new ConfusionCounts(3, 0);
    c.add([0, 1, 2, 0], [0, 1, 2, 2]);
    assert.deepEqual(Array.from(c.labelArea), [0, 1, 2]);
    assert.deepEqual(Array.from(c.predArea), [1, 1, 1]);
  });

  it('rejects mismatched sizes', () => {
    assert.throws(() => new ConfusionCounts(2).add([0, 1], [0]), /sizes differ/);
  });

  it('merge sums counts and equals adding everything to one accumulator', () => {
    const a = new ConfusionCounts(3);
    a.add([0, 1, 1, 1, 2], [0, 0, 1, 1, 255]);
    const b = new ConfusionCounts(3);
    b.add([0, 0], [0, 1]);
    assert.deepEqual(a.merge(b).toJSON(), caseA().toJSON());
    assert.throws(() => a.merge(new ConfusionCounts(4)), /cannot merge/);
    assert.throws(() => a.merge(new ConfusionCounts(3, 0)), /cannot merge/);
  });

  it('toJSON / fromJSON round trip through JSON text, with validation', () => {
    const c = caseA();
    const back = ConfusionCounts.fromJSON(JSON.parse(JSON.stringify(c)));
    assert.deepEqual(back.toJSON(), c.toJSON());
    assert.equal(back.ignoreIndex, 255);
    assert.throws(() => ConfusionCounts.fromJSON({ ...c.toJSON(), predArea: [1, 2] }), /predArea/);
    assert.throws(() => ConfusionCounts.fromJSON({ ...c.toJSON(), labelArea: [1, -1, 0] }), /labelArea\[1\]/);
  });
});

describe('computeMetrics', () => {
  it('hand-made 3-class case: absent class scores 1 in mIoU, excluded from miouPresent', () => {
    const m = computeMetrics(caseA());
    assert.deepEqual(m.classIou, [0.5, 0.5, 1]);
    close(m.miou, 2 / 3, 'miou');
    assert.deepEqual(m.presentClasses, [0, 1]);
    assert.equal(m.miouPresent, 0.5);
    close(m.acc, 4 / 6, 'acc');
    close(m.kappa, 1 / 3, 'kappa');
    assert.deepEqual(m.classPrecision, [2 / 3, 2 / 3, 0]);
    assert.deepEqual(m.classRecall, [2 / 3, 2 / 3, 0]);
    assert.deepEqual(m.classDice, [4 / 6, 4 / 6, 0]);
    close(m.mdice, 4 / 9, 'mdice');
  });

  it('Kappa on a hand-computed 2×2 matrix: po 0.7, pe 0.5 → 0.4', () => {
    const m = computeMetrics(kappaCase());
    close(m.kappa, 0.4, 'kappa');
    close(m.acc, 0.7, 'acc');
    close(m.classIou[0] as number, 20 / 35, 'iou0');
    close(m.classIou[1] as number, 15 / 30, 'iou1');
    close(m.classPrecision[0] as number, 20 / 30, 'p0');
    close(m.classRecall[1] as number, 15 / 25, 'r1');
  });

  it('all-zero counts: NaN only where PaddleSeg divides 0 by 0 (Acc, Kappa)', () => {
    const m = computeMetrics(new ConfusionCounts(4));
    assert.equal(m.miou, 1);
    assert.deepEqual(m.classIou, [1, 1, 1, 1]);
    assert.equal(m.mdice, 0);
    assert.deepEqual(m.classPrecision, [0, 0, 0, 0]);
    assert.deepEqual(m.classRecall, [0, 0, 0, 0]);
    assert.ok(Number.isNaN(m.acc));
    assert.ok(Number.isNaN(m.kappa));
    assert.deepEqual(m.presentClasses, []);
    assert.ok(Number.isNaN(m.miouPresent));
    assert.equal(formatEvalLines(m, 0)[0], '[EVAL] #Images: 0 mIoU: 1.0000 Acc: nan Kappa: nan Dice: 0.0000');
  });

  it('a perfect single-class prediction has pe = 1, so Kappa is NaN as in PaddleSeg', () => {
    const c = new ConfusionCounts(2);
    c.add([0, 0, 0], [0, 0, 0]);
    const m = computeMetrics(c);
    assert.ok(Number.isNaN(m.kappa));
    assert.equal(m.acc, 1);
    assert.equal(m.miou, 1);
    assert.equal(m.miouPresent, 1);
  });
});

describe('numpy emulation', () => {
  it('numpySum matches np.sum (pairwise) values recorded from numpy 2.4', () => {
    const expected: Record<number, [number, number]> = {
      5: [3.2833333333333337, 0.6566666666666667],
      9: [5.028968253968254, 0.5587742504409171],
      37: [14.801586223821667, 0.4000428709140991],
      130: [43.848591338265976, 0.3372968564481998],
      300: [95.98266388029951, 0.3199422129343317],
    };
    for (const [nText, [sum, mean]] of Object.entries(expected)) {
      const n = Number(nText);
      const a = Array.from({ length: n }, (_, i) => 1 / (i + 1) + (i % 7) * 0.1);
      assert.equal(numpySum(a), sum, `sum n=${n}`);
      assert.equal(numpySum(a) / n, mean, `mean n=${n}`);
    }
    // Naive left-to-right summation differs here, which is why the pairwise order is reproduced.
    const a300 = Array.from({ length: 300 }, (_, i) => 1 / (i + 1) + (i % 7) * 0.1);
    assert.notEqual(
      a300.reduce((s, v) => s + v, 0),
      95.98266388029951,
    );
  });

  it('numpyRound rounds half to even on the scaled value', () => {
    assert.equal(numpyRound(0.66666, 4), 0.6667);
    assert.equal(numpyRound(2.5, 0), 2);
    assert.equal(numpyRound(3.5, 0), 4);
    assert.equal(numpyRound(-2.5, 0), -2);
    // Values recorded from numpy: the scaled products land exactly on .5 and go to even.
    assert.equal(numpyRound(0.00005, 4), 0);
    assert.equal(numpyRound(0.12345, 4), 0.1234);
    assert.equal(numpyRound(0.12355, 4), 0.1236);
  });

  it('numpyArrayStr matches str(np.round(arr, 4)) recorded from numpy', () => {
    const cases: Array<[number[], string]> = [
      [[0.95, 0.7, 1.0], '[0.95 0.7  1.  ]'],
      [[1.0, 0.0005, 0.25], '[1.0e+00 5.0e-04 2.5e-01]'],
      [[0, 0], '[0. 0.]'],
      [[1, 1, 1], '[1. 1. 1.]'],
      [[0, 1, 0.0005], '[0.e+00 1.e+00 5.e-04]'],
      [[1e8, 1], '[1.e+08 1.e+00]'],
      [[0.5], '[0.5]'],
      [[0, 0.5], '[0.  0.5]'],
      [[], '[]'],
      [
        [
          0.9512, 0.7, 0.8833, 0.4, 0.5, 0.6012, 0.55, 0.7072, 0.9, 0.6, 0.93, 0.8, 0.6, 0.95, 0.8, 0.85, 0.7,
          0.65, 0.75,
        ],
        '[0.9512 0.7    0.8833 0.4    0.5    0.6012 0.55   0.7072 0.9    0.6\n' +
          ' 0.93   0.8    0.6    0.95   0.8    0.85   0.7    0.65   0.75  ]',
      ],
      [
        [
          0.9812, 0.8477, 0.9202, 0.5351, 0.5859, 0.6249, 0.6766, 0.7658, 0.9201, 0.6285, 0.9451, 0.7906,
          0.5898, 0.9431, 0.7129, 0.8038, 0.6987, 0.5599, 0.7508,
        ],
        '[0.9812 0.8477 0.9202 0.5351 0.5859 0.6249 0.6766 0.7658 0.9201 0.6285\n' +
          ' 0.9451 0.7906 0.5898 0.9431 0.7129 0.8038 0.6987 0.5599 0.7508]',
      ],
      [
        Array.from({ length: 30 }, (_, i) => numpyRound((i + 1) / 31, 4)),
        '[0.0323 0.0645 0.0968 0.129  0.1613 0.1935 0.2258 0.2581 0.2903 0.3226\n' +
          ' 0.3548 0.3871 0.4194 0.4516 0.4839 0.5161 0.5484 0.5806 0.6129 0.6452\n' +
          ' 0.6774 0.7097 0.7419 0.7742 0.8065 0.8387 0.871  0.9032 0.9355 0.9677]',
      ],
      [
        [0.5, 1, 0.25, 1, 0.125, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        '[0.5   1.    0.25  1.    0.125 1.    1.    1.    1.    1.    1.    1.\n' +
          ' 1.    1.    1.    1.    1.    1.   ]',
      ],
      [
        Array.from({ length: 1200 }, (_, i) => numpyRound(i / 1200, 4)),
        '[0.000e+00 8.000e-04 1.700e-03 ... 9.975e-01 9.983e-01 9.992e-01]',
      ],
      [[Number.NaN, 0.5], '[nan 0.5]'],
      [[Number.NaN], '[nan]'],
      [[Number.NEGATIVE_INFINITY, 0.5], '[-inf  0.5]'],
    ];
    for (const [values, expected] of cases) assert.equal(numpyArrayStr(values), expected);
  });
});

describe('formatEvalLines', () => {
  it('prints PaddleSeg lines plus the present-class mIoU', () => {
    assert.deepEqual(formatEvalLines(computeMetrics(caseA()), 2), [
      '[EVAL] #Images: 2 mIoU: 0.6667 Acc: 0.6667 Kappa: 0.3333 Dice: 0.4444',
      '[EVAL] Class IoU: \n[0.5 0.5 1. ]',
      '[EVAL] Class Precision: \n[0.6667 0.6667 0.    ]',
      '[EVAL] Class Recall: \n[0.6667 0.6667 0.    ]',
      '[EVAL] mIoU over 2 classes present: 0.5000',
    ]);
  });
});

/** PaddleSeg 2.8's metric functions and evaluate() prints, fed with counts, for a live cross-check. */
const PADDLESEG_PY = String.raw`
import json, sys
import numpy as np
out = []
for case in json.load(sys.stdin):
    I = np.array(case['intersect'], dtype=np.int64)
    P = np.array(case['predArea'], dtype=np.int64)
    L = np.array(case['labelArea'], dtype=np.int64)
    union = P + L - I
    class_iou = [1 if union[i] == 0 else I[i] / union[i] for i in range(len(I))]
    miou = np.mean(class_iou)
    with np.errstate(invalid='ignore', divide='ignore'):
        acc = np.sum(I) / np.sum(P)
        fI, fP, fL = I.astype(np.float64), P.astype(np.float64), L.astype(np.float64)
        total = np.sum(fL)
        po = np.sum(fI) / total
        pe = np.sum(fP * fL) / (total * total)
        kappa = (po - pe) / (1 - pe)
    prec = [0 if P[i] == 0 else I[i] / P[i] for i in range(len(I))]
    rec = [0 if L[i] == 0 else I[i] / L[i] for i in range(len(I))]
    dice = [0 if P[i] + L[i] == 0 else (2 * I[i]) / (P[i] + L[i]) for i in range(len(I))]
    mdice = np.mean(dice)
    present = [i for i in range(len(I)) if L[i] > 0]
    mp = np.mean([class_iou[i] for i in present]) if present else float('nan')
    out.append([
        "[EVAL] #Images: {} mIoU: {:.4f} Acc: {:.4f} Kappa: {:.4f} Dice: {:.4f}".format(
            case['n'], miou, acc, kappa, mdice),
        "[EVAL] Class IoU: \n" + str(np.round(np.array(class_iou), 4)),
        "[EVAL] Class Precision: \n" + str(np.round(np.array(prec), 4)),
        "[EVAL] Class Recall: \n" + str(np.round(np.array(rec), 4)),
        "[EVAL] mIoU over {} classes present: {:.4f}".format(len(present), mp),
    ])
print(json.dumps(out))
`;

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!hasNumpy)('live cross-check against numpy (skipped without python3 + numpy)', () => {
  it('formatEvalLines equals the Python formulas on random counts', () => {
    let seed = 12345;
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const cases: Array<{ n: number; counts: ConfusionCounts }> = [];
    for (let t = 0; t < 60; t++) {
      const k = 1 + Math.floor(rand() * 25);
      const c = new ConfusionCounts(k);
      const pixels = Math.floor(rand() * 3000);
      const pred = new Int32Array(pixels);
      const label = new Int32Array(pixels);
      // Skewed labels so some classes are absent, some predictions right, a few ignore pixels.
      for (let i = 0; i < pixels; i++) {
        label[i] = rand() < 0.05 ? 255 : Math.floor(rand() ** 3 * k);
        pred[i] = rand() < 0.6 ? (label[i] === 255 ? 0 : (label[i] as number)) : Math.floor(rand() ** 2 * k);
      }
      c.add(pred, label);
      cases.push({ n: t, counts: c });
    }
    const input = JSON.stringify(cases.map(({ n, counts }) => ({ n, ...counts.toJSON() })));
    const r = spawnSync('python3', ['-c', PADDLESEG_PY], { input, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const expected = JSON.parse(r.stdout) as string[][];
    cases.forEach(({ n, counts }, i) => {
      assert.deepEqual(formatEvalLines(computeMetrics(counts), n), expected[i], `case ${i}`);
    });
  });
});
