// `npm test`: runs the compiled test files tier by tier, after making sure the programs those tiers need are here.
// Usage: npm test [-- <tier|substring> …]   A tier name (unit, ops, inprocess, integration, scenario) selects that
// tier; any other word selects the test files whose path contains it.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '../..');
const testRoot = join(root, 'dist/node/test');
if (!existsSync(join(testRoot, 'helpers/prereq.js'))) {
  console.error('No compiled tests in dist/: run `npm run build` (npm test does it first).');
  process.exit(1);
}
// One table for the runner and the tests that skip without an optional program.
const { TIERS, PREREQS, installCommand } = await import(pathToFileURL(join(testRoot, 'helpers/prereq.js')).href);

function find(dir) {
  let out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out = out.concat(find(p));
    // Only files whose source still exists: tsc never deletes the output of a moved or removed test.
    else if (e.name.endsWith('.test.js') && existsSync(join(root, relative(join(root, 'dist'), p)).replace(/\.js$/, '.ts'))) out.push(p);
  }
  return out;
}
const tierOf = (file) => TIERS.find((t) => file.includes(`/test/${t}/`));

const filters = process.argv.slice(2);
const files = find(testRoot)
  .filter((f) => filters.length === 0 || filters.some((s) => (TIERS.includes(s) ? tierOf(f) === s : relative(root, f).includes(s))))
  .sort((a, b) => {
    // Cheap tiers first for fast feedback; a file outside every tier runs last.
    const rank = (f) => (tierOf(f) ? TIERS.indexOf(tierOf(f)) : TIERS.length);
    return rank(a) - rank(b) || a.localeCompare(b);
  });
if (files.length === 0) {
  console.error(`No test files matched ${filters.join(' ')}.`);
  process.exit(1);
}
const tiers = new Set(files.map(tierOf));
console.log(`npm test: ${files.length} files in ${TIERS.filter((t) => tiers.has(t)).join(', ') || 'no tier'}`);

await ensurePrereqs(PREREQS.filter((p) => p.tiers.some((t) => tiers.has(t)) && !p.present()));

// One `node --test` per tier, in order (it would sort one list of paths alphabetically, unit last); within it one
// file at a time: integration tests spawn redis, haproxy and several node processes on a 2-core machine.
// --test-force-exit: a failed test must not leave a file hanging on a client that keeps reconnecting.
const groups = [...TIERS, undefined].map((t) => [t ?? 'other', files.filter((f) => tierOf(f) === t)]).filter(([, fs]) => fs.length > 0);
const results = [];
// Formatting is part of the unit tier: one style everywhere, checked where every change is checked (`npm run format` fixes it).
if (tiers.has('unit')) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(root, 'node_modules/prettier/bin/prettier.cjs'), '--check', '--log-level', 'warn', '.'], {
    stdio: 'inherit',
    cwd: root,
  });
  if (r.status !== 0) console.error('npm test: files are not formatted; run `npm run format`');
  results.push({ tier: 'format', files: 0, ok: r.status === 0, s: ((Date.now() - t0) / 1000).toFixed(1) });
}
for (const [tier, fs] of groups) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-force-exit', '--test-reporter=spec', ...fs], {
    stdio: 'inherit',
    cwd: root,
  });
  results.push({ tier, files: fs.length, ok: r.status === 0, s: ((Date.now() - t0) / 1000).toFixed(1) });
}
console.log(`npm test: ${results.map((r) => `${r.tier} ${r.ok ? 'passed' : 'FAILED'} (${r.files} files, ${r.s} s)`).join('; ')}`);
process.exit(results.every((r) => r.ok) ? 0 : 1);

/** Installs the missing programs with apt-get where this machine allows it; otherwise says how, and stops for a required one. */
async function ensurePrereqs(missing) {
  if (missing.length === 0) return;
  const canInstall = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
  if (canInstall) {
    console.log(`npm test: installing ${missing.map((p) => p.name).join(', ')} with apt-get`);
    const interrupted = aptInstall(missing);
    // A signal that came during apt-get is delivered once the event loop turns.
    await new Promise((r) => setImmediate(r));
    if (interrupted()) process.exit(130);
    missing = missing.filter((p) => !p.present());
  }
  for (const p of missing) {
    const how = installCommand(p);
    if (p.optional)
      console.log(
        `npm test: ${p.name} is not installed; the tests that use it ${process.env.CI === 'true' ? 'fail (CI=true)' : 'skip'}. Install it with: ${how}`,
      );
    else
      console.error(
        `npm test: the selected tests need ${p.name}, which is not installed${canInstall ? ' and apt-get could not install' : ''}. Install it with: ${how}`,
      );
  }
  if (missing.some((p) => !p.optional)) process.exit(1);
}

function aptInstall(prereqs) {
  // Debian starts a package's service on install (redis on 6379, haproxy, prometheus on 9090); the suite starts its
  // own on free ports, so refuse every start for the duration (policy-rc.d exit 101), never kill anything afterwards.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) {
    writeFileSync(policy, '#!/bin/sh\n# Written by switchboard scripts/run-tests.mjs while it installs test prerequisites.\nexit 101\n');
    chmodSync(policy, 0o755);
  }
  const apt = (args) =>
    spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  // Ctrl-C during the install (apt-get gets it too) must not kill this process before it removes the policy:
  // with a handler installed, Node defers the signal instead of exiting at once.
  let signal;
  const stayForCleanup = (sig) => (signal = sig);
  process.on('SIGINT', stayForCleanup).on('SIGTERM', stayForCleanup);
  try {
    apt(['update', '-q']);
    apt(['install', '-y', '-q', '--no-install-recommends', ...prereqs.flatMap((p) => p.packages[0].split(' '))]);
    for (const p of prereqs.filter((q) => !q.present())) {
      // Alternatives in turn (kubectl, then kubernetes-client); recommends only where a package fails without them.
      p.packages.some(
        (alt) =>
          apt(['install', '-y', '-q', '--no-install-recommends', ...alt.split(' ')]) || apt(['install', '-y', '-q', ...alt.split(' ')]),
      );
    }
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  return () => signal !== undefined;
}
