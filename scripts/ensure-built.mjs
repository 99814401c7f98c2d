// Builds dist/ with tsc when it is missing or older than any source file, so `npm start` works on a fresh clone.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export function ensureBuilt() {
  const out = join(root, 'dist/node/src/main.js');
  if (existsSync(out) && statSync(out).mtimeMs >= newestMtime(join(root, 'node/src'))) return;
  const tsc = join(root, 'node_modules/.bin/tsc');
  if (!existsSync(tsc)) {
    console.error('switchboard: dist/ is missing and TypeScript is not installed. Run `npm ci` first.');
    process.exit(1);
  }
  console.error('switchboard: building (tsc)…');
  execFileSync(tsc, ['-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureBuilt();
