// connect-storm: opens `connections` sockets into node 1 as fast as `concurrency` allows, holds them idle, and reads
// handshakes per second, server CPU per handshake and RSS per idle connection.
import { engineUrl } from '../../k6/lib/protocol.js';
import { newHistogram, summarize } from '../histogram.js';
import type { Peek, WindowStats } from '../messages.js';
import type { RoundFigures, SystemRun } from '../results.js';
import { counter, mergeWindows, round } from '../aggregate.js';
import { closeGroup, connectClients, nextId, sumConnect } from '../session.js';
import { evaluate } from '../thresholds.js';
import { sleep } from '../clock.js';
import { eachRound, failedRun, finish, type Runner } from './common.js';

export const runConnectStorm: Runner<'connect-storm'> = async ({ ctx, scenario, params: p, systems }) => {
  const acc = new Map<
    string,
    {
      hist: ReturnType<typeof newHistogram>;
      ok: number;
      failed: number;
      seconds: number;
      cpu: number;
      rssPerConn: number[];
      held: number;
      disconnects: number;
      rss: Array<[number, number]>;
      errors: string[];
      rounds: RoundFigures[];
    }
  >();
  const failures = await eachRound(
    ctx,
    systems,
    p.rounds,
    async (system, r) => {
      const cluster = await ctx.clusters.get(system);
      const node = cluster.nodes[0]!;
      const a = acc.get(system) ?? {
        hist: newHistogram(),
        ok: 0,
        failed: 0,
        seconds: 0,
        cpu: 0,
        rssPerConn: [],
        held: 0,
        disconnects: 0,
        rss: [],
        errors: [],
        rounds: [],
      };
      acc.set(system, a);
      const group = nextId('storm');
      ctx.progress.phase(`connect-storm · ${system}${p.rounds > 1 ? ` · round ${r + 1}/${p.rounds}` : ''} · ${p.connections} connections`);
      await sleep(200, ctx.signal);
      const rss0 = cluster.rss(0);
      const cpu0 = cluster.cpu().perNode[0]!;
      await ctx.pool.all(() => ({ op: 'stats', reset: true }));
      const ticker = setInterval(() => {
        void ctx.pool
          .all<Peek>(() => ({ op: 'peek' }))
          .then((ps) => ctx.progress.status(`${ps.reduce((n, x) => n + x.connected, 0)} connected`))
          .catch(() => undefined);
      }, 1000);
      let c;
      try {
        c = sumConnect(await connectClients(ctx, group, p.connections, [engineUrl(node.url)], p.concurrency));
      } finally {
        clearInterval(ticker);
      }
      const cpu1 = cluster.cpu().perNode[0]!;
      ctx.progress.phase(`connect-storm · ${system} · ${c.ok} connected in ${c.seconds.toFixed(1)} s, holding`);
      await ctx.progress.wait(p.holdSeconds, ctx.signal);
      const rss1 = cluster.rss(0);
      const held = (await ctx.pool.all<Peek>(() => ({ op: 'peek' }))).reduce((n, x) => n + x.connected, 0);
      const w = mergeWindows(await ctx.pool.all<WindowStats>(() => ({ op: 'stats', reset: true })));
      ctx.progress.status('closing');
      await closeGroup(ctx, group);
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && (await ctx.pool.all<Peek>(() => ({ op: 'peek' }))).some((x) => x.connected > 0))
        await sleep(100, ctx.signal);
      a.hist.add(c.hist);
      a.ok += c.ok;
      a.failed += c.failed;
      a.seconds += c.seconds;
      a.cpu += cpu1 - cpu0;
      if (c.ok > 0) a.rssPerConn.push((rss1 - rss0) / c.ok);
      a.rss.push([rss0, rss1]);
      a.held += held;
      a.disconnects += w.disconnects;
      for (const e of c.errors) if (!a.errors.includes(e)) a.errors.push(e);
      ctx.progress.log(
        `connect-storm · ${system}: ${c.ok}/${p.connections} in ${c.seconds.toFixed(2)} s = ${Math.round(c.ok / c.seconds)}/s, p99 ${summarize(c.hist).p99} ms, RSS +${((rss1 - rss0) / Math.max(1, c.ok)).toFixed(2)} KiB/conn`,
      );
    },
    { afterRound: () => ctx.clusters.release() },
  );
  return systems.map((system) => {
    const failed = failures.get(system);
    const a = acc.get(system);
    if (failed || !a) return failed ?? failedRun(system, 'not run');
    const metrics = {
      sb_handshake_duration: summarize(a.hist),
      sb_connect_errors: counter(a.failed, a.seconds),
    };
    return finish({
      system,
      seconds: round(a.seconds, 2),
      metrics,
      figures: {
        connections: a.ok,
        handshakesPerSecond: a.seconds > 0 ? Math.round(a.ok / a.seconds) : null,
        serverCpuMsPerHandshake: a.ok > 0 ? round((a.cpu * 1000) / a.ok, 4) : null,
        rssKiBPerIdleConnection: a.rssPerConn.length ? round(a.rssPerConn.reduce((x, y) => x + y, 0) / a.rssPerConn.length, 3) : null,
        rssBeforeKiB: a.rss[0]?.[0] ?? null,
        rssAfterKiB: a.rss[0]?.[1] ?? null,
        heldAfterIdle: a.held,
        droppedWhileIdle: a.disconnects,
      },
      thresholds: evaluate(scenario.thresholds, metrics, { sb_handshake_duration: a.hist }),
      rounds: a.rounds,
      errors: a.errors,
    });
  });
};
