// many-channels: connections spread over every node, each in `channelsPerConnection` of `channels` channels;
// publications (HTTP API by default) round-robin over the channels from node 1; rounds alternate systems.
import type { SystemName } from '../cluster.js';
import type { PubSubAgg } from '../aggregate.js';
import { eachRound, failedRun, pubsubRound, pubsubRun, spreadSession, warmupOf, type Runner } from './common.js';

export const runManyChannels: Runner<'many-channels'> = async ({ ctx, scenario, params: p, systems }) => {
  if (p.channelsPerConnection > p.channels) throw new Error('many-channels: channelsPerConnection must not exceed channels');
  const aggs = new Map<SystemName, PubSubAgg>();
  const failures = await eachRound(ctx, systems, p.rounds, async (system, r) => {
    const cluster = await ctx.clusters.get(system);
    const s = spreadSession(ctx, cluster, `${system}.mc${r}`, {
      subscribers: p.connections,
      plan: { prefix: `${p.channelPrefix}:${ctx.runId}:mc${r}`, channels: p.channels, perClient: p.channelsPerConnection },
      publishVia: p.publishVia,
      event: p.event,
      payloadBytes: p.payloadBytes,
      strictSeq: false,
    });
    const status = `many-channels · ${system} · round ${r + 1}/${p.rounds} · ${p.publishRate} pub/s over ${p.channels} channels`;
    await pubsubRound(ctx, aggs, system, s, {
      rate: p.publishRate,
      warmupSeconds: warmupOf(r, p.warmupSeconds, p.durationSeconds / p.rounds),
      measureSeconds: p.durationSeconds / p.rounds,
      status,
    });
  });
  await ctx.clusters.release();
  return systems.map((system) => {
    const agg = aggs.get(system);
    if (failures.has(system) || !agg) return failures.get(system) ?? failedRun(system, 'not run');
    return pubsubRun(system, scenario, agg, { subscriptions: p.connections * p.channelsPerConnection });
  });
};
