import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Io } from '../src/io.js';
import { main } from '../src/main.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** PaddleSeg's own config files, read in place from the `shared/` folder beside the checkout. */
export const seed = (rel: string) =>
  join(process.env.SEGTRAIN_SHARED ?? resolve(repoRoot, '../shared'), 'paddleseg-configs/configs', rel);

export const PP_LITESEG = seed('pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml');

/** Runs the CLI in-process and captures what it prints. */
export async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    isTty: false,
  };
  const code = await main(argv, io);
  return { code, out, err };
}
