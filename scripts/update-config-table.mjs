// Rewrites the README's generated tables (configuration from the schema, metrics from the registry).
// Run after `npm run build`; unit tests fail when README.md is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '../..');
const docs = await import(join(root, 'dist/node/src/config/docs.js'));
const metrics = await import(join(root, 'dist/node/src/metrics/metrics.js'));
const path = join(root, 'README.md');
let readme = readFileSync(path, 'utf8');

function replace(begin, end, table) {
  const start = readme.indexOf(begin);
  const stop = readme.indexOf(end);
  if (start < 0 || stop < 0) throw new Error(`README.md has no ${begin.slice(5, 25)} markers`);
  readme = readme.slice(0, start) + table + readme.slice(stop + end.length);
}
replace(docs.TABLE_BEGIN, docs.TABLE_END, docs.configTable());
replace(metrics.METRICS_BEGIN, metrics.METRICS_END, await metrics.metricsTable());
writeFileSync(path, readme);
console.log('README.md tables updated');
