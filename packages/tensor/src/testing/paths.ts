/** Where tests find the repository's files and PaddleSeg's own configs. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root (this file is `packages/tensor/{src,dist}/testing/paths.*`). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

/** The demo config the quick start trains. */
export const DEMO_CONFIG = join(repoRoot, 'configs/demo/pp_liteseg_stdc1_demo_128x256.yml');

/** PaddleSeg's own config files, read in place: `shared/` lies beside the checkout (or SEGTRAIN_SHARED). */
export function paddlesegConfig(relative: string): string {
  const shared = process.env.SEGTRAIN_SHARED ?? resolve(repoRoot, '../shared');
  const path = join(shared, 'paddleseg-configs/configs', relative);
  if (!existsSync(path))
    throw new Error(
      `PaddleSeg config ${path} not found: shared/ must lie beside the checkout (or set SEGTRAIN_SHARED)`,
    );
  return path;
}
