import { paddlesegConfig } from '@segtrain/tensor/testing';
import type { Io } from '../src/io.js';
import { main } from '../src/main.js';

export const PP_LITESEG = paddlesegConfig(
  'pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml',
);

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
  };
  const code = await main(argv, io);
  return { code, out, err };
}
