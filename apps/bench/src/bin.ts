#!/usr/bin/env node
import { runBench } from './cli.js';

// `pnpm bench …` runs in the workspace root; paths (--out) are relative to where the user typed them.
if (process.env.npm_lifecycle_event === 'bench' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);

process.exitCode = await runBench(process.argv.slice(2));
process.exit();
