// What the scenario runners share: the runner signature, per-system error capture, and turning a pub/sub
// aggregate into a SystemRun.
import type { SystemName, Variant } from '../cluster.js';
import type { SystemRun } from '../results.js';
import type { ParamsOf, ScenarioName, ScenarioOf } from '../scenarios.js';
import { pubsubMetrics, round, type PubSubAgg } from '../aggregate.js';
import { errorText, type Ctx } from '../session.js';
import { summarize } from '../histogram.js';
import { evaluate } from '../thresholds.js';

export interface RunnerInput<N extends ScenarioName> {
  ctx: Ctx;
  scenario: ScenarioOf<N>;
  params: ParamsOf<N>;
  systems: SystemName[];
  nodes: number;
}

export type Runner<N extends ScenarioName> = (input: RunnerInput<N>) => Promise<SystemRun[]>;

/** A SystemRun that only says what went wrong. */
export function failedRun(system: SystemName, err: unknown, variant?: Variant): SystemRun {
  return { system, ...(variant ? { variant } : {}), seconds: 0, metrics: {}, figures: {}, thresholds: [], ok: false, errors: [errorText(err)] };
}

/** Runs `fn`; an abort (Ctrl-C, time limit) propagates, anything else is recorded against the system. */
export async function guarded<T>(ctx: Ctx, fn: () => Promise<T>, onError: (err: unknown) => void): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    ctx.progress.log(`  ! ${errorText(err).split('\n').filter(Boolean).slice(0, 6).join('\n    ')}`);
    onError(err);
    return undefined;
  }
}

export function finish(run: Omit<SystemRun, 'ok'>): SystemRun {
  return { ...run, ok: run.errors.length === 0 && run.thresholds.every((t) => t.ok !== false) };
}

/** A pub/sub scenario's SystemRun: k6-named metrics, thresholds, and the common figures. */
export function pubsubRun(system: SystemName, scenario: ScenarioOf<ScenarioName>, agg: PubSubAgg, extraFigures: Record<string, number | null> = {}, details?: unknown): SystemRun {
  const metrics = pubsubMetrics(agg.window, agg.seconds, { lost: agg.lost, connectErrors: agg.connectErrors });
  const lat = summarize(agg.window.latency);
  return finish({
    system,
    seconds: round(agg.seconds, 2),
    metrics,
    figures: {
      deliveriesPerSecond: agg.seconds > 0 ? Math.round(agg.window.received / agg.seconds) : null,
      publicationsPerSecond: agg.seconds > 0 ? Math.round(agg.window.pubAcked / agg.seconds) : null,
      latencyP50Ms: lat.med,
      latencyP99Ms: lat.p99,
      latencyP999Ms: lat.p999,
      cpuSecondsPer1kDeliveries: agg.cpuPer1k,
      serverCpuPercent: agg.seconds > 0 ? round((agg.cpuNodes / agg.seconds) * 100, 1) : null,
      redisCpuPercent: agg.seconds > 0 ? round((agg.cpuRedis / agg.seconds) * 100, 1) : null,
      clientCpuPercent: agg.seconds > 0 ? round((agg.window.cpuUs / 1e6 / agg.seconds) * 100, 1) : null,
      expectedDeliveries: agg.expected,
      lost: agg.lost,
      extra: agg.extra,
      publishBehind: agg.window.pubBehind,
      ...extraFigures,
    },
    thresholds: evaluate(scenario.thresholds, metrics, { sb_e2e_latency: agg.window.latency, sb_ack_latency: agg.window.ackLatency }),
    details: { rounds: agg.rounds, ...(details as object | undefined) },
    errors: agg.errors,
  });
}
