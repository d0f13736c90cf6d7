/**
 * Index arithmetic of the strided kernels (copies, broadcasts): an element's contiguous index is
 * split into coordinates by fast divisions (`FAST_DIV`), over as few dims as the layout allows.
 */
import type { Uniforms } from './launch.js';

export const MAX_RANK = 6;

export interface StridedLayout {
  /** The index space, outermost first; at least one dim. */
  readonly dims: number[];
  /** Per operand, its element stride along each dim. */
  readonly strides: number[][];
}

/**
 * Drops size-1 dims and merges neighbours every operand walks contiguously (stride[d] =
 * stride[d+1]·dims[d+1]), so `[4, 64, 32, 64] × [4, 64, 1, 1]` indexes as `[256, 2048]`: each dim
 * dropped is two divisions fewer per element.
 */
export function collapseDims(
  dims: readonly number[],
  strides: readonly (readonly number[])[],
): StridedLayout {
  const out: StridedLayout = { dims: [], strides: strides.map(() => []) };
  dims.forEach((dim, d) => {
    if (dim === 1) return;
    const last = out.dims.length - 1;
    const mergeable =
      last >= 0 && out.strides.every((s, k) => (s[last] ?? 0) === (strides[k]?.[d] ?? 0) * dim);
    if (mergeable) {
      out.dims[last] = (out.dims[last] ?? 1) * dim;
      out.strides.forEach((s, k) => {
        s[last] = strides[k]?.[d] ?? 0;
      });
    } else {
      out.dims.push(dim);
      out.strides.forEach((s, k) => {
        s.push(strides[k]?.[d] ?? 0);
      });
    }
  });
  if (out.dims.length === 0) {
    out.dims.push(1);
    for (const s of out.strides) s.push(0);
  }
  return out;
}

/** WGSL uniform fields for a layout: `dims` (`slots` fast divisors) then one stride array per name. */
export function stridedFields(strideNames: readonly string[], dims = 'dims', slots = MAX_RANK): string {
  return [
    `${dims}: array<vec4<u32>, ${slots}>`,
    ...strideNames.map((n) => `${n}: array<vec4<u32>, ${Math.ceil(slots / 4)}>`),
  ].join(', ');
}

/** Appends a layout's fields in `stridedFields` order. */
export function pushLayout(u: Uniforms, layout: StridedLayout, slots = MAX_RANK): Uniforms {
  if (layout.dims.length > slots)
    throw new Error(`strided layout of rank ${layout.dims.length} exceeds ${slots}`);
  for (let d = 0; d < slots; d++) u.divisor(layout.dims[d] ?? 1);
  for (const s of layout.strides) u.u32Array(s, 4 * Math.ceil(slots / 4));
  return u;
}

/**
 * A WGSL block adding `index`'s coordinate · stride to each `offsets[k]` variable (already
 * declared) over `rank` dims: divisors from `u.<dims>`, strides from `u.<strideNames[k]>`.
 */
export function stridedOffsets(
  rank: number,
  index: string,
  offsets: readonly string[],
  strideNames: readonly string[],
  dims = 'dims',
): string {
  const lines = [`var rest = ${index};`];
  const add = (d: number, coord: string) => {
    offsets.forEach((o, k) => {
      lines.push(`${o} += ${coord} * u.${strideNames[k]}[${d >> 2}][${d & 3}];`);
    });
  };
  for (let d = rank - 1; d >= 1; d--) {
    lines.push(
      `let q${d} = fdiv(rest, u.${dims}[${d}]);`,
      `let c${d} = rest - q${d} * u.${dims}[${d}].x;`,
      `rest = q${d};`,
    );
    add(d, `c${d}`);
  }
  add(0, 'rest');
  return `  {\n${lines.map((l) => `    ${l}`).join('\n')}\n  }`;
}
