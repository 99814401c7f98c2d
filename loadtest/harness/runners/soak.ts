// soak: steady publications while a share of subscribers keeps dropping and resubscribing with `since`; loss is
// counted per stream by sequence number (a resubscribe that did not recover restarts that stream), and every node's
// RSS is sampled to show growth.
import type { SystemName } from '../cluster.js';
import { summarize } from '../histogram.js';
import { PubSubAgg, type PhaseResult } from '../aggregate.js';
import { eachRound, failedRun, pubsubRun, spreadSession, type Runner } from './common.js';

export const runSoak: Runner<'soak'> = async ({ ctx, scenario, params: p, systems }) => {
  const aggs = new Map<SystemName, { agg: PubSubAgg; rounds: PhaseResult[] }>();
  const failures = await eachRound(ctx, systems, p.rounds, async (system, r) => {
    const cluster = await ctx.clusters.get(system);
    const s = spreadSession(ctx, cluster, `${system}.soak${r}`, {
      subscribers: p.subscribers,
      plan: { prefix: `${p.channelPrefix}:${ctx.runId}:soak${r}`, channels: p.channels, perClient: 1 },
      publishVia: p.publishVia,
      event: p.event,
      payloadBytes: p.payloadBytes,
      strictSeq: true,
    });
    const label = `soak · ${system} · ${p.publishRate} pub/s, ${Math.round(p.churn.fraction * 100)}% reconnect every ${p.churn.intervalSeconds} s`;
    ctx.progress.phase(`${label} · setting up`);
    let res: PhaseResult;
    try {
      await s.open();
      res = await s.phase({
        rate: p.publishRate,
        warmupSeconds: p.warmupSeconds,
        measureSeconds: p.durationSeconds / p.rounds,
        churn: p.churn,
        rssSampleSeconds: p.sampleSeconds,
        status: label,
      });
    } finally {
      await s.close();
    }
    const a = aggs.get(system) ?? { agg: new PubSubAgg(), rounds: [] };
    aggs.set(system, a);
    a.agg.add(res, s.connectErrors + s.subscribeErrors);
    a.rounds.push(res);
    for (const e of s.errors) if (!a.agg.errors.includes(e)) a.agg.errors.push(e);
    const rss = res.rssSamples.map((x) => x.kib.reduce((m, n) => m + n, 0));
    const lat = summarize(res.window.latency);
    ctx.progress.log(
      `${label}: p99 ${lat.p99} ms, lost ${res.lost}, ${res.window.reconnects} reconnects (${res.window.unrecovered} resubscribes unrecovered, ${res.window.replayed} replayed), RSS ${rss[0] ?? 0} → ${rss[rss.length - 1] ?? 0} KiB`,
    );
  });
  await ctx.clusters.release();
  return systems.map((system) => {
    const a = aggs.get(system);
    if (failures.has(system) || !a) return failures.get(system) ?? failedRun(system, 'not run');
    const w = a.agg.window;
    // RSS of all nodes together, first and last sample of each round.
    const totals = a.rounds.map((r) => r.rssSamples.map((x) => x.kib.reduce((m, n) => m + n, 0)));
    const growth = totals.filter((t) => t.length > 1).map((t) => t[t.length - 1]! - t[0]!);
    return pubsubRun(
      system,
      scenario,
      a.agg,
      {
        reconnects: w.reconnects,
        reconnectFailures: w.reconnectFailures,
        unrecovered: w.unrecovered,
        replayed: w.replayed,
        rssStartKiB: totals[0]?.[0] ?? null,
        rssEndKiB: totals[totals.length - 1]?.at(-1) ?? null,
        rssGrowthKiB: growth.length ? growth.reduce((m, n) => m + n, 0) : null,
      },
      { rssSamples: a.rounds.map((r) => r.rssSamples) },
    );
  });
};
