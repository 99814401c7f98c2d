#!/usr/bin/env node
// The `switchboard` command: builds on first use from a source checkout, then runs the CLI.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'dist/node/src/main.js');
if (!existsSync(main)) {
  const { ensureBuilt } = await import('../scripts/ensure-built.mjs');
  ensureBuilt();
}
await import(main);
