// Rewrites the README's configuration table from the schema (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '../..');
const { configTable, TABLE_BEGIN, TABLE_END } = await import(join(root, 'dist/node/src/config/docs.js'));
const path = join(root, 'README.md');
const readme = readFileSync(path, 'utf8');
const start = readme.indexOf(TABLE_BEGIN);
const end = readme.indexOf(TABLE_END);
if (start < 0 || end < 0) throw new Error('README.md has no config-table markers');
writeFileSync(path, readme.slice(0, start) + configTable() + readme.slice(end + TABLE_END.length));
console.log('README.md configuration table updated');
