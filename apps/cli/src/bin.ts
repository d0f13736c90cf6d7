#!/usr/bin/env node
import { processIo } from './io.js';
import { main } from './main.js';

// `pnpm segtrain …` runs in the workspace root; paths on the command line are relative to where the
// user typed them, which pnpm passes as INIT_CWD.
if (process.env.npm_lifecycle_event === 'segtrain' && process.env.INIT_CWD)
  process.chdir(process.env.INIT_CWD);

process.exitCode = await main(process.argv.slice(2), processIo);
