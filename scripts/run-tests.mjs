// `npm test`: checks the binaries the suite needs, then runs every compiled test file with Node's test runner.
// Usage: npm test [-- <substring> …]   (only test files whose path contains one of the substrings)
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '../..');
const required = [
  ['redis-server', 'apt-get install -y redis-server'],
  ['haproxy', 'apt-get install -y haproxy'],
];
const missing = required.filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0);
if (missing.length) {
  for (const [bin, cmd] of missing) console.error(`npm test needs \`${bin}\`, which is not installed. Install it with: ${cmd}`);
  process.exit(1);
}

function find(dir) {
  let out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out = out.concat(find(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
// Unit tests first (fast feedback), then integration, then scenarios; each file in its own process.
const order = ['unit', 'integration', 'scenario'];
const files = find(join(root, 'dist/node/test'))
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort((a, b) => {
    const ka = order.findIndex((k) => a.includes(`/test/${k}/`));
    const kb = order.findIndex((k) => b.includes(`/test/${k}/`));
    return ka - kb || a.localeCompare(b);
  });
if (files.length === 0) {
  console.error('No test files matched. Did `npm run build` run?');
  process.exit(1);
}
// One file at a time: integration tests spawn redis, haproxy and several node processes on a 2-core machine.
// --test-force-exit: a failed test must not leave a file hanging on a client that keeps reconnecting.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-force-exit', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(r.status ?? 1);
