/**
 * A minimal scanline rasteriser for the demo scenes: shapes are cut into horizontal spans, and each
 * covered pixel gets a (textured) colour and a label in the same write, so image and label always
 * agree. No anti-aliasing on purpose: a pixel belongs to exactly one class.
 */
import type { SeededRandom } from '../random.js';

export type Rgb = readonly [number, number, number];
export type Point = readonly [number, number];

/** What a filled shape writes: a colour modulated by the scene's noise tables, and a trainId. */
export interface Paint {
  readonly rgb: Rgb;
  readonly label: number;
  /** Relative brightness amplitude of the smooth (blotchy) noise. */
  readonly tex?: number;
  /** Relative brightness amplitude of the fine (grainy) noise: leaves, asphalt. */
  readonly grain?: number;
}

/** Receives one span per row: pixel centres x + 0.5 in [xa, xb) are covered. */
export type SpanFn = (y: number, xa: number, xb: number) => void;

const NOISE_BITS = 8;
const NOISE_SIZE = 1 << NOISE_BITS;
const NOISE_MASK = NOISE_SIZE - 1;

/** Tileable value noise on an N×N lattice, summed over octaves into `out` (values ≈ [-1, 1]). */
function addValueNoise(out: Float32Array, cell: number, weight: number, rng: SeededRandom): void {
  const g = NOISE_SIZE / cell;
  const lattice = new Float32Array(g * g);
  for (let i = 0; i < lattice.length; i++) lattice[i] = rng.uniform(-1, 1);
  const at = (ix: number, iy: number): number => lattice[(iy % g) * g + (ix % g)]!;
  for (let y = 0; y < NOISE_SIZE; y++) {
    const iy = Math.floor(y / cell);
    const ty = y / cell - iy;
    const sy = ty * ty * (3 - 2 * ty);
    for (let x = 0; x < NOISE_SIZE; x++) {
      const ix = Math.floor(x / cell);
      const tx = x / cell - ix;
      const sx = tx * tx * (3 - 2 * tx);
      const top = at(ix, iy) + (at(ix + 1, iy) - at(ix, iy)) * sx;
      const bottom = at(ix, iy + 1) + (at(ix + 1, iy + 1) - at(ix, iy + 1)) * sx;
      out[y * NOISE_SIZE + x]! += weight * (top + (bottom - top) * sy);
    }
  }
}

/** Two 256×256 noise textures, built once per dataset and sampled at a per-image offset. */
export class NoiseTables {
  readonly smooth = new Float32Array(NOISE_SIZE * NOISE_SIZE);
  readonly fine = new Float32Array(NOISE_SIZE * NOISE_SIZE);

  constructor(rng: SeededRandom) {
    for (const [cell, weight] of [
      [64, 0.45],
      [32, 0.3],
      [16, 0.15],
      [8, 0.1],
    ] as const) {
      addValueNoise(this.smooth, cell, weight, rng);
    }
    addValueNoise(this.fine, 2, 0.55, rng);
    for (let i = 0; i < this.fine.length; i++) this.fine[i]! += rng.uniform(-0.45, 0.45);
  }
}

/** An RGB float image (0–255, drawn with shading headroom) and its label map, drawn together. */
export class Canvas {
  readonly rgb: Float32Array;
  readonly label: Uint8Array;
  /** Noise is sampled in 512-wide-image units so textures look alike at every resolution. */
  private readonly noiseScale: number;

  constructor(
    readonly width: number,
    readonly height: number,
    readonly noise: NoiseTables,
    private readonly noiseX: number,
    private readonly noiseY: number,
  ) {
    this.rgb = new Float32Array(width * height * 3);
    this.label = new Uint8Array(width * height);
    this.noiseScale = 512 / width;
  }

  noiseIndex(x: number, y: number): number {
    const u = (Math.floor(x * this.noiseScale) + this.noiseX) & NOISE_MASK;
    const v = (Math.floor(y * this.noiseScale) + this.noiseY) & NOISE_MASK;
    return (v << NOISE_BITS) | u;
  }

  /** Writes one pixel: colour × (1 + texture) and the label. */
  set(x: number, y: number, r: number, g: number, b: number, label: number, tex = 0, grain = 0): void {
    this.setRow(y, x, x + 1, r, g, b, label, tex, grain);
  }

  /** Writes pixels [x0, x1) of row y (the hot loop of every fill). */
  setRow(
    y: number,
    x0: number,
    x1: number,
    r: number,
    g: number,
    b: number,
    label: number,
    tex: number,
    grain: number,
  ): void {
    const { smooth, fine } = this.noise;
    const v = ((Math.floor(y * this.noiseScale) + this.noiseY) & NOISE_MASK) << NOISE_BITS;
    const rgb = this.rgb;
    for (let x = x0, p = y * this.width + x0; x < x1; x++, p++) {
      const n = v | ((Math.floor(x * this.noiseScale) + this.noiseX) & NOISE_MASK);
      const k = 1 + tex * smooth[n]! + grain * fine[n]!;
      rgb[p * 3] = r * k;
      rgb[p * 3 + 1] = g * k;
      rgb[p * 3 + 2] = b * k;
      this.label[p] = label;
    }
  }
}

// Spans cover the pixel columns whose centres lie in [xa, xb), clipped to the canvas.

export function fillSpan(c: Canvas, y: number, xa: number, xb: number, paint: Paint): void {
  const x0 = Math.max(0, Math.ceil(xa - 0.5));
  const x1 = Math.min(c.width, Math.ceil(xb - 0.5));
  const [r, g, b] = paint.rgb;
  if (x1 > x0) c.setRow(y, x0, x1, r, g, b, paint.label, paint.tex ?? 0, paint.grain ?? 0);
}

/** Darkens a span without relabelling it (shadows); `only` restricts it to some labels. */
export function shadeSpan(
  c: Canvas,
  y: number,
  xa: number,
  xb: number,
  factor: number,
  only?: ReadonlySet<number>,
): void {
  const x0 = Math.max(0, Math.ceil(xa - 0.5));
  const x1 = Math.min(c.width, Math.ceil(xb - 0.5));
  for (let x = x0; x < x1; x++) {
    const p = y * c.width + x;
    if (only && !only.has(c.label[p]!)) continue;
    c.rgb[p * 3]! *= factor;
    c.rgb[p * 3 + 1]! *= factor;
    c.rgb[p * 3 + 2]! *= factor;
  }
}

const scratch = new Float64Array(64);

/** Even-odd scanline fill of a polygon, sampled at pixel centres. */
export function polygonSpans(points: readonly Point[], height: number, emit: SpanFn): void {
  const n = points.length;
  if (n < 3 || n > scratch.length) return;
  let minY = Number.POSITIVE_INFINITY;
  let maxY = Number.NEGATIVE_INFINITY;
  for (const [, y] of points) {
    minY = Math.min(minY, y);
    maxY = Math.max(maxY, y);
  }
  const y0 = Math.max(0, Math.ceil(minY - 0.5));
  const y1 = Math.min(height - 1, Math.floor(maxY - 0.5));
  for (let y = y0; y <= y1; y++) {
    const yc = y + 0.5;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const [ax, ay] = points[i]!;
      const [bx, by] = points[(i + 1) % n]!;
      // Half-open in y so a vertex shared by two edges is counted once.
      if (ay <= yc !== by <= yc) {
        // Insertion sort as we go: rows rarely cross more than four edges.
        const x = ax + ((yc - ay) / (by - ay)) * (bx - ax);
        let j = m++;
        while (j > 0 && scratch[j - 1]! > x) {
          scratch[j] = scratch[j - 1]!;
          j--;
        }
        scratch[j] = x;
      }
    }
    for (let i = 0; i + 1 < m; i += 2) emit(y, scratch[i]!, scratch[i + 1]!);
  }
}

/** Whether a polygon's bounding box misses the canvas (most far-away or off-frame geometry). */
function offCanvas(c: Canvas, points: readonly Point[]): boolean {
  let minX = Number.POSITIVE_INFINITY;
  let maxX = Number.NEGATIVE_INFINITY;
  for (const [x] of points) {
    minX = Math.min(minX, x);
    maxX = Math.max(maxX, x);
  }
  return maxX < 0 || minX > c.width;
}

export function ellipseSpans(
  cx: number,
  cy: number,
  rx: number,
  ry: number,
  height: number,
  emit: SpanFn,
): void {
  if (rx <= 0 || ry <= 0) return;
  const y0 = Math.max(0, Math.ceil(cy - ry - 0.5));
  const y1 = Math.min(height - 1, Math.floor(cy + ry - 0.5));
  for (let y = y0; y <= y1; y++) {
    const d = (y + 0.5 - cy) / ry;
    if (d * d >= 1) continue;
    const half = rx * Math.sqrt(1 - d * d);
    emit(y, cx - half, cx + half);
  }
}

export function fillPolygon(c: Canvas, points: readonly Point[], paint: Paint): void {
  if (offCanvas(c, points)) return;
  polygonSpans(points, c.height, (y, xa, xb) => fillSpan(c, y, xa, xb, paint));
}

export function fillEllipse(c: Canvas, cx: number, cy: number, rx: number, ry: number, paint: Paint): void {
  ellipseSpans(cx, cy, rx, ry, c.height, (y, xa, xb) => fillSpan(c, y, xa, xb, paint));
}

export function fillRect(c: Canvas, x0: number, y0: number, x1: number, y1: number, paint: Paint): void {
  fillPolygon(
    c,
    [
      [x0, y0],
      [x1, y0],
      [x1, y1],
      [x0, y1],
    ],
    paint,
  );
}

export function shadePolygon(
  c: Canvas,
  points: readonly Point[],
  factor: number,
  only?: ReadonlySet<number>,
): void {
  if (offCanvas(c, points)) return;
  polygonSpans(points, c.height, (y, xa, xb) => shadeSpan(c, y, xa, xb, factor, only));
}
