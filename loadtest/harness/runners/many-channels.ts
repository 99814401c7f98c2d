// many-channels: connections spread over every node, each in `channelsPerConnection` of `channels` channels;
// publications (HTTP API by default) round-robin over the channels from node 1; rounds alternate systems.
import type { SystemName } from '../cluster.js';
import { summarize } from '../histogram.js';
import type { SystemRun } from '../results.js';
import { PubSubAgg } from '../aggregate.js';
import { PubSubSession, roundOrder } from '../session.js';
import { failedRun, guarded, pubsubRun, type Runner } from './common.js';

export const runManyChannels: Runner<'many-channels'> = async ({ ctx, scenario, params: p, systems, nodes }) => {
  if (p.channelsPerConnection > p.channels) throw new Error('many-channels: channelsPerConnection must not exceed channels');
  const aggs = new Map<SystemName, PubSubAgg>();
  const failures = new Map<SystemName, SystemRun>();
  for (let r = 0; r < p.rounds; r++) {
    for (const system of roundOrder(systems, r)) {
      if (failures.has(system)) continue;
      await guarded(
        ctx,
        async () => {
          const cluster = await ctx.clusters.get(system);
          const s = new PubSubSession(ctx, {
            label: `${system}.mc${r}`,
            cluster,
            subscribers: p.connections,
            subscriberNodes: cluster.nodes.map((n) => n.index),
            plan: { prefix: `${p.channelPrefix}:${ctx.runId}:mc${r}`, channels: p.channels, perClient: p.channelsPerConnection },
            publisherNode: 0,
            publishVia: p.publishVia,
            event: p.event,
            payloadBytes: p.payloadBytes,
            strictSeq: false,
          });
          const label = `many-channels · ${system} · round ${r + 1}/${p.rounds} · ${p.publishRate} pub/s over ${p.channels} channels`;
          ctx.progress.phase(`${label} · setting up`);
          try {
            await s.open();
            const res = await s.phase({ rate: p.publishRate, warmupSeconds: p.warmupSeconds, measureSeconds: p.durationSeconds / p.rounds, status: label });
            const agg = aggs.get(system) ?? new PubSubAgg();
            aggs.set(system, agg);
            agg.add(res, s.connectErrors + s.subscribeErrors);
            for (const e of s.errors) if (!agg.errors.includes(e)) agg.errors.push(e);
            const lat = summarize(res.window.latency);
            ctx.progress.log(`${label}: ${Math.round(res.window.received / res.seconds)} deliveries/s, p50 ${lat.med} p99 ${lat.p99} ms, lost ${res.lost}`);
          } finally {
            await s.close();
          }
        },
        (err) => failures.set(system, failedRun(system, err)),
      );
    }
  }
  await ctx.clusters.release();
  return systems.map((system) => {
    const agg = aggs.get(system);
    if (failures.has(system) || !agg) return failures.get(system) ?? failedRun(system, 'not run');
    return pubsubRun(system, scenario, agg, { subscriptions: p.connections * p.channelsPerConnection });
  });
};
