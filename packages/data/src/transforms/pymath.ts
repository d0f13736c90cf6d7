/** Small Python/numpy numeric helpers whose exact behaviour PaddleSeg's transforms depend on. */

import type { RandomSource } from '../types.js';

/** Python 3 `round(x)`: nearest integer, ties to even (on the exact double value). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** `np.linspace(start, stop, num)` (endpoint included): `i·step + start`, last value set to `stop`. */
export function linspace(start: number, stop: number, num: number): number[] {
  if (num <= 0) return [];
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(i * step + start);
  out[num - 1] = stop;
  return out;
}

/** Python `random.shuffle` (Fisher–Yates from the end), drawing from `random`. */
export function shuffle<T>(items: T[], random: RandomSource): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
  return items;
}

/** `np.random.randint(n)` for a float or int `n`: uniform in `[0, floor(n))`, 0 when that is empty. */
export function randBelow(n: number, random: RandomSource): number {
  const hi = Math.floor(n);
  return hi <= 0 ? 0 : random.int(0, hi - 1);
}
