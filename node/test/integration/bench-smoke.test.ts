// The load suite holds together: the k6 scripts type-check, the scenario files validate against the one schema, and
// a seconds-long harness run against one node of each system (switchboard, plain, stock, ceiling) writes a well-formed
// result with nothing lost. Shapes and loss only: never speed.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadScenarios, SCENARIO_DIR } from '../../../loadtest/harness/load-scenarios.js';
import type { BenchResult, CounterSummary, SystemRun } from '../../../loadtest/harness/results.js';
import {
  HARNESS_ONLY,
  METRICS,
  SCENARIO_NAMES,
  parseScenario,
  resolveParams,
  scenarioJsonSchema,
} from '../../../loadtest/harness/scenarios.js';
import { systemsFor } from '../../../loadtest/harness/bench.js';
import { SOCKETIO_SYSTEMS } from '../../../loadtest/harness/cluster.js';

const root = join(fileURLToPath(import.meta.url), '../../../../..');
const tsc = join(root, 'node_modules/.bin/tsc');
const mainJs = join(root, 'dist/loadtest/harness/main.js');
const out = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
after(() => rmSync(out, { recursive: true, force: true }));

test('the k6 scripts type-check against @types/k6', () => {
  const r = spawnSync(tsc, ['-p', join(root, 'loadtest/k6'), '--noEmit'], { encoding: 'utf8', cwd: root });
  assert.equal(r.status, 0, `tsc -p loadtest/k6 --noEmit failed:\n${r.stdout}${r.stderr}`);
  for (const name of SCENARIO_NAMES)
    if (!HARNESS_ONLY.includes(name)) assert.ok(existsSync(join(root, `loadtest/k6/${name}.ts`)), `loadtest/k6/${name}.ts is missing`);
});

test('every scenario file validates, and each profile resolves to complete parameters', () => {
  const scenarios = loadScenarios();
  assert.deepEqual(scenarios.map((s) => s.name).sort(), [...SCENARIO_NAMES].sort());
  for (const s of scenarios) {
    assert.ok(Object.keys(s.thresholds).length > 0, `${s.name} has no thresholds`);
    for (const m of Object.keys(s.thresholds)) assert.ok(m in METRICS, `${s.name}: unknown metric ${m}`);
    const base = resolveParams(s, 'base');
    const smoke = resolveParams(s, 'smoke');
    assert.ok(base.durationSeconds >= smoke.durationSeconds, `${s.name}: smoke must not outlast the base profile`);
  }
});

test('the schema rejects what it should', () => {
  const good = JSON.parse(readFileSync(join(SCENARIO_DIR, 'rpc.json'), 'utf8')) as Record<string, unknown>;
  const bad = (mutate: (s: Record<string, unknown>) => void) => {
    const copy = structuredClone(good);
    mutate(copy);
    return () => parseScenario(copy, 'test');
  };
  assert.doesNotThrow(bad(() => undefined));
  assert.throws(
    bad((s) => ((s.thresholds as Record<string, unknown>).sb_nonsense = ['count==0'])),
    /sb_nonsense|thresholds/,
  );
  assert.throws(
    bad((s) => ((s.thresholds as Record<string, unknown>).sb_ack_latency = ['p99 below 100'])),
    /threshold/,
  );
  assert.throws(
    bad((s) => delete (s.params as Record<string, unknown>).callRate),
    /callRate/,
  );
  assert.throws(
    bad((s) => ((s.params as Record<string, unknown>).callRate = -1)),
    /callRate/,
  );
  assert.throws(
    bad((s) => ((s.params as Record<string, unknown>).unknownKnob = 1)),
    /unknownKnob/,
  );
  assert.throws(
    bad((s) => ((s.profiles as Record<string, Record<string, unknown>>).smoke!.clients = 0)),
    /clients/,
  );
});

test('scenario.schema.json is the zod schema, regenerated', () => {
  const onDisk = JSON.parse(readFileSync(join(SCENARIO_DIR, 'scenario.schema.json'), 'utf8')) as unknown;
  assert.deepEqual(onDisk, scenarioJsonSchema(), 'stale: run `node dist/loadtest/harness/main.js --write-schema`');
});

/** Runs the harness CLI; resolves with its exit code and output. Killed (and failed) after `ms`. */
function harness(args: string[], ms: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [mainJs, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d));
    p.stderr.on('data', (d: Buffer) => (output += d));
    const timer = setTimeout(() => {
      output += `\n[test] killed after ${ms} ms`;
      p.kill('SIGINT');
      setTimeout(() => p.kill('SIGKILL'), 5000).unref();
    }, ms);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function counter(run: SystemRun, name: keyof typeof METRICS): number | undefined {
  return (run.metrics[name] as CounterSummary | undefined)?.count;
}

/** Processes started from dist/loadtest (workers, baselines, backend) or the bench's Pushpin still alive. */
function leftovers(): string[] {
  const found: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if ((cmd.includes(join(root, 'dist/loadtest/')) && !cmd.includes('main.js')) || cmd.includes('sb-bench-pushpin-'))
        found.push(`${d}: ${cmd}`);
    } catch {
      // gone
    }
  }
  return found;
}

const hasPushpin = spawnSync('sh', ['-c', 'command -v pushpin']).status === 0;
if (!hasPushpin && process.env.CI === 'true') throw new Error('pushpin is required under CI=true: apt-get install -y pushpin');

test('a smoke run against one node of each system writes a well-formed result with no loss', { timeout: 340_000 }, async (t) => {
  // Without Pushpin the SSE scenario runs Switchboard alone (install it: apt-get install -y pushpin).
  if (!hasPushpin) t.diagnostic('pushpin not installed: sse-fanout runs without it (apt-get install -y pushpin)');
  const only = hasPushpin ? [] : ['--only', SOCKETIO_SYSTEMS.join(',')];
  const { code, output } = await harness(['--smoke', '--nodes', '1', '--workers', '2', '--out', out, ...only], 320_000);
  assert.equal(code, 0, `harness exited ${code}:\n${output}`);
  const files = readdirSync(out);
  const json = files.find((f) => f.endsWith('.json'));
  assert.ok(json, `no result JSON in ${out}: ${files.join(', ')}`);
  const stem = json.slice(0, -'.json'.length);
  assert.ok(files.includes(`${stem}.md`) && files.includes(`${stem}.svg`), `expected ${stem}.md and .svg beside the JSON`);

  const r = JSON.parse(readFileSync(join(out, json), 'utf8')) as BenchResult;
  assert.equal(r.version, 1);
  assert.equal(r.mode, 'smoke');
  assert.deepEqual(r.errors, []);
  assert.equal(r.complete, true);
  assert.deepEqual(
    r.options.systems,
    hasPushpin ? ['switchboard', 'plain', 'stock', 'ceiling', 'pushpin'] : ['switchboard', 'plain', 'stock', 'ceiling'],
  );
  assert.equal(r.options.nodes, 1);
  assert.deepEqual(
    r.scenarios.map((s) => s.name),
    [...SCENARIO_NAMES],
  );

  for (const s of r.scenarios) {
    assert.equal(s.error, undefined, `${s.name}: ${s.error}`);
    const expectedRuns = systemsFor(s.name, r.options.systems).length * (s.name === 'rpc' ? 2 : 1);
    assert.equal(s.runs.length, expectedRuns, `${s.name}: ${s.runs.length} runs`);
    for (const run of s.runs) {
      const who = `${s.name}/${run.system}${run.variant ? `/${run.variant}` : ''}`;
      assert.deepEqual(run.errors, [], `${who}: ${run.errors.join('; ')}`);
      assert.ok(run.seconds > 0, `${who}: nothing measured`);
      assert.ok(run.thresholds.length > 0, `${who}: thresholds not evaluated`);
      for (const t of run.thresholds) assert.ok(t.ok === null || typeof t.ok === 'boolean');
      assert.equal(counter(run, 'sb_connect_errors'), 0, `${who}: connection errors`);
      switch (s.name) {
        case 'connect-storm': {
          const p = s.params as { connections: number };
          assert.equal(run.figures.connections, p.connections, `${who}: not every connection completed`);
          assert.equal(run.figures.heldAfterIdle, p.connections, `${who}: connections dropped while idle`);
          assert.ok((run.figures.handshakesPerSecond ?? 0) > 0);
          assert.equal(typeof run.figures.rssKiBPerIdleConnection, 'number');
          break;
        }
        case 'idle': {
          const p = s.params as { connections: number };
          assert.equal(run.figures.connections, p.connections, `${who}: not every connection subscribed`);
          assert.equal(run.figures.heldAfterIdle, p.connections, `${who}: connections dropped while idle`);
          assert.equal(typeof run.figures.rssKiBPerIdleSubscribedConnection, 'number');
          assert.equal(typeof run.figures.cpuPercentPer10kIdleConnections, 'number');
          break;
        }
        case 'bus-capacity':
          assert.equal(counter(run, 'sb_messages_lost'), 0, `${who}: lost publications`);
          assert.equal(counter(run, 'sb_publish_errors'), 0, `${who}: publish errors`);
          assert.ok((run.figures['oneRedis.publicationsPerSecond'] ?? 0) > 0, `${who}: nothing published`);
          assert.equal(run.figures['oneRedis.idleNodeBusReceived'], 0, `${who}: the node without subscribers received publications`);
          assert.equal(run.figures['oneRedis.shard1.sharePct'], 100);
          break;
        case 'rpc':
          assert.equal(counter(run, 'sb_rpc_errors'), 0, `${who}: rpc errors`);
          assert.ok((run.figures.callsPerSecond ?? 0) > 0, `${who}: no calls answered`);
          break;
        default:
          assert.ok((counter(run, 'sb_deliveries') ?? 0) > 0, `${who}: nothing delivered`);
          assert.equal(counter(run, 'sb_messages_lost'), 0, `${who}: lost publications`);
          assert.equal(run.figures.lost, 0, `${who}: lost publications`);
          assert.equal(counter(run, 'sb_publish_errors'), 0, `${who}: publish errors`);
          if (s.name !== 'soak') assert.ok((run.figures.expectedDeliveries ?? 0) > 0, `${who}: no expected deliveries`);
      }
      if (s.name === 'soak') assert.ok((run.figures.reconnects ?? 0) > 0, `${who}: churn made no reconnects`);
    }
  }
  const soakSb = r.scenarios.find((s) => s.name === 'soak')!.runs.find((x) => x.system === 'switchboard')!;
  assert.equal(soakSb.figures.unrecovered, 0, 'Switchboard resubscribes with `since` should recover from history');

  for (const system of SOCKETIO_SYSTEMS) {
    const f = r.figures[system];
    assert.ok(f, `no figures for ${system}`);
    for (const k of ['cpuSecondsPer1kDeliveries', 'rssKiBPerIdleConnection', 'handshakesPerSecondPerNode'] as const)
      assert.equal(typeof f[k], 'number', `${system}.${k}`);
    assert.ok(
      f.crossNodeLatencyMs && f.crossNodeLatencyMs.p50 <= f.crossNodeLatencyMs.p99 && f.crossNodeLatencyMs.p99 <= f.crossNodeLatencyMs.p999,
      `${system}: latency percentiles out of order`,
    );
    assert.ok(f.maxDeliveryRatePerSecond === null || f.maxDeliveryRatePerSecond > 0);
  }
  assert.deepEqual(Object.keys(r.ratios).sort(), ['switchboard/ceiling', 'switchboard/plain', 'switchboard/stock']);
  // fanout's high rate: measured for each system highRateSystems names, and otherwise said why not.
  for (const run of r.scenarios.find((s) => s.name === 'fanout')!.runs) {
    const why = (run.details as { highRate?: unknown } | undefined)?.highRate;
    if (run.system === 'switchboard' || why === undefined) {
      assert.equal(typeof run.figures.highRateCpuSecondsPer1kDeliveries, 'number', `fanout/${run.system}: high-rate CPU`);
      assert.equal(run.figures.highRateLost, 0, `fanout/${run.system}: lost at the high rate`);
      assert.ok(
        run.rounds?.every((x) => typeof x.highRateLatencyP99Ms === 'number'),
        `fanout/${run.system}: high-rate p99 per round`,
      );
    } else assert.match(String(why), /highRateSystems leaves it out/);
  }
  const sse = r.scenarios.find((s) => s.name === 'sse-fanout')!;
  for (const run of sse.runs) assert.equal(typeof run.figures.rssKiBPerStream, 'number', `sse-fanout/${run.system}: RSS per stream`);

  // Every headline row names its scenario's systems, and Switchboard ÷ each of them (the spread over rounds).
  for (const h of r.headlines) {
    assert.ok(h.values.switchboard !== undefined, `${h.label}: no Switchboard column`);
    const others = systemsFor(h.scenario, r.options.systems).filter((x) => x !== 'switchboard');
    assert.deepEqual(Object.keys(h.ratios).sort(), others.map((x) => `switchboard/${x}`).sort(), `${h.label}: ratios`);
  }
  assert.ok(r.headlines.some((h) => h.scenario === 'sse-fanout') && r.headlines.some((h) => h.scenario === 'idle'));
  assert.match(r.command, /^npm run bench -- --smoke/);

  const md = readFileSync(join(out, `${stem}.md`), 'utf8');
  assert.match(md, /## Headline figures/);
  for (const name of SCENARIO_NAMES) assert.match(md, new RegExp(`### ${name}`));
  const svg = readFileSync(join(out, `${stem}.svg`), 'utf8');
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\s*$/);
  assert.ok((svg.match(/<rect /g) ?? []).length > 3, 'the chart has no bars');

  assert.deepEqual(leftovers(), [], 'the harness left processes running');
});
