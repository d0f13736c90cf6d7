import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import type { TuneCandidate } from '../src/device/autotune.js';
import * as T from '../src/index.js';
import { IMPLICIT_GEMM, IMPLICIT_GEMM_TILINGS } from '../src/kernels/conv/implicit-gemm.js';
import {
  convConfig,
  convShapeClass,
  depthwiseConfig,
  registerVariantCandidates,
  rowBlock,
  weightGradCandidates,
} from '../src/kernels/conv.js';
import { type GemmTiling, tilingName } from '../src/kernels/gemm-template.js';
import { assertClose, checkOp, rand, testDevice, withTunedChoices } from '../src/testing/index.js';

type Pads = [number, number, number, number];

interface RefOptions {
  stride: [number, number];
  pads: Pads;
  dilation: [number, number];
  groups: number;
}

/** Plain-loop float64 convolution (cross-correlation), NCHW, weights [Cout, Cin/groups, KH, KW]. */
function convRef(
  x: Float64Array,
  xs: readonly number[],
  w: Float64Array,
  ws: readonly number[],
  b: Float64Array | null,
  o: RefOptions,
): { out: Float64Array; shape: number[] } {
  const [n = 0, cin = 0, h = 0, wd = 0] = xs;
  const [cout = 0, cinPg = 0, kh = 0, kw = 0] = ws;
  const [sh, sw] = o.stride;
  const [pt, pb, pl, pr] = o.pads;
  const [dh, dw] = o.dilation;
  const hout = Math.floor((h + pt + pb - (kh - 1) * dh - 1) / sh) + 1;
  const wout = Math.floor((wd + pl + pr - (kw - 1) * dw - 1) / sw) + 1;
  const coutPg = cout / o.groups;
  const out = new Float64Array(n * cout * hout * wout);
  for (let in_ = 0; in_ < n; in_++)
    for (let oc = 0; oc < cout; oc++) {
      const g = Math.floor(oc / coutPg);
      for (let oy = 0; oy < hout; oy++)
        for (let ox = 0; ox < wout; ox++) {
          let s = b ? (b[oc] ?? 0) : 0;
          for (let icl = 0; icl < cinPg; icl++) {
            const ic = g * cinPg + icl;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - pt + ky * dh;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pl + kx * dw;
                if (ix < 0 || ix >= wd) continue;
                s +=
                  (x[((in_ * cin + ic) * h + iy) * wd + ix] ?? 0) *
                  (w[((oc * cinPg + icl) * kh + ky) * kw + kx] ?? 0);
              }
            }
          }
          out[((in_ * cout + oc) * hout + oy) * wout + ox] = s;
        }
    }
  return { out, shape: [n, cout, hout, wout] };
}

interface Case {
  name: string;
  x: number[];
  w: number[];
  bias: boolean;
  options: T.Conv2dOptions;
  /** Expected resolved [top, bottom, left, right] (checked against resolvePadding). */
  pads: Pads;
  expectOut?: number[];
}

const cases: Case[] = [
  {
    name: '3x3 stride 1 no pad, bias',
    x: [1, 2, 5, 6],
    w: [3, 2, 3, 3],
    bias: true,
    options: {},
    pads: [0, 0, 0, 0],
  },
  {
    name: '3x3 stride 1 pad 1, batch 2, no bias',
    x: [2, 3, 6, 5],
    w: [4, 3, 3, 3],
    bias: false,
    options: { padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: '3x3 stride 2 pad 1, bias',
    x: [2, 2, 7, 9],
    w: [5, 2, 3, 3],
    bias: true,
    options: { stride: 2, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: '5x5 stride 3 pad 2 (weight-gradient row window: 2 taps carried, 3 loaded a position)',
    x: [2, 3, 9, 11],
    w: [4, 3, 5, 5],
    bias: false,
    options: { stride: 3, padding: 2 },
    pads: [2, 2, 2, 2],
  },
  {
    name: '2x2 stride 2, bias (weight-gradient row window: nothing carried)',
    x: [1, 3, 6, 8],
    w: [5, 3, 2, 2],
    bias: true,
    options: { stride: 2 },
    pads: [0, 0, 0, 0],
  },
  {
    name: 'stride [2, 1] pad [1, 0]',
    x: [1, 3, 7, 6],
    w: [4, 3, 3, 2],
    bias: true,
    options: { stride: [2, 1], padding: [1, 0] },
    pads: [1, 1, 0, 0],
  },
  {
    name: 'asymmetric pad [0, 1, 2, 1]',
    x: [1, 2, 6, 7],
    w: [3, 2, 3, 3],
    bias: true,
    options: { padding: [0, 1, 2, 1] },
    pads: [0, 1, 2, 1],
  },
  {
    name: "'same' stride 2 even size (asymmetric)",
    x: [2, 2, 8, 6],
    w: [4, 2, 3, 3],
    bias: true,
    options: { stride: 2, padding: 'same' },
    pads: [0, 1, 0, 1],
    expectOut: [2, 4, 4, 3],
  },
  {
    name: "'same' stride 1 kernel 4 (asymmetric)",
    x: [1, 2, 5, 7],
    w: [3, 2, 4, 4],
    bias: false,
    options: { padding: 'same' },
    pads: [1, 2, 1, 2],
    expectOut: [1, 3, 5, 7],
  },
  {
    name: "'same' stride 2 odd 7x9",
    x: [1, 3, 7, 9],
    w: [4, 3, 3, 3],
    bias: true,
    options: { stride: 2, padding: 'same' },
    pads: [1, 1, 1, 1],
    expectOut: [1, 4, 4, 5],
  },
  {
    name: 'dilation 2 pad 2',
    x: [1, 2, 7, 9],
    w: [4, 2, 3, 3],
    bias: true,
    options: { dilation: 2, padding: 2 },
    pads: [2, 2, 2, 2],
  },
  {
    name: "dilation 2 'same'",
    x: [2, 2, 6, 6],
    w: [2, 2, 3, 3],
    bias: false,
    options: { dilation: 2, padding: 'same' },
    pads: [2, 2, 2, 2],
  },
  {
    name: "stride 2 + dilation 2 'same'",
    x: [1, 2, 9, 9],
    w: [3, 2, 3, 3],
    bias: true,
    options: { stride: 2, dilation: 2, padding: 'same' },
    pads: [2, 2, 2, 2],
    expectOut: [1, 3, 5, 5],
  },
  {
    name: 'stride [1, 2], asymmetric pad [2, 0, 0, 1], 4 in channels',
    x: [2, 4, 5, 8],
    w: [3, 4, 3, 3],
    bias: false,
    options: { stride: [1, 2], padding: [2, 0, 0, 1] },
    pads: [2, 0, 0, 1],
  },
  {
    name: 'groups 2',
    x: [2, 4, 5, 6],
    w: [6, 2, 3, 3],
    bias: true,
    options: { groups: 2, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'groups 2, 4 out channels per group (blocked path), stride 2',
    x: [1, 4, 7, 9],
    w: [8, 2, 3, 3],
    bias: true,
    options: { groups: 2, stride: 2, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 3x3',
    x: [2, 4, 6, 7],
    w: [4, 1, 3, 3],
    bias: true,
    options: { groups: 4, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 5x5 stride 2 same',
    x: [1, 3, 9, 9],
    w: [3, 1, 5, 5],
    bias: false,
    options: { groups: 3, stride: 2, padding: 'same' },
    pads: [2, 2, 2, 2],
  },
  {
    name: '10 output channels (block of 8 + clamped tail), pad 1',
    x: [2, 3, 5, 6],
    w: [10, 3, 3, 3],
    bias: true,
    options: { padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: '16 output channels, 2 groups, 1x3 kernel',
    x: [1, 4, 4, 9],
    w: [16, 2, 1, 3],
    bias: false,
    options: { groups: 2, padding: [0, 0, 1, 1] },
    pads: [0, 0, 1, 1],
  },
  {
    name: '18 in / 20 out channels (16-blocks with tails), 2x2 kernel',
    x: [1, 18, 4, 5],
    w: [20, 18, 2, 2],
    bias: true,
    options: { padding: [1, 0, 0, 1] },
    pads: [1, 0, 0, 1],
  },
  {
    name: '1x7 kernel (widest row variant), pad [0, 0, 3, 3]',
    x: [1, 2, 5, 9],
    w: [3, 2, 1, 7],
    bias: true,
    options: { padding: [0, 0, 3, 3] },
    pads: [0, 0, 3, 3],
  },
  {
    name: 'depthwise 5x5 stride 1 pad 2',
    x: [2, 3, 7, 7],
    w: [3, 1, 5, 5],
    bias: false,
    options: { groups: 3, padding: 2 },
    pads: [2, 2, 2, 2],
  },
  {
    name: 'depthwise 3x3, 19 wide (row-reuse blocks of 8 and a tail), bias',
    x: [2, 5, 4, 19],
    w: [5, 1, 3, 3],
    bias: true,
    options: { groups: 5, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 7x7 pad 3 on a 3-wide map (one output per lane)',
    x: [1, 2, 6, 3],
    w: [2, 1, 7, 7],
    bias: false,
    options: { groups: 2, padding: 3 },
    pads: [3, 3, 3, 3],
  },
  {
    name: 'depthwise 3x3, vertical stride 2 and dilation 2 (row reuse along x only)',
    x: [1, 3, 9, 10],
    w: [3, 1, 3, 3],
    bias: true,
    options: { groups: 3, stride: [2, 1], dilation: [2, 1], padding: [2, 2, 1, 1] },
    pads: [2, 2, 1, 1],
  },
  {
    name: 'depthwise 3x3, 36 wide (vec4 loads: 16-blocks and a 4-wide tail), bias',
    x: [1, 3, 5, 36],
    w: [3, 1, 3, 3],
    bias: true,
    options: { groups: 3, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 5x5 pad 2, 20 wide (vec4)',
    x: [2, 2, 6, 20],
    w: [2, 1, 5, 5],
    bias: false,
    options: { groups: 2, padding: 2 },
    pads: [2, 2, 2, 2],
  },
  {
    name: 'depthwise 7x7 pad 3, 8 wide (vec4, one block of 8)',
    x: [1, 2, 7, 8],
    w: [2, 1, 7, 7],
    bias: true,
    options: { groups: 2, padding: 3 },
    pads: [3, 3, 3, 3],
  },
  {
    name: 'depthwise 3x3 pad [2, 2, 5, 5], 12 wide (vec4 with the window two vec4s left), vertical stride 2',
    x: [1, 3, 9, 12],
    w: [3, 1, 3, 3],
    bias: false,
    options: { groups: 3, stride: [2, 1], padding: [2, 2, 5, 5] },
    pads: [2, 2, 5, 5],
  },
  // Horizontal strides: the forward row kernel's window strided, the input gradient's row kernel
  // (blocks of a multiple of the stride, only the taps that reach each value).
  {
    name: "depthwise 3x3 stride 2 pad 1, 16 wide (STDC's avd layer)",
    x: [2, 3, 8, 16],
    w: [3, 1, 3, 3],
    bias: false,
    options: { groups: 3, stride: 2, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 3x3 stride [1, 2] pad 1, 9 wide, bias',
    x: [1, 2, 5, 9],
    w: [2, 1, 3, 3],
    bias: true,
    options: { groups: 2, stride: [1, 2], padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 5x5 stride 3 pad 2, 11 wide (blocks of 6)',
    x: [1, 2, 8, 11],
    w: [2, 1, 5, 5],
    bias: false,
    options: { groups: 2, stride: 3, padding: 2 },
    pads: [2, 2, 2, 2],
  },
  {
    name: 'depthwise 2x4 stride 2, no padding (an even kernel width)',
    x: [1, 2, 6, 10],
    w: [2, 1, 2, 4],
    bias: false,
    options: { groups: 2, stride: 2 },
    pads: [0, 0, 0, 0],
  },
  {
    name: 'depthwise 3x3 stride 2, vertical dilation 2, pad [2, 2, 1, 1]',
    x: [1, 2, 9, 10],
    w: [2, 1, 3, 3],
    bias: false,
    options: { groups: 2, stride: 2, dilation: [2, 1], padding: [2, 2, 1, 1] },
    pads: [2, 2, 1, 1],
  },
  // The strip kernel (stride 1, widths multiples of 4): strips of rows with a tail, 1-row and
  // 1-column filters, vertical padding that changes the height, no left padding, a window two
  // vec4s left, more quads than one workgroup's 64 lanes.
  {
    name: 'depthwise 3x3 pad 1, 45 rows (strips of 4 rows and a 1-row tail), bias',
    x: [2, 3, 45, 16],
    w: [3, 1, 3, 3],
    bias: true,
    options: { groups: 3, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 1x3 pad [0, 0, 1, 1] (one filter row)',
    x: [1, 2, 5, 8],
    w: [2, 1, 1, 3],
    bias: false,
    options: { groups: 2, padding: [0, 0, 1, 1] },
    pads: [0, 0, 1, 1],
  },
  {
    name: 'depthwise 5x1 pad [2, 2, 0, 0] (one filter column), bias',
    x: [1, 2, 7, 12],
    w: [2, 1, 5, 1],
    bias: true,
    options: { groups: 2, padding: [2, 2, 0, 0] },
    pads: [2, 2, 0, 0],
  },
  {
    name: 'depthwise 3x3 pad [0, 3, 0, 2] (taller output, no left padding)',
    x: [1, 2, 6, 8],
    w: [2, 1, 3, 3],
    bias: false,
    options: { groups: 2, padding: [0, 3, 0, 2] },
    pads: [0, 3, 0, 2],
  },
  {
    name: 'depthwise 3x3 pad [2, 2, 5, 5], 12 wide, stride 1 (window two vec4s left)',
    x: [1, 2, 5, 12],
    w: [2, 1, 3, 3],
    bias: true,
    options: { groups: 2, padding: [2, 2, 5, 5] },
    pads: [2, 2, 5, 5],
  },
  {
    name: '1x1 conv, 6 in / 10 out, batch 2 on 5x7 (a GEMM per image when tuned)',
    x: [2, 6, 5, 7],
    w: [10, 6, 1, 1],
    bias: false,
    options: {},
    pads: [0, 0, 0, 0],
  },
  {
    name: '1x1 conv with bias, 20 in / 3 out on 9x4 (the forward keeps the conv kernel)',
    x: [1, 20, 9, 4],
    w: [3, 20, 1, 1],
    bias: true,
    options: {},
    pads: [0, 0, 0, 0],
  },
  {
    name: 'depthwise 3x3 pad 1, batch 2, 40x32 (weight gradient summed by 2 workgroups, then folded)',
    x: [2, 2, 40, 32],
    w: [2, 1, 3, 3],
    bias: true,
    options: { groups: 2, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 3x3 pad 1, 264 wide (66 quads, 2 a lane: 33 lanes in a workgroup of 64)',
    x: [1, 2, 3, 264],
    w: [2, 1, 3, 3],
    bias: false,
    options: { groups: 2, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 5x5 pad 2, 48 wide, bias (4 quads a lane, 3 lanes in a workgroup of 4; the window starts 2 values into a vec4)',
    x: [1, 2, 6, 48],
    w: [2, 1, 5, 5],
    bias: true,
    options: { groups: 2, padding: 2 },
    pads: [2, 2, 2, 2],
  },
  {
    name: '1x1 conv, 6 in / 5 out, batch 2 on 16x20 (vec4 positions: blocks of 4 vec4s and a 1-vec4 tail, a 2-channel tail, the weight gradient in 3 parts split mid-row)',
    x: [2, 6, 16, 20],
    w: [5, 6, 1, 1],
    bias: false,
    options: {},
    pads: [0, 0, 0, 0],
  },
  { name: '1x1 conv', x: [2, 4, 3, 5], w: [6, 4, 1, 1], bias: true, options: {}, pads: [0, 0, 0, 0] },
  {
    name: '1x1 conv stride 2, no bias',
    x: [1, 3, 7, 9],
    w: [5, 3, 1, 1],
    bias: false,
    options: { stride: 2 },
    pads: [0, 0, 0, 0],
  },
  {
    name: '4 in / 5 out channels, 2x3 kernel, width 3 (narrow rows)',
    x: [1, 4, 6, 3],
    w: [5, 4, 2, 3],
    bias: true,
    options: { padding: [1, 0, 1, 1] },
    pads: [1, 0, 1, 1],
  },
  // Workgroup sizing (64 lanes, x blocks of 8) on maps large enough for it; the small cases above
  // run the 8-lane, one-x-per-lane path.
  {
    name: '3x3 pad 1 on 20x40 (64-lane workgroups, 8 x per lane)',
    x: [1, 3, 20, 40],
    w: [18, 3, 3, 3],
    bias: true,
    options: { padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: '3x3 pad 1 on 8x12, batch 2 (x blocks of 8 and a 4-wide tail)',
    x: [2, 5, 8, 12],
    w: [6, 5, 3, 3],
    bias: false,
    options: { padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: '3x3 pad 1 on 12x43 (x blocks of 8 and a 3-wide tail)',
    x: [1, 3, 12, 43],
    w: [5, 3, 3, 3],
    bias: true,
    options: { padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: '3x3 stride 2 on 18x34 (stride classes of 9x17)',
    x: [1, 4, 18, 34],
    w: [5, 4, 3, 3],
    bias: true,
    options: { stride: 2, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'batch 3 on 5x7, stride 2 (lanes span images: the small-map fold)',
    x: [3, 5, 5, 7],
    w: [6, 5, 3, 3],
    bias: true,
    options: { stride: 2, padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'batch 4 of 2x4 maps, pad 1 (x4 register blocks over the folded images)',
    x: [4, 12, 2, 4],
    w: [10, 12, 3, 3],
    bias: false,
    options: { padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'stride 3 kernel 2 (gaps)',
    x: [1, 2, 8, 9],
    w: [3, 2, 2, 2],
    bias: true,
    options: { stride: 3 },
    pads: [0, 0, 0, 0],
  },
];

describe('conv2d: forward vs float64, backward vs finite differences', () => {
  for (const c of cases) {
    const cout = c.w[0] ?? 0;
    it(c.name, async () => {
      const geometry = T.conv2dGeometry(c.x, c.w, c.bias ? [cout] : null, c.options);
      const pads = T.resolvePadding(
        c.options.padding,
        c.x[2] ?? 0,
        c.x[3] ?? 0,
        c.w[2] ?? 0,
        c.w[3] ?? 0,
        [geometry.sh, geometry.sw],
        [geometry.dh, geometry.dw],
      );
      assert.deepEqual(pads, c.pads);
      const ref: RefOptions = {
        stride: [geometry.sh, geometry.sw],
        pads: c.pads,
        dilation: [geometry.dh, geometry.dw],
        groups: geometry.groups,
      };
      const outShape = [geometry.n, geometry.cout, geometry.hout, geometry.wout];
      if (c.expectOut) assert.deepEqual(outShape, c.expectOut);
      await checkOp({
        name: `conv2d ${c.name}`,
        inputs: c.bias
          ? [{ shape: c.x }, { shape: c.w }, { shape: [cout] }]
          : [{ shape: c.x }, { shape: c.w }],
        gpu: ([x, w, b]) => T.conv2d(x as T.Tensor, w as T.Tensor, b ?? null, c.options),
        ref: ([x, w, b]) => {
          const r = convRef(x as Float64Array, c.x, w as Float64Array, c.w, b ?? null, ref);
          assert.deepEqual(r.shape, outShape);
          return r.out;
        },
      });
    });
  }

  it('only the gradients that are needed (x constant)', () =>
    checkOp({
      name: 'conv2d x without grad',
      inputs: [{ shape: [2, 3, 5, 5], grad: false }, { shape: [4, 3, 3, 3] }, { shape: [4] }],
      gpu: ([x, w, b]) => T.conv2d(x as T.Tensor, w as T.Tensor, b ?? null, { padding: 1 }),
      ref: ([x, w, b]) =>
        convRef(x as Float64Array, [2, 3, 5, 5], w as Float64Array, [4, 3, 3, 3], b ?? null, {
          stride: [1, 1],
          pads: [1, 1, 1, 1],
          dilation: [1, 1],
          groups: 1,
        }).out,
    }));

  it('weight gradient with a long reduction (many partial sums + fold)', () =>
    checkOp({
      name: 'conv2d long reduction',
      inputs: [{ shape: [2, 1, 40, 40] }, { shape: [1, 1, 3, 3] }, { shape: [1] }],
      gpu: ([x, w, b]) => T.conv2d(x as T.Tensor, w as T.Tensor, b ?? null, { padding: 1 }),
      ref: ([x, w, b]) =>
        convRef(x as Float64Array, [2, 1, 40, 40], w as Float64Array, [1, 1, 3, 3], b ?? null, {
          stride: [1, 1],
          pads: [1, 1, 1, 1],
          dilation: [1, 1],
          groups: 1,
        }).out,
    }));
});

/** One case under a kernel-selection hook: `apply` sets it, `restore` puts the default back. */
function checkVariant(
  c: (typeof cases)[number],
  label: string,
  seed: number,
  apply: () => void,
  restore: () => void,
) {
  const cout = c.w[0] ?? 0;
  it(`${label}: ${c.name}`, async () => {
    const geometry = T.conv2dGeometry(c.x, c.w, c.bias ? [cout] : null, c.options);
    const ref: RefOptions = {
      stride: [geometry.sh, geometry.sw],
      pads: c.pads,
      dilation: [geometry.dh, geometry.dw],
      groups: geometry.groups,
    };
    apply();
    try {
      await checkOp({
        name: `conv2d (${label}) ${c.name}`,
        inputs: c.bias
          ? [{ shape: c.x }, { shape: c.w }, { shape: [cout] }]
          : [{ shape: c.x }, { shape: c.w }],
        gpu: ([x, w, b]) => T.conv2d(x as T.Tensor, w as T.Tensor, b ?? null, c.options),
        ref: ([x, w, b]) => convRef(x as Float64Array, c.x, w as Float64Array, c.w, b ?? null, ref).out,
        seed,
      });
    } finally {
      restore();
    }
  });
}

describe('conv2d kernel variants (plain weight loads; generic instead of row kernels)', () => {
  const variants: Array<[string, { subgroups: boolean; rowVariant: boolean }]> = [
    ['no subgroups', { subgroups: false, rowVariant: true }],
    ['generic taps', { subgroups: true, rowVariant: false }],
    ['no subgroups, generic taps', { subgroups: false, rowVariant: false }],
  ];
  cases.forEach((c, index) => {
    const [label, config] = variants[index % variants.length] as (typeof variants)[number];
    checkVariant(
      c,
      label,
      2,
      () => Object.assign(convConfig, config),
      () => Object.assign(convConfig, { subgroups: true, rowVariant: true }),
    );
  });
});

// Every register block and launch shape the autotuner may choose (on GPUs) for each pass, on cases
// with channel tails, strides, groups, a wide kernel and a long reduction: candidate i of every pass
// at once, read from a cache file as a tuned process would.
describe('conv2d under every autotune candidate', () => {
  const picked = [
    '3x3 stride 2 pad 1, bias',
    'groups 2, 4 out channels per group (blocked path), stride 2',
    '18 in / 20 out channels (16-blocks with tails), 2x2 kernel',
    '1x7 kernel (widest row variant), pad [0, 0, 3, 3]',
    '3x3 pad 1 on 12x43 (x blocks of 8 and a 3-wide tail)',
    'batch 3 on 5x7, stride 2 (lanes span images: the small-map fold)',
    '1x1 conv, 6 in / 10 out, batch 2 on 5x7 (a GEMM per image when tuned)',
    '1x1 conv with bias, 20 in / 3 out on 9x4 (the forward keeps the conv kernel)',
  ];
  for (const c of cases.filter((k) => picked.includes(k.name))) {
    const cout = c.w[0] ?? 0;
    const geometry = T.conv2dGeometry(c.x, c.w, c.bias ? [cout] : null, c.options);
    // The implicit GEMM's tilings past the first have their own tests below.
    const firstImplicit = <C>(list: TuneCandidate<C>[]) =>
      list.filter(
        (k, i) =>
          !k.name.startsWith(`${IMPLICIT_GEMM}/`) ||
          list[i - 1]?.name.startsWith(`${IMPLICIT_GEMM}/`) !== true,
      );
    const passes = [
      ['conv2d/fwd', firstImplicit(registerVariantCandidates(geometry, !c.bias))],
      ['conv2d/dx', firstImplicit(registerVariantCandidates(geometry, true))],
      ['conv2d/dw', firstImplicit(weightGradCandidates(geometry))],
    ] as const;
    const count = Math.max(...passes.map(([, list]) => list.length));
    it(`${c.name}: ${count} candidate sets`, async () => {
      const device = await testDevice();
      const ref: RefOptions = {
        stride: [geometry.sh, geometry.sw],
        pads: c.pads,
        dilation: [geometry.dh, geometry.dw],
        groups: geometry.groups,
      };
      for (let i = 0; i < count; i++) {
        const choices = passes.map(([family, list]) => ({
          family,
          shapeClass: convShapeClass(family, geometry),
          name: (list[Math.min(i, list.length - 1)] as { name: string }).name,
        }));
        const { untuned, kernels: keys } = await withTunedChoices(device, choices, () =>
          checkOp({
            name: `conv2d ${c.name} with ${choices.map((k) => k.name).join(', ')}`,
            inputs: c.bias
              ? [{ shape: c.x }, { shape: c.w }, { shape: [cout] }]
              : [{ shape: c.x }, { shape: c.w }],
            gpu: ([x, w, b]) => T.conv2d(x as T.Tensor, w as T.Tensor, b ?? null, c.options),
            ref: ([x, w, b]) => convRef(x as Float64Array, c.x, w as Float64Array, c.w, b ?? null, ref).out,
            seed: 4 + i,
          }),
        );
        // A pass pinned to the GEMM per image runs matmul kernels, whose own (GEMM) class is left
        // untuned; one pinned to the implicit GEMM names its tiling.
        const pointwise = choices.filter((k) => k.name === 'gemm').length;
        assert.equal(untuned, pointwise, 'every pass ran its pinned candidate');
        assert.equal(
          keys.some((k) => k.startsWith('gemm/matmul/')),
          pointwise > 0,
        );
        assert.equal(
          keys.some((k) => k.startsWith('gemm/conv/')),
          choices.some((k) => k.name.startsWith('implicit-gemm/')),
        );
      }
    });
  }
});

// Every one-group case with all three passes pinned to the implicit GEMM with plain register tiles
// (float64 and finite differences), and a few with each workgroup-memory tiling: the conv loads
// through staged tiles, read as vec4s and prefetched, as a GPU would tune them.
describe('conv2d as an implicit GEMM', () => {
  const run = async (c: Case, seed: number, tiling: GemmTiling) => {
    const device = await testDevice();
    const cout = c.w[0] ?? 0;
    const geometry = T.conv2dGeometry(c.x, c.w, c.bias ? [cout] : null, c.options);
    const name = `${IMPLICIT_GEMM}/${tilingName(tiling)}`;
    const pinned = (['conv2d/fwd', 'conv2d/dx', 'conv2d/dw'] as const).map((family) => ({
      family,
      shapeClass: convShapeClass(family, geometry),
      name,
    }));
    const { untuned, kernels } = await withTunedChoices(device, pinned, () =>
      checkOp({
        name: `conv2d ${c.name} as ${name}`,
        inputs: c.bias
          ? [{ shape: c.x }, { shape: c.w }, { shape: [cout] }]
          : [{ shape: c.x }, { shape: c.w }],
        gpu: ([x, w, b]) => T.conv2d(x as T.Tensor, w as T.Tensor, b ?? null, c.options),
        ref: ([x, w, b]) =>
          convRef(x as Float64Array, c.x, w as Float64Array, c.w, b ?? null, {
            stride: [geometry.sh, geometry.sw],
            pads: c.pads,
            dilation: [geometry.dh, geometry.dw],
            groups: 1,
          }).out,
        seed,
      }),
    );
    for (const pass of ['fwd', 'dx', 'dw'])
      assert.ok(
        kernels.some((k) => k.startsWith(`gemm/conv/${pass}/`) && k.endsWith(tilingName(tiling))),
        `${pass} ran the implicit GEMM with ${tilingName(tiling)}: ${kernels.join(', ')}`,
      );
    assert.equal(untuned, 0, 'every pass ran its pinned candidate');
  };
  const [plain, ...staged] = IMPLICIT_GEMM_TILINGS;
  const oneGroup = cases.filter((c) => (c.options.groups ?? 1) === 1);
  it('covers strides, dilation, asymmetric padding, bias, 1×1 and wide kernels; stages k tiles', () => {
    assert.ok(oneGroup.length >= 20, `${oneGroup.length} cases`);
    assert.equal(plain?.bk, undefined);
    assert.ok(staged.length >= 6 && staged.every((t) => t.bk));
    assert.ok(staged.some((t) => t.vec4) && staged.some((t) => t.prefetch && !t.vec4));
  });
  oneGroup.forEach((c, i) => {
    it(c.name, () => run(c, 30 + i, plain as GemmTiling));
  });
  const picked = [
    '3x3 stride 2 pad 1, bias',
    'dilation 2 pad 2',
    '18 in / 20 out channels (16-blocks with tails), 2x2 kernel',
  ];
  staged.forEach((tiling, t) => {
    oneGroup
      .filter((c) => picked.includes(c.name))
      .forEach((c, i) => {
        it(`${c.name}, GEMM tiles ${tilingName(tiling)}`, () => run(c, 60 + 3 * t + i, tiling));
      });
  });
});

// Every depthwise case through each of its kernels: the strip kernel where it fits (above), the
// row kernel with vec4 loads, the row kernel with scalar loads.
describe('depthwise kernel variants', () => {
  const variants: Array<[string, { strip: boolean; vec4: boolean }]> = [
    ['row kernel, vec4 loads', { strip: false, vec4: true }],
    ['row kernel, scalar loads', { strip: false, vec4: false }],
  ];
  const depthwise = cases.filter(
    (c) => c.options.groups !== undefined && c.options.groups === c.x[1] && c.w[1] === 1,
  );
  for (const c of depthwise) {
    for (const [label, config] of variants) {
      checkVariant(
        c,
        label,
        3,
        () => Object.assign(depthwiseConfig, config),
        () => Object.assign(depthwiseConfig, { strip: true, vec4: true }),
      );
    }
  }
});

// A CPU adapter walks strips of up to 128 rows when there are lanes enough (4096 at 64 planes of
// 512 columns): 72 rows are one strip, partly past the end. Forward, input and weight gradients
// against plain float64 loops (finite differences would take too long at this size).
describe('depthwise strips as long as the map', () => {
  it('3x3 pad 1 on 1x64x72x512: forward and both gradients match float64', async () => {
    const device = await testDevice();
    const [c, h, w] = [64, 72, 512];
    const size = c * h * w;
    const xv = rand(size, 71);
    const wv = rand(c * 9, 72);
    const gv = rand(size, 73);
    const x = T.parameter(device, xv, [1, c, h, w]);
    const wt = T.parameter(device, wv, [c, 1, 3, 3]);
    const y = T.conv2d(x, wt, null, { padding: 1, groups: c });
    T.backward(y, { grad: T.tensor(device, gv, [1, c, h, w]) });
    const at = (ch: number, r: number, col: number) => (ch * h + r) * w + col;
    const inside = (r: number, col: number) => r >= 0 && r < h && col >= 0 && col < w;
    const yRef = new Float64Array(size);
    const dxRef = new Float64Array(size);
    const dwRef = new Float64Array(c * 9);
    for (let ch = 0; ch < c; ch++)
      for (let r = 0; r < h; r++)
        for (let col = 0; col < w; col++)
          for (let ky = 0; ky < 3; ky++)
            for (let kx = 0; kx < 3; kx++) {
              const [ir, ic] = [r + ky - 1, col + kx - 1];
              if (!inside(ir, ic)) continue;
              const tap = wv[ch * 9 + ky * 3 + kx] ?? 0;
              const g = gv[at(ch, r, col)] ?? 0;
              yRef[at(ch, r, col)] = (yRef[at(ch, r, col)] ?? 0) + tap * (xv[at(ch, ir, ic)] ?? 0);
              dxRef[at(ch, ir, ic)] = (dxRef[at(ch, ir, ic)] ?? 0) + tap * g;
              dwRef[ch * 9 + ky * 3 + kx] =
                (dwRef[ch * 9 + ky * 3 + kx] ?? 0) + g * (xv[at(ch, ir, ic)] ?? 0);
            }
    assertClose(await y.data(), yRef, 1e-6, 'forward');
    assertClose(await (x.grad as T.Tensor).data(), dxRef, 1e-6, 'input gradient');
    assertClose(await (wt.grad as T.Tensor).data(), dwRef, 2e-5, 'weight gradient');
    for (const t of [x, wt, y]) t.dispose();
  });
});

describe('conv2d register block along x', () => {
  it('halves the tuned width until it fits the row and leaves 8 lanes', () => {
    // [rows, width, tuned] → outputs per lane: wide rows keep the tuned block; the batch-4 2x4 maps
    // of PP-LiteSeg's last stage take 4 (8 lanes), a lone image's take 1 (2 rows: 8 lanes).
    const picks = [
      [[64, 256, 8], 8],
      [[16, 8, 8], 8],
      [[8, 8, 8], 8],
      [[8, 4, 8], 4],
      [[4, 4, 8], 2],
      [[2, 4, 8], 1],
      [[8, 3, 8], 2],
      [[5, 6, 4], 4],
      [[1, 5, 8], 1],
    ] as const;
    for (const [[rows, width, tuned], xb] of picks)
      assert.equal(rowBlock(rows, width, tuned), xb, `rowBlock(${rows}, ${width}, ${tuned})`);
  });
});

describe('conv2d: error messages', () => {
  const shapes = async (x: number[], w: number[], b: number[] | null, options: T.Conv2dOptions = {}) => {
    const device = await testDevice();
    const xt = T.zeros(device, x);
    const wt = T.zeros(device, w);
    const bt = b ? T.zeros(device, b) : null;
    return () => T.conv2d(xt, wt, bt, options);
  };
  it('channel mismatch names the op and both shapes', async () => {
    const call = await shapes([2, 4, 8, 8], [8, 3, 3, 3], null);
    assert.throws(
      call,
      /^Error: conv2d: weight \[8, 3, 3, 3\] expects 3 input channels per group, x has shape \[2, 4, 8, 8\]$/,
    );
  });
  it('groups that do not divide the channels', async () => {
    assert.throws(
      await shapes([1, 4, 8, 8], [6, 1, 3, 3], null, { groups: 3 }),
      /conv2d: x has 4 channels.*groups=3/,
    );
    assert.throws(
      await shapes([1, 4, 8, 8], [6, 2, 3, 3], null, { groups: 4 }),
      /conv2d: weight \[6, 2, 3, 3\].*groups=4/,
    );
  });
  it('wrong ranks', async () => {
    assert.throws(await shapes([4, 8, 8], [8, 4, 3, 3], null), /conv2d: x must be NCHW.*\[4, 8, 8\]/);
    assert.throws(await shapes([1, 4, 8, 8], [8, 4, 3], null), /conv2d: weight must be .*\[8, 4, 3\]/);
  });
  it('bias shape', async () => {
    assert.throws(
      await shapes([1, 4, 8, 8], [8, 4, 3, 3], [4]),
      /conv2d: bias must have shape \[8\].*got \[4\]/,
    );
  });
  it('kernel larger than the padded input', async () => {
    assert.throws(
      await shapes([1, 1, 2, 2], [1, 1, 3, 3], null),
      /conv2d: kernel 3x3.*larger than the padded input 2x2/,
    );
  });
  it('bad stride, dilation and padding', async () => {
    assert.throws(
      await shapes([1, 1, 8, 8], [1, 1, 3, 3], null, { stride: 0 }),
      /conv2d: stride must be positive/,
    );
    assert.throws(await shapes([1, 1, 8, 8], [1, 1, 3, 3], null, { dilation: [1, 1.5] }), /conv2d: dilation/);
    assert.throws(
      await shapes([1, 1, 8, 8], [1, 1, 3, 3], null, { padding: -1 }),
      /conv2d: padding must be non-negative/,
    );
  });
});
