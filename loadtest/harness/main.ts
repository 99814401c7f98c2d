// `npm run bench`: the benchmark's command line. Parses flags, runs the harness, exits non-zero when it could not
// finish. Ctrl-C stops every process it started and still writes what it measured.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_OUT, runBench } from './bench.js';
import { writeReadmeTable } from './readme.js';
import { SYSTEMS, type SystemName } from './cluster.js';
import { SCENARIO_DIR } from './load-scenarios.js';
import { SCENARIO_NAMES, scenarioJsonSchema, type ScenarioName } from './scenarios.js';

const HELP = `Usage: npm run bench -- [options]

Runs the load scenarios (loadtest/scenarios/*.json) against Switchboard and the baselines on this machine
(loopback only) and writes bench/results/<timestamp>.json, .md and .svg. Each headline ratio is reported as the
median (min–max) over the scenario's alternated rounds (at least 3 in a full run).

Options:
  --smoke               seconds-long run with a handful of clients (the "smoke" profiles); checks shapes, not speed
  --scenarios LIST      comma-separated scenarios: ${SCENARIO_NAMES.join(', ')}
  --systems LIST        comma-separated systems: ${SYSTEMS.join(', ')}
  --only LIST           systems and/or scenarios mixed, e.g. --only switchboard,fanout
  --rounds N            every scenario runs N alternated rounds, each as long as in the profile
  --quick               short rounds for quick checks (≤ 5 s measured, ≤ 1 s warm-up, rate holds 10 s), e.g.
                        npm run bench -- --scenarios many-channels,rpc --rounds 3 --quick
  --readme FILE.json    write the headline table of a finished run (its .json) into README.md and exit
  --nodes N             server nodes per system (default 2; fanout: subscribers on the last, publisher on the first)
  --workers N           client worker processes (default 4, smoke 2)
  --out DIR             where results go (default bench/results)
  --max-minutes M       abort after M minutes, keeping what was measured (default 60, smoke 5)
  --node-env K=V        extra environment for Switchboard nodes (repeatable), e.g. to raise limits
  --set S.P=V           override a scenario parameter (repeatable; V is JSON or a string),
                        e.g. --set fanout.subscribers=200 --set fanout.maxRate.holdSeconds=10
  --reuse-clusters      keep each system's cluster up across scenarios (default in --smoke)
  --quiet               no progress output
  --write-schema        write loadtest/scenarios/scenario.schema.json (for editors) and exit
  -h, --help            this text
`;

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n\n${HELP}`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true },
    scenarios: { type: 'string', multiple: true },
    systems: { type: 'string', multiple: true },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    readme: { type: 'string' },
    nodes: { type: 'string' },
    workers: { type: 'string' },
    out: { type: 'string' },
    'max-minutes': { type: 'string' },
    'node-env': { type: 'string', multiple: true },
    set: { type: 'string', multiple: true },
    'reuse-clusters': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    'write-schema': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (values['write-schema']) {
  const file = join(SCENARIO_DIR, 'scenario.schema.json');
  writeFileSync(file, `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
  process.exit(0);
}

function int(name: string, v: string | undefined, def: number, min: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer ≥ ${min}, got ${v}`);
  return n;
}

if (values.readme) {
  try {
    const file = writeReadmeTable(values.readme);
    process.stdout.write(`wrote the table of ${values.readme} into ${file}\n`);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

const list = (v: string[] | undefined) =>
  (v ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
const only = list(values.only);
for (const o of only)
  if (!(SYSTEMS as readonly string[]).includes(o) && !(SCENARIO_NAMES as readonly string[]).includes(o))
    fail(`--only: unknown system or scenario "${o}"`);
for (const o of list(values.scenarios))
  if (!(SCENARIO_NAMES as readonly string[]).includes(o)) fail(`--scenarios: unknown scenario "${o}"`);
for (const o of list(values.systems)) if (!(SYSTEMS as readonly string[]).includes(o)) fail(`--systems: unknown system "${o}"`);
only.push(...list(values.scenarios), ...list(values.systems));
const onlySystems = only.filter((o): o is SystemName => (SYSTEMS as readonly string[]).includes(o));
const onlyScenarios = only.filter((o): o is ScenarioName => (SCENARIO_NAMES as readonly string[]).includes(o));
const env: Record<string, string> = {};
for (const kv of values['node-env'] ?? []) {
  const i = kv.indexOf('=');
  if (i < 1) fail(`--node-env wants K=V, got ${kv}`);
  env[kv.slice(0, i)] = kv.slice(i + 1);
}

const overrides: Record<string, Record<string, unknown>> = {};
for (const kv of values.set ?? []) {
  const m = /^([a-z-]+)\.([A-Za-z0-9_.]+)=(.*)$/s.exec(kv);
  if (!m || !(SCENARIO_NAMES as readonly string[]).includes(m[1]!)) fail(`--set wants scenario.param=value, got ${kv}`);
  let value: unknown;
  try {
    value = JSON.parse(m[3]!);
  } catch {
    value = m[3];
  }
  // a.b.c=v → { a: { b: { c: v } } }
  const path = m[2]!.split('.');
  let node: Record<string, unknown> = (overrides[m[1]!] ??= {});
  for (const k of path.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
}

const controller = new AbortController();
let interrupts = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (++interrupts > 1) process.exit(130); // the exit handler still kills every child
    process.stderr.write(`\nbench: ${sig}: stopping everything (again to force)…\n`);
    controller.abort(new Error(`interrupted by ${sig}`));
  });
}

try {
  const { result } = await runBench(
    {
      smoke: values.smoke,
      systems: onlySystems.length ? SYSTEMS.filter((s) => onlySystems.includes(s)) : [...SYSTEMS],
      scenarios: onlyScenarios.length ? SCENARIO_NAMES.filter((s) => onlyScenarios.includes(s)) : [...SCENARIO_NAMES],
      nodes: int('nodes', values.nodes, 2, 1),
      workers: int('workers', values.workers, values.smoke ? 2 : 4, 1),
      outDir: values.out ?? DEFAULT_OUT,
      reuseClusters: values['reuse-clusters'] || values.smoke,
      maxMinutes: Number(values['max-minutes'] ?? (values.smoke ? 5 : 60)) || 60,
      ...(values.rounds !== undefined ? { rounds: int('rounds', values.rounds, 3, 1) } : {}),
      quick: values.quick,
      command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
      switchboardEnv: env,
      overrides,
      quiet: values.quiet,
    },
    controller.signal,
  );
  for (const e of result.errors) process.stderr.write(`bench: ${e.split('\n')[0]}\n`);
  process.exitCode = result.complete ? 0 : 1;
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
