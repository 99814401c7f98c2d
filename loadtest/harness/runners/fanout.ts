// fanout: subscribers of `channels` channels on the last node, publishers on node 1. First the fixed rate (rounds
// alternating systems): cross-node latency and server CPU per delivery. Then, per system, the rate steps up until a
// step misses (p99 over the limit, loss, or the offered rate not met), and the best rate must hold for `holdSeconds`.
// Then, with `highPublishRate`, a second fixed rate in rounds of its own for the systems `highRateSystems` names (a
// system that cannot hold it would only queue and lose): its figures are the `highRate…` ones, per round as the others.
import type { Cluster, SystemName } from '../cluster.js';
import type { RoundFigures, SystemRun } from '../results.js';
import { round, type PubSubAgg } from '../aggregate.js';
import { summarize } from '../histogram.js';
import { PubSubSession, roundOrder, type Ctx } from '../session.js';
import type { FanoutParams } from '../scenarios.js';
import { eachRound, failedRun, pubsubRound, pubsubRun, warmupOf, type Runner } from './common.js';
import { maxRate, maxRates } from './max-rate.js';

function session(ctx: Ctx, system: SystemName, p: FanoutParams, nodes: number, tag: string, cluster: Cluster) {
  return new PubSubSession(ctx, {
    label: `${system}.${tag}`,
    cluster,
    subscribers: p.subscribers,
    subscriberNodes: [nodes - 1],
    plan: { prefix: `${p.channelPrefix}:${ctx.runId}:fanout:${tag}`, channels: p.channels, perClient: 1 },
    publisherNode: 0,
    publishVia: p.publishVia,
    event: p.event,
    payloadBytes: p.payloadBytes,
    strictSeq: false,
  });
}

export const runFanout: Runner<'fanout'> = async ({ ctx, scenario, params: p, systems, nodes }) => {
  const aggs = new Map<SystemName, PubSubAgg>();
  const failures = await eachRound(ctx, systems, p.rounds, async (system, r) => {
    const cluster = await ctx.clusters.get(system);
    const status = `fanout · ${system} · round ${r + 1}/${p.rounds} · ${p.publishRate} pub/s`;
    await pubsubRound(ctx, aggs, system, session(ctx, system, p, nodes, `r${r}`, cluster), {
      rate: p.publishRate,
      warmupSeconds: warmupOf(r, p.warmupSeconds, p.durationSeconds / p.rounds),
      measureSeconds: p.durationSeconds / p.rounds,
      status,
    });
  });
  const order = roundOrder(systems, p.rounds).filter((s) => !failures.has(s));
  const rates = await maxRates(ctx, order, async (system) => {
    const cluster = await ctx.clusters.get(system as SystemName);
    return maxRate(ctx, `fanout · ${system}`, session(ctx, system as SystemName, p, nodes, 'max', cluster), p.maxRate);
  });
  const high = p.highPublishRate === undefined ? undefined : await highRate(ctx, p, p.highPublishRate, nodes, order, rates);
  await ctx.clusters.release();
  return systems.map((system) => {
    const agg = aggs.get(system);
    if (failures.has(system) || !agg) return failures.get(system) ?? failedRun(system, 'not run');
    const rate = rates.get(system);
    const run = pubsubRun(system, scenario, agg, { maxDeliveryRatePerSecond: rate?.held ?? null }, { maxRate: rate?.steps ?? [] });
    if (rate?.error) run.errors.push(`max rate: ${rate.error}`);
    if (high) addHighRate(run, high, system);
    return run;
  });
};

interface HighRate {
  deliveryRate: number;
  aggs: Map<SystemName, PubSubAgg>;
  failures: Map<SystemName, SystemRun>;
  /** Systems left out, and why. */
  skipped: Map<SystemName, string>;
}

/** The second fixed rate: alternated rounds of the systems `highRateSystems` names (all, when it is unset). */
async function highRate(
  ctx: Ctx,
  p: FanoutParams,
  publishRate: number,
  nodes: number,
  order: readonly SystemName[],
  rates: Map<string, { held: number | null }>,
): Promise<HighRate> {
  const deliveryRate = (publishRate * p.subscribers) / p.channels;
  const skipped = new Map<SystemName, string>();
  for (const system of new Set(order)) {
    if (p.highRateSystems && !(p.highRateSystems as readonly string[]).includes(system)) {
      const held = rates.get(system)?.held;
      skipped.set(
        system,
        `not measured at ${Math.round(deliveryRate)} deliveries/s (highRateSystems leaves it out; its search held ${held ? `${Math.round(held)}/s` : 'no rate'})`,
      );
    }
  }
  const systems = [...new Set(order)].filter((s) => !skipped.has(s));
  const aggs = new Map<SystemName, PubSubAgg>();
  const failures = await eachRound(ctx, systems, p.rounds, async (system, r) => {
    const cluster = await ctx.clusters.get(system);
    await pubsubRound(ctx, aggs, system, session(ctx, system, p, nodes, `h${r}`, cluster), {
      rate: publishRate,
      warmupSeconds: warmupOf(r, p.warmupSeconds, p.durationSeconds / p.rounds),
      measureSeconds: p.durationSeconds / p.rounds,
      status: `fanout · ${system} · high rate · round ${r + 1}/${p.rounds} · ${publishRate} pub/s`,
    });
  });
  return { deliveryRate, aggs, failures, skipped };
}

/** The high rate's figures on a system's run: `highRate<Figure>` overall and in each round (rounds pair up in order). */
function addHighRate(run: SystemRun, high: HighRate, system: SystemName) {
  run.figures.highRateDeliveriesOffered = high.deliveryRate;
  const skipped = high.skipped.get(system);
  // Not an error: highRateSystems leaves a system out on purpose, and its run says why.
  if (skipped) run.details = { ...(run.details as object), highRate: skipped };
  const failed = high.failures.get(system)?.errors[0];
  if (failed) run.errors.push(`high rate: ${failed}`);
  const agg = high.aggs.get(system);
  if (!agg || high.failures.has(system)) return;
  const lat = summarize(agg.window.latency);
  const overall: RoundFigures = {
    deliveriesPerSecond: agg.seconds > 0 ? Math.round(agg.window.received / agg.seconds) : null,
    cpuSecondsPer1kDeliveries: agg.cpuPer1k,
    latencyP50Ms: lat.med,
    latencyP99Ms: lat.p99,
    serverCpuPercent: agg.seconds > 0 ? round((agg.cpuNodes / agg.seconds) * 100, 1) : null,
    lost: agg.lost,
  };
  for (const [k, v] of Object.entries(overall)) run.figures[highName(k)] = v;
  // The headline's "lost" column reads the fixed rate's: a loss here must not pass silently beside its CPU figure.
  if (agg.lost > 0) run.errors.push(`high rate: ${agg.lost} deliveries lost at ${Math.round(high.deliveryRate)}/s`);
  run.rounds?.forEach((r, i) => {
    for (const [k, v] of Object.entries(agg.rounds[i] ?? {})) r[highName(k)] = v;
  });
}

const highName = (figure: string) => `highRate${figure[0]!.toUpperCase()}${figure.slice(1)}`;
