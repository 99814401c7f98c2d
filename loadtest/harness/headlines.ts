// The headline figures of a run, per scenario: each system's value as the median of its rounds, and Switchboard ÷
// each other system per round (systems alternate within a round, so round r of one system is paired with round r of
// the other) summarised as median and min–max, so one noisy round can neither make nor break a claim.
import type { SystemName } from './cluster.js';
import type { Headline, HeadlineRow, ScenarioResult, Spread, SystemRun } from './results.js';

export type { Headline, HeadlineRow, Spread } from './results.js';

export const HEADLINES: readonly Headline[] = [
  { scenario: 'fanout', figure: 'cpuSecondsPer1kDeliveries', label: 'fanout: server CPU s / 1k deliveries', better: 'lower' },
  { scenario: 'fanout', figure: 'latencyP50Ms', label: 'fanout: cross-node p50 ms', better: 'lower' },
  { scenario: 'fanout', figure: 'latencyP99Ms', label: 'fanout: cross-node p99 ms', better: 'lower' },
  { scenario: 'fanout', figure: 'maxDeliveryRatePerSecond', label: 'fanout: highest delivery rate held /s', better: 'higher', once: true },
  {
    scenario: 'fanout',
    figure: 'highRateCpuSecondsPer1kDeliveries',
    label: 'fanout, high rate: server CPU s / 1k deliveries',
    better: 'lower',
  },
  { scenario: 'fanout', figure: 'highRateLatencyP99Ms', label: 'fanout, high rate: cross-node p99 ms', better: 'lower' },
  { scenario: 'many-channels', figure: 'cpuSecondsPer1kDeliveries', label: 'many-channels: server CPU s / 1k deliveries', better: 'lower' },
  { scenario: 'many-channels', figure: 'latencyP99Ms', label: 'many-channels: p99 ms', better: 'lower' },
  { scenario: 'many-channels', figure: 'redisCpuPercent', label: 'many-channels: Redis CPU %', better: 'lower' },
  { scenario: 'rpc', variant: 'embedded', figure: 'cpuSecondsPer1kCalls', label: 'rpc embedded: server CPU s / 1k calls', better: 'lower' },
  { scenario: 'rpc', variant: 'embedded', figure: 'latencyP99Ms', label: 'rpc embedded: p99 ms', better: 'lower' },
  { scenario: 'rpc', variant: 'webhook', figure: 'cpuSecondsPer1kCalls', label: 'rpc webhook: server CPU s / 1k calls', better: 'lower' },
  { scenario: 'rpc', variant: 'webhook', figure: 'latencyP99Ms', label: 'rpc webhook: p99 ms', better: 'lower' },
  { scenario: 'connect-storm', figure: 'handshakesPerSecond', label: 'connect-storm: handshakes /s into one node', better: 'higher' },
  { scenario: 'connect-storm', figure: 'rssKiBPerIdleConnection', label: 'connect-storm: RSS KiB per idle connection', better: 'lower' },
  { scenario: 'idle', figure: 'rssKiBPerIdleSubscribedConnection', label: 'idle: RSS KiB per idle subscribed connection', better: 'lower' },
  { scenario: 'idle', figure: 'cpuPercentPer10kIdleConnections', label: 'idle: CPU % of a core per 10k idle connections', better: 'lower' },
  { scenario: 'soak', figure: 'latencyP99Ms', label: 'soak: p99 ms (with reconnects)', better: 'lower' },
  { scenario: 'sse-fanout', figure: 'cpuSecondsPer1kDeliveries', label: 'sse-fanout: server CPU s / 1k deliveries', better: 'lower' },
  { scenario: 'sse-fanout', figure: 'latencyP99Ms', label: 'sse-fanout: p99 ms', better: 'lower' },
  { scenario: 'sse-fanout', figure: 'rssKiBPerStream', label: 'sse-fanout: RSS KiB per stream', better: 'lower' },
  {
    scenario: 'sse-fanout',
    figure: 'maxDeliveryRatePerSecond',
    label: 'sse-fanout: highest delivery rate held /s',
    better: 'higher',
    once: true,
  },
];

export function spread(values: ReadonlyArray<number | null | undefined>): Spread | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

function runOf(scenarios: readonly ScenarioResult[], h: Headline, system: SystemName): SystemRun | undefined {
  return scenarios
    .find((s) => s.name === h.scenario)
    ?.runs.find((r) => r.system === system && (h.variant === undefined || r.variant === h.variant));
}

/** The per-round values of a figure (the one value when it is measured once, or the run has no rounds). */
function perRound(run: SystemRun | undefined, h: Headline): Array<number | null> {
  if (!run || (run.seconds === 0 && !run.ok)) return [];
  if (h.once || !run.rounds?.length) return [run.figures[h.figure] ?? null];
  return run.rounds.map((r) => r[h.figure] ?? null);
}

function lostOf(run: SystemRun | undefined): number | null {
  if (!run) return null;
  const f = run.figures;
  if (typeof f.lost === 'number') return f.lost;
  const rpcErrors = (run.metrics.sb_rpc_errors as { count?: number } | undefined)?.count;
  return typeof rpcErrors === 'number' ? rpcErrors : null;
}

export function headlineRows(scenarios: readonly ScenarioResult[], systems: readonly SystemName[]): HeadlineRow[] {
  const rows: HeadlineRow[] = [];
  for (const h of HEADLINES) {
    const present = systems.filter((s) => runOf(scenarios, h, s));
    if (present.length === 0) continue;
    const values: HeadlineRow['values'] = {};
    const lost: HeadlineRow['lost'] = {};
    for (const s of present) {
      values[s] = spread(perRound(runOf(scenarios, h, s), h));
      lost[s] = lostOf(runOf(scenarios, h, s));
    }
    const ratios: HeadlineRow['ratios'] = {};
    const sb = perRound(runOf(scenarios, h, 'switchboard'), h);
    if (sb.length) {
      for (const other of present) {
        if (other === 'switchboard') continue;
        const o = perRound(runOf(scenarios, h, other), h);
        const pairs: Array<number | null> = [];
        for (let i = 0; i < Math.min(sb.length, o.length); i++) {
          const a = sb[i];
          const b = o[i];
          pairs.push(typeof a === 'number' && typeof b === 'number' && b !== 0 ? a / b : null);
        }
        ratios[`switchboard/${other}`] = spread(pairs);
      }
    }
    rows.push({ ...h, values, ratios, lost });
  }
  return rows;
}
