// fanout: subscribers of `channels` channels on the last node, publishers on node 1. First the fixed rate (rounds
// alternating systems): cross-node latency and server CPU per delivery. Then, per system, the rate steps up until a
// step misses (p99 over the limit, loss, or the offered rate not met), and the best rate must hold for `holdSeconds`.
import type { Cluster, SystemName } from '../cluster.js';
import type { PubSubAgg } from '../aggregate.js';
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
  await ctx.clusters.release();
  return systems.map((system) => {
    const agg = aggs.get(system);
    if (failures.has(system) || !agg) return failures.get(system) ?? failedRun(system, 'not run');
    const rate = rates.get(system);
    const run = pubsubRun(system, scenario, agg, { maxDeliveryRatePerSecond: rate?.held ?? null }, { maxRate: rate?.steps ?? [] });
    if (rate?.error) run.errors.push(`max rate: ${rate.error}`);
    return run;
  });
};
