// sse-fanout: SSE streams on one server — a Switchboard node (publications by POST /api/publish) or Pushpin (GRIP
// publishes to the streams its backend holds) — at a fixed rate in alternating rounds: CPU per 1,000 deliveries,
// latency and RSS per stream; then the highest delivery rate each holds.
import type { Cluster, SystemName } from '../cluster.js';
import type { PubSubAgg } from '../aggregate.js';
import { round } from '../aggregate.js';
import { PubSubSession, roundOrder, type Ctx } from '../session.js';
import type { SseFanoutParams } from '../scenarios.js';
import { eachRound, failedRun, pubsubRound, pubsubRun, type Runner } from './common.js';
import { maxRate, maxRates } from './max-rate.js';

function session(ctx: Ctx, system: SystemName, p: SseFanoutParams, tag: string, cluster: Cluster) {
  return new PubSubSession(ctx, {
    label: `${system}.${tag}`,
    cluster,
    transport: 'sse',
    subscribers: p.streams,
    subscriberNodes: [0],
    plan: { prefix: `${p.channelPrefix}:${ctx.runId}:sse:${tag}`, channels: p.channels, perClient: 1 },
    publisherNode: 0,
    // Each system's own publish path.
    publishVia: system === 'pushpin' ? 'grip' : 'http',
    event: p.event,
    payloadBytes: p.payloadBytes,
    strictSeq: false,
  });
}

export const runSseFanout: Runner<'sse-fanout'> = async ({ ctx, scenario, params: p, systems }) => {
  const aggs = new Map<SystemName, PubSubAgg>();
  const rssPerStream = new Map<SystemName, number[]>();
  const failures = await eachRound(ctx, systems, p.rounds, async (system, r) => {
    const cluster = await ctx.clusters.get(system, 'embedded', 1);
    const rss0 = cluster.rss(0);
    const status = `sse-fanout · ${system} · round ${r + 1}/${p.rounds} · ${p.publishRate} pub/s`;
    const measureSeconds = p.durationSeconds / p.rounds;
    const s = session(ctx, system, p, `r${r}`, cluster);
    const res = await pubsubRound(ctx, aggs, system, s, {
      rate: p.publishRate,
      warmupSeconds: p.warmupSeconds,
      measureSeconds,
      rssSampleSeconds: measureSeconds,
      status,
    });
    const last = res.rssSamples.at(-1)?.kib[0];
    const streams = Object.values(s.subsByChannel).reduce((a, b) => a + b, 0);
    if (last !== undefined && streams > 0) {
      const perStream = round((last - rss0) / streams, 3);
      const list = rssPerStream.get(system) ?? [];
      list.push(perStream);
      rssPerStream.set(system, list);
      const rounds = aggs.get(system)!.rounds;
      rounds[rounds.length - 1]!.rssKiBPerStream = perStream;
    }
  });
  const order = roundOrder(systems, p.rounds).filter((s) => !failures.has(s));
  const rates = await maxRates(ctx, order, async (system) => {
    const cluster = await ctx.clusters.get(system as SystemName, 'embedded', 1);
    return maxRate(ctx, `sse-fanout · ${system}`, session(ctx, system as SystemName, p, 'max', cluster), p.maxRate);
  });
  await ctx.clusters.release();
  return systems.map((system) => {
    const agg = aggs.get(system);
    if (failures.has(system) || !agg) return failures.get(system) ?? failedRun(system, 'not run');
    const rate = rates.get(system);
    const rss = rssPerStream.get(system) ?? [];
    const run = pubsubRun(
      system,
      scenario,
      agg,
      {
        maxDeliveryRatePerSecond: rate?.held ?? null,
        rssKiBPerStream: rss.length ? round(rss.reduce((a, b) => a + b, 0) / rss.length, 3) : null,
      },
      { maxRate: rate?.steps ?? [] },
    );
    if (rate?.error) run.errors.push(`max rate: ${rate.error}`);
    return run;
  });
};
