// Runs the benchmark: starts the client workers, runs each selected scenario against each selected system (fresh
// clusters per scenario unless reused), and writes bench/results/<timestamp>.{json,md,svg}. Stops everything it started.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chart } from './chart.js';
import { Clusters, SOCKETIO_SYSTEMS, SSE_SYSTEMS, systemMissing, type SystemName } from './cluster.js';
import { loadScenarios } from './load-scenarios.js';
import { hasBinary, Processes } from './proc.js';
import { Progress } from './progress.js';
import { figuresOf, markdown, ratios, spreadTable } from './report.js';
import { headlineRows } from './headlines.js';
import type { BenchResult, ScenarioResult, SystemRun } from './results.js';
import { SCENARIO_NAMES, deepMerge, resolveParams, type Scenario, type ScenarioName } from './scenarios.js';
import { errorText, type Ctx } from './session.js';
import { Addresses, WorkerPool } from './workers.js';
import { runConnectStorm } from './runners/connect-storm.js';
import { runFanout } from './runners/fanout.js';
import { runManyChannels } from './runners/many-channels.js';
import { runRpc } from './runners/rpc.js';
import { runIdle } from './runners/idle.js';
import { runSoak } from './runners/soak.js';
import { runSseFanout } from './runners/sse-fanout.js';
import { runBusCapacity } from './runners/bus-capacity.js';
import type { RunnerInput } from './runners/common.js';

export const DEFAULT_OUT = fileURLToPath(new URL('../../../bench/results/', import.meta.url));

export interface BenchOptions {
  smoke: boolean;
  systems: SystemName[];
  scenarios: ScenarioName[];
  /** Nodes per system (≥ 1; fanout puts subscribers on the last node, the publisher on node 1). */
  nodes: number;
  workers: number;
  outDir: string;
  /** Keep clusters running across scenarios (default in smoke runs). */
  reuseClusters: boolean;
  /** The run aborts (and still writes what it has) after this long. */
  maxMinutes: number;
  switchboardEnv: Record<string, string>;
  /** Per scenario, parameters merged over the profile's (validated again). */
  overrides?: Partial<Record<ScenarioName, Record<string, unknown>>>;
  quiet: boolean;
  scenarioDir?: string;
  /** Recorded with the results, e.g. `npm run bench -- --quick`. */
  command?: string;
  /** Every scenario runs this many rounds, each as long as the profile's rounds are. */
  rounds?: number;
  /** Shorter rounds for quick checks: each round measures at most 5 s, warm-ups at most 1 s, rate holds 10 s. */
  quick?: boolean;
}

export interface BenchOutput {
  result: BenchResult;
  files: { json: string; md: string; svg: string };
}

/** The profile's parameters with the command line's overrides on top, then `--rounds` and `--quick`. */
function paramsFor<S extends Scenario>(s: S, opts: Pick<BenchOptions, 'smoke' | 'overrides' | 'rounds' | 'quick'>): S['params'] {
  const profile = opts.smoke ? 'smoke' : 'local';
  const over = opts.overrides?.[s.name];
  // Overrides go in as the last profile layer so they are validated like any profile.
  const layered = over
    ? ({
        ...s,
        profiles: { ...s.profiles, [profile]: deepMerge(profile === 'smoke' ? (s.profiles.smoke ?? {}) : (s.profiles.local ?? {}), over) },
      } as S)
    : s;
  const p = resolveParams(layered, profile);
  if (opts.rounds === undefined && !opts.quick) return p;
  const out: Record<string, unknown> = { ...p };
  // A round keeps its length when the count changes; --quick shortens it.
  const perRound = Math.min(p.durationSeconds / p.rounds, opts.quick ? 5 : Infinity);
  out.rounds = opts.rounds ?? p.rounds;
  out.durationSeconds = perRound * (out.rounds as number);
  if (opts.quick) {
    out.warmupSeconds = Math.min(p.warmupSeconds, 1);
    if ('maxRate' in p)
      out.maxRate = { ...p.maxRate, probeSeconds: Math.min(p.maxRate.probeSeconds, 3), holdSeconds: Math.min(p.maxRate.holdSeconds, 10) };
    if (s.name === 'connect-storm') out.holdSeconds = Math.min((p as { holdSeconds: number }).holdSeconds, 2);
  }
  return resolveParams({ ...s, params: out, profiles: {} } as S, 'base', `${s.name} (--rounds/--quick)`);
}

/** The selected systems that a scenario applies to: Socket.IO ones, the SSE ones for sse-fanout, Switchboard alone for bus-capacity. */
export function systemsFor(scenario: ScenarioName, systems: readonly SystemName[]): SystemName[] {
  const applies: readonly SystemName[] =
    scenario === 'sse-fanout' ? SSE_SYSTEMS : scenario === 'bus-capacity' ? ['switchboard'] : SOCKETIO_SYSTEMS;
  return systems.filter((s) => applies.includes(s));
}

function runScenario(s: Scenario, input: Omit<RunnerInput<ScenarioName>, 'scenario' | 'params'>, params: unknown): Promise<SystemRun[]> {
  switch (s.name) {
    case 'connect-storm':
      return runConnectStorm({ ...input, scenario: s, params: params as typeof s.params });
    case 'fanout':
      return runFanout({ ...input, scenario: s, params: params as typeof s.params });
    case 'many-channels':
      return runManyChannels({ ...input, scenario: s, params: params as typeof s.params });
    case 'rpc':
      return runRpc({ ...input, scenario: s, params: params as typeof s.params });
    case 'soak':
      return runSoak({ ...input, scenario: s, params: params as typeof s.params });
    case 'idle':
      return runIdle({ ...input, scenario: s, params: params as typeof s.params });
    case 'sse-fanout':
      return runSseFanout({ ...input, scenario: s, params: params as typeof s.params });
    case 'bus-capacity':
      return runBusCapacity({ ...input, scenario: s, params: params as typeof s.params });
  }
}

/** Which uWebSockets.js build Switchboard (and the ceiling) load here, for the record. */
async function uwsName(): Promise<string | undefined> {
  try {
    const m = (await import(new URL('../../node/src/transport/uws.js', import.meta.url).href)) as { loadUws?: () => { name: string } };
    return m.loadUws?.().name;
  } catch {
    return undefined;
  }
}

function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}

export async function runBench(opts: BenchOptions, outer?: AbortSignal): Promise<BenchOutput> {
  if (!hasBinary('redis-server'))
    throw new Error('the benchmark needs `redis-server`, which is not installed. Install it with: apt-get install -y redis-server');
  const scenarios = loadScenarios(opts.scenarioDir)
    .filter((s) => opts.scenarios.includes(s.name))
    .sort((a, b) => SCENARIO_NAMES.indexOf(a.name) - SCENARIO_NAMES.indexOf(b.name));
  const started = new Date();
  const progress = new Progress(process.stderr, opts.quiet);
  const registry = new Processes();
  const killAll = () => registry.killAll();
  process.on('exit', killAll);
  const limit = new AbortController();
  const timer = setTimeout(() => limit.abort(new Error(`time limit of ${opts.maxMinutes} min reached`)), opts.maxMinutes * 60_000);
  const signal = outer ? AbortSignal.any([outer, limit.signal]) : limit.signal;
  const errors: string[] = [];
  const results: ScenarioResult[] = [];
  for (const s of opts.systems) {
    const missing = systemMissing(s);
    if (missing) errors.push(missing);
  }
  const systems = opts.systems.filter((s) => !systemMissing(s));
  let pool: WorkerPool | undefined;
  const apiKey = `bench-${randomBytes(6).toString('hex')}`;
  const clusters = new Clusters({ nodes: opts.nodes, apiKey, switchboardEnv: opts.switchboardEnv, registry, signal }, opts.reuseClusters);
  let complete = false;
  try {
    pool = await WorkerPool.start(opts.workers, registry);
    const ctx: Ctx = {
      pool,
      clusters,
      registry,
      addresses: new Addresses(),
      progress,
      signal,
      apiKey,
      runId: randomBytes(3).toString('hex'),
      smoke: opts.smoke,
    };
    progress.log(
      `bench ${opts.smoke ? 'smoke ' : ''}run: ${systems.join(', ')} × ${scenarios.map((s) => s.name).join(', ')}; ${opts.nodes} node(s) each, ${opts.workers} client workers`,
    );
    for (const s of scenarios) {
      const t0 = Date.now();
      progress.log(`— ${s.name}: ${s.description}`);
      const res: ScenarioResult = { name: s.name, params: undefined, runs: [], seconds: 0 };
      try {
        res.params = paramsFor(s, opts);
        // Raced against the time limit: a step that never settles (seen once: bus-capacity's cluster start) must not
        // keep the run from ending and writing what it measured.
        res.runs = await untilAborted(runScenario(s, { ctx, systems: systemsFor(s.name, systems), nodes: opts.nodes }, res.params), signal);
      } catch (err) {
        if (signal.aborted) {
          res.error = errorText(signal.reason);
          results.push(res);
          throw err;
        }
        res.error = errorText(err);
        progress.log(`  ! ${s.name} failed: ${res.error.split('\n')[0]}`);
      } finally {
        await clusters.release().catch(() => undefined);
      }
      res.seconds = Math.round((Date.now() - t0) / 100) / 10;
      results.push(res);
    }
    complete = true;
  } catch (err) {
    errors.push(signal.aborted ? `aborted: ${errorText(signal.reason)}` : errorText(err));
  } finally {
    clearTimeout(timer);
    progress.phase('stopping');
    await clusters.stopAll().catch(() => undefined);
    await pool?.stop().catch(() => undefined);
    registry.killAll();
    process.off('exit', killAll);
    progress.end();
  }
  const finished = new Date();
  const figures: BenchResult['figures'] = {};
  for (const s of systems) figures[s] = figuresOf(results, s);
  const result: BenchResult = {
    version: 1,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    seconds: Math.round((finished.getTime() - started.getTime()) / 100) / 10,
    mode: opts.smoke ? 'smoke' : 'full',
    complete: complete && errors.length === 0 && results.every((r) => !r.error),
    machine: {
      cpus: os.cpus().length,
      model: os.cpus()[0]?.model.trim() ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      kernel: os.release(),
      ...(await uwsName().then((uws) => (uws ? { uws } : {}))),
    },
    options: {
      nodes: opts.nodes,
      workers: opts.workers,
      systems,
      scenarios: scenarios.map((s) => s.name),
      reuseClusters: opts.reuseClusters,
      quick: Boolean(opts.quick),
      ...(opts.rounds ? { rounds: opts.rounds } : {}),
    },
    scenarios: results,
    figures,
    ratios: ratios(figures),
    headlines: headlineRows(results, systems),
    command: opts.command ?? 'npm run bench',
    errors,
  };
  mkdirSync(opts.outDir, { recursive: true });
  const base = join(opts.outDir, stamp(started));
  const files = { json: `${base}.json`, md: `${base}.md`, svg: `${base}.svg` };
  writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(files.svg, chart(result));
  writeFileSync(files.md, markdown(result, `${stamp(started)}.svg`));
  if (!opts.quiet) process.stdout.write(`\n${spreadTable(result)}\n\nwrote ${files.md}\n      ${files.json}\n      ${files.svg}\n`);
  return { result, files };
}

/** `p`, or a rejection with the signal's reason as soon as it aborts (whatever `p` is still waiting for). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}
