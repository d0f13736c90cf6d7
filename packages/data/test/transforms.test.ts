import assert from 'node:assert/strict';
import type { TransformConfig } from '@segtrain/config';
import { describe, it } from 'vitest';
import { SeededRandom } from '../src/random.js';
import {
  enhanceBrightness,
  enhanceColor,
  enhanceContrast,
  enhanceSharpness,
  hsvToRgbPil,
  luma,
  rgbToHsvPil,
  shiftHue,
} from '../src/transforms/color.js';
import {
  boxBlurU8,
  gaussianBlurU8,
  medianBlurU8,
  rotationMatrix,
  warpAffineImage,
  warpAffineLabel,
} from '../src/transforms/image-ops.js';
import { applyTransforms, buildTransforms } from '../src/transforms/index.js';
import { linspace, roundHalfEven } from '../src/transforms/pymath.js';
import { resizeImage, resizeLabelNearest } from '../src/transforms/resize.js';
import type { RandomSource, Sample } from '../src/types.js';

// Resolved configs as the zod schemas produce them (defaults filled).
const pad = { im_padding_value: 127.5, label_padding_value: 255 } as const;
const defaults = {
  RandomPaddingCrop: {
    crop_size: [512, 512],
    ...pad,
    category_max_ratio: 1,
    ignore_index: 255,
    loop_times: 10,
  },
  RandomDistort: {
    brightness_range: 0.5,
    brightness_prob: 0.5,
    contrast_range: 0.5,
    contrast_prob: 0.5,
    saturation_range: 0.5,
    saturation_prob: 0.5,
    hue_range: 18,
    hue_prob: 0.5,
    sharpness_range: 0.5,
    sharpness_prob: 0,
  },
  Resize: { target_size: [512, 512], keep_ratio: false, size_divisor: null, interp: 'LINEAR' },
} as const;

function sample(
  h: number,
  w: number,
  c: number,
  values: ArrayLike<number> | ((i: number) => number),
  label: ArrayLike<number> | null = null,
  transformLabel = true,
): Sample {
  const img = new Float32Array(h * w * c);
  for (let i = 0; i < img.length; i++) img[i] = typeof values === 'function' ? values(i) : (values[i] ?? 0);
  return {
    img,
    height: h,
    width: w,
    channels: c,
    label: label === null ? null : Uint8Array.from(label),
    labelHeight: h,
    labelWidth: w,
    transformLabel,
    transInfo: [],
  };
}

function run(s: Sample, configs: readonly TransformConfig[], seed = 1): Sample {
  return applyTransforms(s, buildTransforms(configs), new SeededRandom(seed));
}

function close(actual: ArrayLike<number>, expected: readonly number[], tol = 1e-4): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] ?? Number.NaN;
    const e = expected[i] ?? Number.NaN;
    assert.ok(Math.abs(a - e) <= tol, `index ${i}: ${a} != ${e}`);
  }
}

/** A RandomSource that replays fixed values for next()/uniform() draws. */
function scripted(values: readonly number[]): RandomSource {
  let i = 0;
  const next = (): number => {
    const v = values[i++];
    if (v === undefined) throw new Error('scripted random exhausted');
    return v;
  };
  return {
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
  };
}

describe('resize primitives', () => {
  it('bilinear uses half-pixel centres with clamped borders (1×2 → 1×4)', () => {
    close(resizeImage(Float32Array.from([0, 10]), 1, 2, 1, 1, 4, 'LINEAR'), [0, 2.5, 7.5, 10]);
  });

  it('bilinear 2×3 → 3×2 matches a hand computation, per channel', () => {
    // Channel 1 is twice channel 0, so channels must stay independent.
    const src = [0, 30, 60, 90, 120, 150].flatMap((v) => [v, 2 * v]);
    const out = resizeImage(Float32Array.from(src), 2, 3, 2, 3, 2, 'LINEAR');
    // x: dst 0 → src 0.25, dst 1 → src 1.75; y: dst 0 → -1/6 (clamped to row 0), 1 → 0.5, 2 → 1.17 (row 1).
    const expected = [7.5, 52.5, 52.5, 97.5, 97.5, 142.5].flatMap((v) => [v, 2 * v]);
    close(out, expected);
  });

  it('nearest maps with floor(dst·src/dst), no half-pixel offset', () => {
    assert.deepEqual([...resizeLabelNearest(Uint8Array.from([7, 9]), 1, 2, 1, 5)], [7, 7, 7, 9, 9]);
    assert.deepEqual([...resizeLabelNearest(Uint8Array.from([0, 1, 2, 3, 4]), 1, 5, 1, 2)], [0, 2]);
    // Image NEAREST follows the same mapping.
    close(resizeImage(Float32Array.from([7, 9]), 1, 2, 1, 1, 5, 'NEAREST'), [7, 7, 7, 9, 9]);
  });

  it('AREA averages blocks when shrinking; CUBIC and LANCZOS4 keep constants', () => {
    close(resizeImage(Float32Array.from([0, 10, 20, 30]), 1, 4, 1, 1, 2, 'AREA'), [5, 25]);
    // 3 → 2: cells of 1.5 pixels: (0 + 0.5·10)/1.5 and (0.5·10 + 20)/1.5.
    close(resizeImage(Float32Array.from([0, 10, 20]), 1, 3, 1, 1, 2, 'AREA'), [5 / 1.5, 25 / 1.5]);
    close(resizeImage(new Float32Array(12).fill(42), 3, 4, 1, 5, 7, 'CUBIC'), new Array(35).fill(42));
    close(resizeImage(new Float32Array(12).fill(42), 3, 4, 1, 5, 7, 'LANCZOS4'), new Array(35).fill(42));
    // Cubic (A = −0.75) 4 → 8: dst 3 samples src 1.25, weights at x = 0.25 are
    // (−0.10546875, 0.87890625, 0.26171875, −0.03515625) on src 0..3.
    const ramp = resizeImage(Float32Array.from([0, 0, 10, 10]), 1, 4, 1, 1, 8, 'CUBIC');
    close([ramp[3] ?? 0, ramp[4] ?? 0], [10 * (0.26171875 - 0.03515625), 10 * (0.87890625 - 0.10546875)]);
  });
});

describe('Python numerics', () => {
  it('round ties to even', () => {
    assert.equal(roundHalfEven(0.5 * 5), 2);
    assert.equal(roundHalfEven(3.5), 4);
    assert.equal(roundHalfEven(2.500001), 3);
    assert.equal(roundHalfEven(0.5), 0);
    assert.equal(roundHalfEven(1.5), 2);
  });

  it('linspace scale sets of the seed configs', () => {
    const lite = linspace(0.125, 1.5, Math.trunc((1.5 - 0.125) / 0.125 + 1));
    assert.equal(lite.length, 12);
    close(
      lite,
      Array.from({ length: 12 }, (_, i) => 0.125 * (i + 1)),
      1e-12,
    );
    const base = linspace(0.5, 2.0, Math.trunc((2.0 - 0.5) / 0.25 + 1));
    assert.deepEqual(base, [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]);
  });
});

describe('ResizeStepScaling', () => {
  it('sizes round half to even: 0.5·5 → 2, 0.5·7 → 4', () => {
    const cfg: TransformConfig = {
      type: 'ResizeStepScaling',
      min_scale_factor: 0.5,
      max_scale_factor: 0.5,
      scale_step_size: 0.25,
    };
    const out = run(
      sample(7, 5, 1, (i) => i, new Array(35).fill(3)),
      [cfg],
    );
    assert.equal(out.width, 2);
    assert.equal(out.height, 4);
    assert.equal(out.img.length, 8);
    assert.equal(out.labelWidth, 2);
    assert.equal(out.labelHeight, 4);
    assert.deepEqual([...(out.label ?? [])], new Array(8).fill(3));
  });

  it('draws only from the 12 PP-LiteSeg scales and reaches all of them', () => {
    const cfg: TransformConfig = {
      type: 'ResizeStepScaling',
      min_scale_factor: 0.125,
      max_scale_factor: 1.5,
      scale_step_size: 0.125,
    };
    const t = buildTransforms([cfg]);
    const widths = new Set<number>();
    for (let seed = 0; seed < 300; seed++) {
      widths.add(
        applyTransforms(
          sample(16, 16, 1, () => 0),
          t,
          new SeededRandom(seed),
        ).width,
      );
    }
    assert.deepEqual(
      [...widths].sort((a, b) => a - b),
      Array.from({ length: 12 }, (_, i) => 2 * (i + 1)),
    );
  });

  it('leaves the label alone in validation', () => {
    const cfg: TransformConfig = {
      type: 'ResizeStepScaling',
      min_scale_factor: 2,
      max_scale_factor: 2,
      scale_step_size: 0,
    };
    const out = run(
      sample(2, 3, 1, () => 1, [0, 1, 2, 3, 4, 5], false),
      [cfg],
    );
    assert.equal(out.height, 4);
    assert.equal(out.width, 6);
    assert.equal(out.labelHeight, 2);
    assert.equal(out.labelWidth, 3);
    assert.deepEqual([...(out.label ?? [])], [0, 1, 2, 3, 4, 5]);
  });
});

describe('RandomPaddingCrop', () => {
  it('pads bottom/right with 127.5 (every channel) and 255 before cropping', () => {
    const cfg: TransformConfig = {
      type: 'RandomPaddingCrop',
      ...defaults.RandomPaddingCrop,
      crop_size: [4, 3],
    };
    const s = sample(2, 3, 3, (i) => i + 1, [1, 2, 3, 4, 5, 6]);
    const out = run(s, [cfg]);
    assert.equal(out.width, 4);
    assert.equal(out.height, 3);
    const P = 127.5;
    const px = (i: number) => [3 * i + 1, 3 * i + 2, 3 * i + 3];
    close(out.img, [
      ...px(0),
      ...px(1),
      ...px(2),
      P,
      P,
      P,
      ...px(3),
      ...px(4),
      ...px(5),
      P,
      P,
      P,
      ...new Array(12).fill(P),
    ]);
    assert.deepEqual([...(out.label ?? [])], [1, 2, 3, 255, 4, 5, 6, 255, 255, 255, 255, 255]);
  });

  it('accepts a per-channel padding list', () => {
    const cfg: TransformConfig = {
      type: 'RandomPaddingCrop',
      ...defaults.RandomPaddingCrop,
      crop_size: [2, 1],
      im_padding_value: [1, 2, 3],
    };
    const out = run(
      sample(1, 1, 3, () => 9),
      [cfg],
    );
    close(out.img, [9, 9, 9, 1, 2, 3]);
  });

  it('is a no-op at exactly the crop size and crops a window otherwise', () => {
    const cfg: TransformConfig = {
      type: 'RandomPaddingCrop',
      ...defaults.RandomPaddingCrop,
      crop_size: [3, 2],
    };
    const s = sample(2, 3, 1, (i) => i);
    assert.equal(run(s, [cfg]), s);
    const big = sample(
      6,
      8,
      1,
      (i) => i,
      Array.from({ length: 48 }, (_, i) => i),
    );
    const cfg2: TransformConfig = {
      type: 'RandomPaddingCrop',
      ...defaults.RandomPaddingCrop,
      crop_size: [3, 2],
    };
    for (let seed = 0; seed < 20; seed++) {
      const out = run(big, [cfg2], seed);
      const first = out.img[0] ?? 0;
      const y0 = Math.floor(first / 8);
      const x0 = first % 8;
      assert.ok(y0 <= 4 && x0 <= 5);
      const expected = [0, 1, 2, 8, 9, 10].map((d) => first + d);
      close(out.img, expected);
      assert.deepEqual([...(out.label ?? [])], expected);
    }
  });

  it('retries crops dominated by one class (category_max_ratio)', () => {
    // Columns 0-3 are class 0, columns 4-7 alternate classes 1 and 2; image value = column.
    const label = Array.from({ length: 32 }, (_, i) => {
      const x = i % 8;
      return x < 4 ? 0 : x % 2 === 0 ? 1 : 2;
    });
    const s = sample(4, 8, 1, (i) => i % 8, label);
    const base = {
      ...defaults.RandomPaddingCrop,
      type: 'RandomPaddingCrop',
      crop_size: [4, 4],
    } satisfies TransformConfig;
    const offsets = (ratio: number) => {
      const seen = new Set<number>();
      for (let seed = 0; seed < 60; seed++) {
        const out = run(s, [{ ...base, category_max_ratio: ratio, loop_times: 40 }], seed);
        const x0 = out.img[0] ?? -1;
        // Image and label are cropped with the same window.
        assert.deepEqual(
          [...(out.label ?? [])],
          label.filter((_, i) => i % 8 >= x0 && i % 8 < x0 + 4),
        );
        seen.add(x0);
      }
      return seen;
    };
    // Offsets 0 (share 1) and 1 (share 0.75) fail `< 0.75`; 2, 3, 4 pass (share 0.5).
    assert.deepEqual(
      [...offsets(0.75)].sort((a, b) => a - b),
      [2, 3, 4],
    );
    assert.deepEqual(
      [...offsets(1)].sort((a, b) => a - b),
      [0, 1, 2, 3, 4],
    );
  });
});

describe('flips', () => {
  const img = [0, 1, 2, 3, 4, 5];
  it('horizontal and vertical flip image and label in train', () => {
    const h = run(sample(2, 3, 1, img, img), [{ type: 'RandomHorizontalFlip', prob: 1 }]);
    close(h.img, [2, 1, 0, 5, 4, 3]);
    assert.deepEqual([...(h.label ?? [])], [2, 1, 0, 5, 4, 3]);
    const v = run(sample(2, 3, 1, img, img), [{ type: 'RandomVerticalFlip', prob: 1 }]);
    close(v.img, [3, 4, 5, 0, 1, 2]);
    assert.deepEqual([...(v.label ?? [])], [3, 4, 5, 0, 1, 2]);
  });

  it('keeps pixels whole across channels, never flips with prob 0, and spares the val label', () => {
    const rgb = run(sample(1, 2, 3, [1, 2, 3, 4, 5, 6]), [{ type: 'RandomHorizontalFlip', prob: 1 }]);
    close(rgb.img, [4, 5, 6, 1, 2, 3]);
    const none = run(sample(2, 3, 1, img, img), [{ type: 'RandomHorizontalFlip', prob: 0 }]);
    close(none.img, img);
    const val = run(sample(2, 3, 1, img, img, false), [{ type: 'RandomHorizontalFlip', prob: 1 }]);
    close(val.img, [2, 1, 0, 5, 4, 3]);
    assert.deepEqual([...(val.label ?? [])], img);
  });
});

describe('Normalize', () => {
  it('maps [0, 255] to [-1, 1] with the defaults', () => {
    const out = run(sample(1, 3, 1, [0, 127.5, 255]), [{ type: 'Normalize', mean: [0.5], std: [0.5] }]);
    close(out.img, [-1, 0, 1], 1e-6);
  });

  it('broadcasts per-channel mean/std and rejects mismatched lengths', () => {
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const out = run(sample(1, 1, 3, [255, 0, 51]), [{ type: 'Normalize', mean, std }]);
    close(out.img, [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225], 1e-5);
    assert.throws(
      () => run(sample(1, 1, 3, [1, 2, 3]), [{ type: 'Normalize', mean: [0.5, 0.5], std: [0.5] }]),
      /mean has 2 values but the image has 3 channels/,
    );
  });
});

describe('size-changing transforms and trans_info', () => {
  it('Padding pads bottom/right, records the size before, and names sizes on error', () => {
    const out = run(
      sample(3, 5, 1, () => 1, new Array(15).fill(1)),
      [{ type: 'Padding', target_size: [6, 4], ...pad }],
    );
    assert.equal(out.width, 6);
    assert.equal(out.height, 4);
    assert.deepEqual(out.transInfo, [{ op: 'padding', height: 3, width: 5 }]);
    assert.equal(out.img[5], 127.5);
    assert.equal(out.img[6], 1);
    assert.equal(out.label?.[5], 255);
    assert.throws(
      () =>
        run(
          sample(3, 5, 1, () => 1),
          [{ type: 'Padding', target_size: [4, 4], ...pad }],
        ),
      (e: unknown) => e instanceof Error && e.message.includes('(5, 3)') && e.message.includes('(4, 4)'),
    );
  });

  it('Resize records the size before resizing, handles keep_ratio and size_divisor', () => {
    const r = run(
      sample(2, 4, 1, () => 5, new Array(8).fill(2)),
      [{ type: 'Resize', ...defaults.Resize, target_size: [6, 6], keep_ratio: true }],
    );
    // scale = min(6/4, 6/2) = 1.5 → 6 × 3.
    assert.deepEqual([r.width, r.height, r.labelWidth, r.labelHeight], [6, 3, 6, 3]);
    assert.deepEqual(r.transInfo, [{ op: 'resize', height: 2, width: 4 }]);
    const d = run(
      sample(2, 4, 1, () => 5),
      [{ type: 'Resize', ...defaults.Resize, target_size: [6, 6], keep_ratio: true, size_divisor: 4 }],
    );
    assert.deepEqual([d.width, d.height], [8, 4]);
    const plain = run(
      sample(2, 4, 1, () => 5, null),
      [{ type: 'Resize', ...defaults.Resize, target_size: 3 }],
    );
    assert.deepEqual([plain.width, plain.height], [3, 3]);
    close(plain.img, new Array(9).fill(5));
  });

  it('Resize in validation leaves the label at full size and chains trans_info', () => {
    const out = run(
      sample(4, 6, 1, () => 5, new Array(24).fill(1), false),
      [
        { type: 'Resize', ...defaults.Resize, target_size: [3, 2] },
        { type: 'Padding', target_size: [4, 4], ...pad },
      ],
    );
    assert.deepEqual(out.transInfo, [
      { op: 'resize', height: 4, width: 6 },
      { op: 'padding', height: 2, width: 3 },
    ]);
    assert.deepEqual([out.labelHeight, out.labelWidth, out.label?.length], [4, 6, 24]);
  });

  it('ResizeByShort / ResizeByLong / LimitLong / ResizeRangeScaling sizes', () => {
    const s = sample(3, 5, 1, () => 1);
    const short = run(s, [{ type: 'ResizeByShort', short_size: 4 }]);
    assert.deepEqual([short.width, short.height], [7, 4]); // round(5·4/3 = 6.67)
    assert.deepEqual(short.transInfo, [{ op: 'resize', height: 3, width: 5 }]);
    const long = run(s, [{ type: 'ResizeByLong', long_size: 10 }]);
    assert.deepEqual([long.width, long.height], [10, 6]);
    const lim = run(s, [{ type: 'LimitLong', max_long: 4, min_long: null }]);
    assert.deepEqual([lim.width, lim.height], [4, 2]); // round(3·0.8 = 2.4)
    const same = run(s, [{ type: 'LimitLong', max_long: 8, min_long: null }]);
    assert.deepEqual([same.width, same.height, same.transInfo.length], [5, 3, 1]);
    const range = run(s, [{ type: 'ResizeRangeScaling', min_value: 10, max_value: 10 }]);
    assert.deepEqual([range.width, range.height, range.transInfo.length], [10, 6, 0]);
  });

  it('PaddingByAspectRatio and ScalePadding', () => {
    const p = run(
      sample(2, 3, 1, () => 1),
      [{ type: 'PaddingByAspectRatio', aspect_ratio: 1, ...pad }],
    );
    assert.deepEqual([p.width, p.height], [3, 3]);
    assert.deepEqual(p.transInfo, [{ op: 'padding', height: 2, width: 3 }]);
    const sp = run(sample(1, 3, 1, [10.7, 20, 30], [1, 2, 3]), [
      { type: 'ScalePadding', target_size: [3, 3], ...pad },
    ]);
    // Centred on a 3×3 canvas, cast to uint8 (127.5 → 127, 10.7 → 10), resized 3→3 (identity).
    close(sp.img, [127, 127, 127, 10, 20, 30, 127, 127, 127]);
    assert.deepEqual([...(sp.label ?? [])], [255, 255, 255, 1, 2, 3, 255, 255, 255]);
  });

  it('RandomCenterCrop and RandomScaleAspect crop windows of the input', () => {
    const s = sample(
      10,
      10,
      1,
      (i) => i,
      Array.from({ length: 100 }, (_, i) => i),
    );
    for (let seed = 0; seed < 10; seed++) {
      const out = run(s, [{ type: 'RandomCenterCrop', retain_ratio: [0.5, 0.5] }], seed);
      assert.ok(out.width > 5 && out.width <= 10 && out.height > 5 && out.height <= 10);
      const first = out.img[0] ?? 0;
      assert.equal(out.img[out.width * out.height - 1], first + (out.height - 1) * 10 + out.width - 1);
      assert.deepEqual([...(out.label ?? [])], [...out.img]);
      const sa = run(s, [{ type: 'RandomScaleAspect', min_scale: 0.5, aspect_ratio: 0.33 }], seed);
      assert.deepEqual([sa.width, sa.height, sa.labelWidth, sa.labelHeight], [10, 10, 10, 10]);
    }
  });
});

describe('rotation and blur', () => {
  it('warpAffine samples bilinearly with a constant border (90° case by hand)', () => {
    // RandomRotation's matrix for a 2×3 image at 90°: canvas 2 wide × 3 high, centre (1, 1).
    const m = [...rotationMatrix(1, 1, 90)] as [number, number, number, number, number, number];
    m[2] += 2 / 2 - 1;
    m[5] += 3 / 2 - 1;
    const out = warpAffineImage(
      Float32Array.from([0, 1, 2, 3, 4, 5]),
      2,
      3,
      1,
      m,
      3,
      2,
      Float32Array.from([100]),
    );
    // dst(x, y) samples src(2.5 − y, x): the top row straddles the border.
    close(out, [51, 52.5, 1.5, 4.5, 0.5, 3.5]);
  });

  it('warpAffine nearest for labels uses the border value outside', () => {
    const shift: [number, number, number, number, number, number] = [1, 0, 1, 0, 1, 0];
    const out = warpAffineLabel(Uint8Array.from([1, 2, 3, 4]), 2, 2, shift, 2, 3, 255);
    assert.deepEqual([...out], [255, 1, 2, 255, 3, 4]);
  });

  it('RandomRotation enlarges the canvas and moves the label along', () => {
    const s = sample(10, 20, 3, () => 50, new Array(200).fill(1));
    const [t] = buildTransforms([{ type: 'RandomRotation', max_rotation: 15, ...pad }]);
    assert.ok(t);
    // uniform(−15, 15) with draw 0.9 → 12°: canvas int(10·sin + 20·cos) × int(10·cos + 20·sin) = 21 × 13.
    const out = t.apply(s, scripted([0.9]));
    assert.deepEqual([out.width, out.height, out.labelWidth, out.labelHeight], [21, 13, 21, 13]);
    assert.equal(out.label?.[0], 255);
    assert.equal(out.img[0], 127.5);
    // The centre stays inside the rotated image.
    const mid = (6 * 21 + 10) * 3;
    assert.equal(out.img[mid], 50);
    assert.equal(out.label?.[6 * 21 + 10], 1);
    const none = run(s, [{ type: 'RandomRotation', max_rotation: 0, ...pad }]);
    assert.equal(none, s);
  });

  it('gaussian (reflect-101 border), box and median (replicate border) blurs', () => {
    const center = Uint8Array.from([0, 0, 0, 0, 160, 0, 0, 0, 0]);
    assert.deepEqual([...gaussianBlurU8(center, 3, 3, 1, 3)], new Array(9).fill(40));
    assert.deepEqual([...boxBlurU8(Uint8Array.from([0, 30, 60]), 1, 3, 1, 3)], [20, 30, 40]);
    assert.deepEqual([...medianBlurU8(Uint8Array.from([1, 9, 2, 8, 3]), 1, 5, 1, 3)], [1, 2, 8, 3, 3]);
    const big = Uint8Array.from({ length: 81 }, (_, i) => (i * 37) % 256);
    const m = medianBlurU8(big, 9, 9, 1, 9);
    // Brute-force median of the replicate-padded 9×9 window at (4, 4) = the whole image.
    const sorted = [...big].sort((a, b) => a - b);
    assert.equal(m[40], sorted[40]);
  });

  it('RandomBlur truncates to uint8 and blurs; prob 0 leaves the image alone', () => {
    const s = sample(5, 5, 1, (i) => (i === 12 ? 200.9 : 0.9));
    const out = run(s, [{ type: 'RandomBlur', prob: 1, blur_type: 'median' }]);
    close(out.img, new Array(25).fill(0));
    const g = run(s, [{ type: 'RandomBlur', prob: 1, blur_type: 'gaussian' }]);
    assert.ok((g.img[12] ?? 0) < 200 && (g.img[12] ?? 0) > 0);
    assert.equal(run(s, [{ type: 'RandomBlur', prob: 0, blur_type: 'gaussian' }]), s);
  });

  it('RandomNoise adds clipped noise; sigma 0 is the identity', () => {
    const s = sample(8, 8, 3, (i) => (i % 2 ? 255 : 0));
    const same = run(s, [{ type: 'RandomNoise', prob: 1, max_sigma: 0 }]);
    close(same.img, [...s.img]);
    const noisy = run(s, [{ type: 'RandomNoise', prob: 1, max_sigma: 50 }], 5);
    assert.ok(noisy.img.every((v) => v >= 0 && v <= 255));
    assert.ok(noisy.img.some((v, i) => v !== s.img[i]));
  });
});

describe('PIL colour semantics', () => {
  it('brightness: trunc(f·v), clipped', () => {
    assert.deepEqual([...enhanceBrightness(Uint8Array.from([100, 200, 10]), 3, 1.5)], [150, 255, 15]);
    assert.deepEqual([...enhanceBrightness(Uint8Array.from([101]), 1, 0.5)], [50]);
  });

  it('contrast: blend with the rounded mean luma', () => {
    // Luma 0 and 255 → mean 127.5 → int(128.0) = 128; 128 + 0.5·(255 − 128) = 191.5 → 191.
    const out = enhanceContrast(Uint8Array.from([0, 0, 0, 255, 255, 255]), 3, 0.5);
    assert.deepEqual([...out], [64, 64, 64, 191, 191, 191]);
  });

  it('saturation: blend with the pixel luma (PIL L24 rounding)', () => {
    assert.equal(luma(200, 100, 50), 124);
    assert.equal(luma(255, 255, 255), 255);
    // 0.587 rounds up: PIL adds 0x8000 before the shift.
    assert.equal(luma(0, 1, 0), 1);
    const px = Uint8Array.from([200, 100, 50]);
    assert.deepEqual([...enhanceColor(px, 3, 0)], [124, 124, 124]);
    assert.deepEqual([...enhanceColor(px, 3, 2)], [255, 76, 0]);
    assert.deepEqual([...enhanceColor(px, 3, 1)], [200, 100, 50]);
  });

  it('sharpness: blend with SMOOTH (kernel /13), border untouched', () => {
    const img = Uint8Array.from([0, 0, 0, 0, 130, 0, 0, 0, 0]);
    assert.deepEqual([...enhanceSharpness(img, 3, 3, 1, 0)], [0, 0, 0, 0, 50, 0, 0, 0, 0]);
    assert.deepEqual([...enhanceSharpness(img, 3, 3, 1, 2)], [0, 0, 0, 0, 210, 0, 0, 0, 0]);
  });

  it('HSV conversion follows PIL (H in 0–255) and hue shifts wrap', () => {
    assert.deepEqual(rgbToHsvPil(255, 0, 0), [0, 255, 255]);
    assert.deepEqual(rgbToHsvPil(0, 0, 255), [170, 255, 255]);
    assert.deepEqual(hsvToRgbPil(85, 255, 255), [0, 255, 0]);
    assert.deepEqual([...shiftHue(Uint8Array.from([255, 0, 0]), 3, 85)], [0, 255, 0]);
    // trunc(0 − 85.3) = −85 → wraps to 171.
    assert.deepEqual([...shiftHue(Uint8Array.from([255, 0, 0]), 3, -85.3)], [6, 0, 255]);
  });

  it('a zero hue shift is the identity within the HSV quantisation', () => {
    const rnd = new SeededRandom(7);
    const img = Uint8Array.from({ length: 3 * 500 }, () => rnd.int(0, 255));
    const out = shiftHue(img, 3, 0);
    let maxErr = 0;
    let sum = 0;
    for (let i = 0; i < img.length; i++) {
      const e = Math.abs((out[i] ?? 0) - (img[i] ?? 0));
      maxErr = Math.max(maxErr, e);
      sum += e;
    }
    // PIL truncates H to 1/255 of the circle, which moves a channel by up to 6·v·s/255.
    assert.ok(maxErr <= 6, `max error ${maxErr}`);
    assert.ok(sum / img.length < 1, `mean error ${sum / img.length}`);
    // Grays and primaries survive exactly.
    const exact = Uint8Array.from([0, 0, 0, 77, 77, 77, 255, 0, 0, 0, 255, 0, 0, 0, 255]);
    assert.deepEqual([...shiftHue(exact, 3, 0)], [...exact]);
    // Yellow's H = 255/6 = 42.5 truncates to 42, so PIL returns (255, 252, 0).
    assert.deepEqual([...shiftHue(Uint8Array.from([255, 255, 0]), 3, 0)], [255, 252, 0]);
  });

  it('RandomDistort truncates to uint8 even when no op fires, and applies factors', () => {
    const cfg: TransformConfig = {
      type: 'RandomDistort',
      ...defaults.RandomDistort,
      brightness_prob: 0,
      contrast_prob: 0,
      saturation_prob: 0,
      hue_prob: 0,
    };
    const out = run(sample(1, 2, 3, [10.7, 20.2, 30.9, 0, 255, 300]), [cfg]);
    close(out.img, [10, 20, 30, 0, 255, 255]);
    // Scripted draws: shuffle (4 ints), then per op a prob draw and, if it fires, a factor.
    // Shuffle draws j = 0 each step, which turns PaddleSeg's order [b, c, s, sh, h] into [c, s, sh, h, b].
    const only = { ...cfg, brightness_prob: 1 };
    const r = scripted([0, 0, 0, 0, 0.9, 0.9, 0.9, 0.9, 0.5, 1]);
    const [t] = buildTransforms([only]);
    assert.ok(t);
    // Brightness factor = 0.5 + 1·1 = 1.5 with range 0.5.
    const b = t.apply(sample(1, 1, 3, [10, 100, 200]), r);
    close(b.img, [15, 150, 255]);
  });
});

describe('grayscale', () => {
  it('RandomDistort on one channel has no hue op and stays in range', () => {
    const cfg: TransformConfig = {
      type: 'RandomDistort',
      ...defaults.RandomDistort,
      brightness_prob: 1,
      contrast_prob: 1,
      saturation_prob: 1,
      hue_prob: 1,
      sharpness_prob: 1,
    };
    const s = sample(4, 4, 1, (i) => i * 16);
    const out = run(s, [cfg], 11);
    assert.equal(out.img.length, 16);
    assert.ok(out.img.every((v) => Number.isInteger(v) && v >= 0 && v <= 255));
  });
});

describe('pipeline', () => {
  const ppLiteSeg: TransformConfig[] = [
    { type: 'ResizeStepScaling', min_scale_factor: 0.125, max_scale_factor: 1.5, scale_step_size: 0.125 },
    { type: 'RandomPaddingCrop', ...defaults.RandomPaddingCrop, crop_size: [64, 32] },
    { type: 'RandomHorizontalFlip', prob: 0.5 },
    {
      type: 'RandomDistort',
      ...defaults.RandomDistort,
      brightness_range: 0.5,
      contrast_range: 0.5,
      saturation_range: 0.5,
    },
    { type: 'Normalize', mean: [0.5], std: [0.5] },
  ];
  const base = () => {
    const rnd = new SeededRandom(99);
    return sample(
      40,
      72,
      3,
      () => rnd.uniform(0, 255),
      Array.from({ length: 40 * 72 }, () => rnd.int(0, 18)),
    );
  };

  it('is deterministic per seed and differs across seeds', () => {
    const s = base();
    const a = run(s, ppLiteSeg, 123);
    const b = run(s, ppLiteSeg, 123);
    assert.deepEqual([a.height, a.width], [32, 64]);
    assert.deepEqual(a.img, b.img);
    assert.deepEqual(a.label, b.label);
    const c = run(s, ppLiteSeg, 124);
    assert.notDeepEqual(a.img, c.img);
  });

  it('never modifies the input sample', () => {
    const s = base();
    const img = s.img.slice();
    const label = s.label?.slice();
    run(s, [...ppLiteSeg, { type: 'RandomVerticalFlip', prob: 1 }], 5);
    assert.deepEqual(s.img, img);
    assert.deepEqual(s.label, label);
    assert.deepEqual(s.transInfo, []);
  });
});
