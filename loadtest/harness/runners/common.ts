// What the scenario runners share: the runner signature, the round loop with per-system error capture, one
// fixed-rate pub/sub round, and turning a pub/sub aggregate into a SystemRun.
import type { Cluster, SystemName, Variant } from '../cluster.js';
import type { ChannelPlan, PublishVia } from '../messages.js';
import type { SystemRun } from '../results.js';
import type { ParamsOf, ScenarioName, ScenarioOf } from '../scenarios.js';
import { PubSubAgg, pubsubMetrics, round, type PhaseResult } from '../aggregate.js';
import { PubSubSession, errorText, roundOrder, type Ctx, type PhaseOptions } from '../session.js';
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

/**
 * The warm-up of round `r`: a fresh cluster's first round warms up for at least 3 s (or the measured time, if
 * shorter). Nothing is compiled yet and connection pools are still filling; with a 1-2 s warm-up every system's
 * first round stalled for up to a second and made the round's p99 (rpc, many-channels).
 */
export function warmupOf(r: number, warmupSeconds: number, measureSeconds: number): number {
  return r === 0 ? Math.max(warmupSeconds, Math.min(3, measureSeconds)) : warmupSeconds;
}

/** A SystemRun that only says what went wrong. */
export function failedRun(system: SystemName, err: unknown, variant?: Variant): SystemRun {
  return {
    system,
    ...(variant ? { variant } : {}),
    seconds: 0,
    metrics: {},
    figures: {},
    thresholds: [],
    ok: false,
    errors: [errorText(err)],
  };
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

/**
 * The loop every runner shares: `rounds` rounds, systems alternating (ABC, CBA, …) to cancel drift. A system that
 * fails is recorded once and left out of later rounds; an abort propagates. Returns the failures.
 */
export async function eachRound(
  ctx: Ctx,
  systems: readonly SystemName[],
  rounds: number,
  fn: (system: SystemName, r: number) => Promise<void>,
  o: { variant?: Variant; afterRound?: () => Promise<void> } = {},
): Promise<Map<SystemName, SystemRun>> {
  const failures = new Map<SystemName, SystemRun>();
  for (let r = 0; r < rounds; r++) {
    for (const system of roundOrder(systems, r)) {
      if (failures.has(system)) continue;
      await guarded(
        ctx,
        () => fn(system, r),
        (err) => failures.set(system, failedRun(system, err, o.variant)),
      );
    }
    await o.afterRound?.();
  }
  return failures;
}

/** A session with its subscribers spread over every node of `cluster` and publications entering at node 1. */
export function spreadSession(
  ctx: Ctx,
  cluster: Cluster,
  label: string,
  o: { subscribers: number; plan: ChannelPlan; publishVia: PublishVia; event: string; payloadBytes: number; strictSeq: boolean },
): PubSubSession {
  return new PubSubSession(ctx, { label, cluster, subscriberNodes: cluster.nodes.map((n) => n.index), publisherNode: 0, ...o });
}

/** One fixed-rate pub/sub round: open the session, measure one phase into the system's aggregate, log, close. */
export async function pubsubRound(
  ctx: Ctx,
  aggs: Map<SystemName, PubSubAgg>,
  system: SystemName,
  s: PubSubSession,
  o: PhaseOptions,
): Promise<PhaseResult> {
  ctx.progress.phase(`${o.status} · setting up`);
  try {
    await s.open();
    const res = await s.phase(o);
    const agg = aggs.get(system) ?? new PubSubAgg();
    aggs.set(system, agg);
    agg.add(res, s.connectErrors + s.subscribeErrors);
    for (const e of s.errors) if (!agg.errors.includes(e)) agg.errors.push(e);
    const lat = summarize(res.window.latency);
    ctx.progress.log(
      `${o.status}: ${Math.round(res.window.received / res.seconds)} deliveries/s, p50 ${lat.med} p99 ${lat.p99} p99.9 ${lat.p999} ms, CPU ${(res.cpu.nodes / (res.window.received / 1000 || 1)).toFixed(4)} s/1k, lost ${res.lost}`,
    );
    return res;
  } finally {
    await s.close();
  }
}

export function finish(run: Omit<SystemRun, 'ok'>): SystemRun {
  return { ...run, ok: run.errors.length === 0 && run.thresholds.every((t) => t.ok !== false) };
}

/** A pub/sub scenario's SystemRun: k6-named metrics, thresholds, and the common figures. */
export function pubsubRun(
  system: SystemName,
  scenario: ScenarioOf<ScenarioName>,
  agg: PubSubAgg,
  extraFigures: Record<string, number | null> = {},
  details?: unknown,
): SystemRun {
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
      // Arrivals at or below a publisher's highest sequence already seen: duplicates, or reordering.
      lateOrRepeated: agg.window.seqLate,
      publishBehind: agg.window.pubBehind,
      ...extraFigures,
    },
    thresholds: evaluate(scenario.thresholds, metrics, { sb_e2e_latency: agg.window.latency, sb_ack_latency: agg.window.ackLatency }),
    rounds: agg.rounds,
    ...(details ? { details } : {}),
    errors: agg.errors,
  });
}
