// idle: `connections` WebSocket connections into one node, each subscribed to one of `channels` channels, held idle
// for `holdSeconds` (only Engine.IO pings move): RSS growth per connection (VmRSS of the server before connecting
// and at the end of the hold) and server CPU per 10,000 idle connections (CPU seconds per second, in % of one core).
import type { SystemName } from '../cluster.js';
import { counter, round } from '../aggregate.js';
import { evaluate } from '../thresholds.js';
import { sleep } from '../clock.js';
import type { Peek } from '../messages.js';
import { PubSubSession } from '../session.js';
import { eachRound, failedRun, finish, type Runner } from './common.js';

interface Round {
  connections: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  rssKiBPerIdleSubscribedConnection: number;
  cpuPercentPer10kIdleConnections: number;
  held: number;
}

export const runIdle: Runner<'idle'> = async ({ ctx, scenario, params: p, systems }) => {
  const acc = new Map<SystemName, { rounds: Round[]; failed: number; seconds: number; errors: string[] }>();
  const failures = await eachRound(
    ctx,
    systems,
    p.rounds,
    async (system, r) => {
      const cluster = await ctx.clusters.get(system, 'embedded', 1);
      const a = acc.get(system) ?? { rounds: [], failed: 0, seconds: 0, errors: [] };
      acc.set(system, a);
      const s = new PubSubSession(ctx, {
        label: `${system}.idle${r}`,
        cluster,
        subscribers: p.connections,
        subscriberNodes: [0],
        plan: { prefix: `${p.channelPrefix}:${ctx.runId}:idle${r}`, channels: p.channels, perClient: 1 },
        publisherNode: 0,
        publishVia: 'http',
        event: p.event,
        payloadBytes: 0,
        strictSeq: false,
      });
      const label = `idle · ${system} · round ${r + 1}/${p.rounds} · ${p.connections} subscribed connections`;
      ctx.progress.phase(`${label} · connecting`);
      await sleep(200, ctx.signal);
      const rss0 = cluster.rss(0);
      try {
        await s.open();
        const subscribed = Object.values(s.subsByChannel).reduce((x, y) => x + y, 0);
        // Handshake and subscribe work settles before the idle window starts.
        await sleep(ctx.smoke ? 200 : 2000, ctx.signal);
        ctx.progress.phase(`${label} · idle`);
        const cpu0 = cluster.cpu().perNode[0]!;
        const t0 = Date.now();
        await ctx.progress.wait(p.holdSeconds, ctx.signal);
        const cpu1 = cluster.cpu().perNode[0]!;
        const seconds = (Date.now() - t0) / 1000;
        const rss1 = cluster.rss(0);
        const held = (await ctx.pool.all<Peek>(() => ({ op: 'peek' }))).reduce((n, x) => n + x.connected, 0);
        if (subscribed === 0) throw new Error(`no connection subscribed: ${s.errors.join('; ')}`);
        const round_: Round = {
          connections: subscribed,
          rssBeforeKiB: rss0,
          rssAfterKiB: rss1,
          rssKiBPerIdleSubscribedConnection: round((rss1 - rss0) / subscribed, 3),
          cpuPercentPer10kIdleConnections: round((((cpu1 - cpu0) / seconds) * 100 * 10_000) / subscribed, 3),
          held,
        };
        a.rounds.push(round_);
        a.seconds += seconds;
        a.failed += s.connectErrors + s.subscribeErrors;
        for (const e of s.errors) if (a.errors.length < 10 && !a.errors.includes(e)) a.errors.push(e);
        ctx.progress.log(
          `${label}: RSS +${round_.rssKiBPerIdleSubscribedConnection} KiB/connection, CPU ${round_.cpuPercentPer10kIdleConnections} % of a core per 10k idle connections, ${held} held`,
        );
      } finally {
        await s.close();
      }
    },
    // A fresh node per round: what one round leaves in the heap must not count in the next.
    { afterRound: () => ctx.clusters.release() },
  );
  await ctx.clusters.release();
  const median = (xs: number[]) => {
    const v = [...xs].sort((x, y) => x - y);
    return v.length ? (v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2) : null;
  };
  return systems.map((system) => {
    const a = acc.get(system);
    if (failures.has(system) || !a || a.rounds.length === 0) return failures.get(system) ?? failedRun(system, 'not run');
    const metrics = { sb_connect_errors: counter(a.failed, a.seconds) };
    return finish({
      system,
      seconds: round(a.seconds, 2),
      metrics,
      figures: {
        connections: a.rounds[0]!.connections,
        rssKiBPerIdleSubscribedConnection: median(a.rounds.map((x) => x.rssKiBPerIdleSubscribedConnection)),
        cpuPercentPer10kIdleConnections: median(a.rounds.map((x) => x.cpuPercentPer10kIdleConnections)),
        heldAfterIdle: Math.min(...a.rounds.map((x) => x.held)),
      },
      thresholds: evaluate(scenario.thresholds, metrics, {}),
      rounds: a.rounds.map((x) => ({ ...x })),
      errors: a.errors,
    });
  });
};
