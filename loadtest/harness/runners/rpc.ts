// rpc: `clients` connections spread over every node call rpc(method, params) at `callRate`; ack latency per system
// and per mode (`embedded`: in-process handler; `webhook`: POST {BACKEND_URL}/rpc/<method>), rounds alternating.
import { engineUrl } from '../../k6/lib/protocol.js';
import type { SystemName, Variant } from '../cluster.js';
import { summarize } from '../histogram.js';
import type { RpcTotals, WindowStats } from '../messages.js';
import type { RoundFigures, SystemRun } from '../results.js';
import { addWindow, counter, emptyWindow, mergeWindows, round } from '../aggregate.js';
import { closeGroup, connectClients, nextId, rateSampler, sumConnect } from '../session.js';
import { evaluate } from '../thresholds.js';
import { nowUs } from '../clock.js';
import { eachRound, failedRun, finish, warmupOf, type Runner } from './common.js';

export const runRpc: Runner<'rpc'> = async ({ ctx, scenario, params: p, systems }) => {
  const runs: SystemRun[] = [];
  for (const mode of p.modes as Variant[]) {
    const acc = new Map<
      SystemName,
      {
        w: ReturnType<typeof emptyWindow>;
        seconds: number;
        cpu: number;
        calls: number;
        failed: number;
        connectErrors: number;
        errors: string[];
        rounds: RoundFigures[];
      }
    >();
    const failures = await eachRound(
      ctx,
      systems,
      p.rounds,
      async (system, r) => {
        const cluster = await ctx.clusters.get(system, mode);
        const group = nextId('rpc');
        const label = `rpc · ${mode} · ${system}${p.rounds > 1 ? ` · round ${r + 1}/${p.rounds}` : ''} · ${p.callRate} calls/s`;
        ctx.progress.phase(`${label} · connecting ${p.clients}`);
        try {
          const c = sumConnect(
            await connectClients(
              ctx,
              group,
              p.clients,
              cluster.nodes.map((n) => engineUrl(n.url)),
              200,
            ),
          );
          if (c.ok === 0) throw new Error(`no client connected: ${c.errors.join('; ')}`);
          await ctx.pool.all(() => ({ op: 'stats', reset: true }));
          await ctx.pool.all(() => ({
            op: 'rpcStart',
            group,
            rate: p.callRate / ctx.pool.size,
            method: p.method,
            payloadBytes: p.payloadBytes,
          }));
          const sampler = rateSampler(ctx);
          const warmup = warmupOf(r, p.warmupSeconds, p.durationSeconds / p.rounds);
          if (warmup > 0) {
            ctx.progress.phase(`${label} · warm-up`);
            await ctx.progress.wait(warmup, ctx.signal, sampler);
          }
          await ctx.pool.all(() => ({ op: 'stats', reset: true }));
          const cpu0 = cluster.cpu().nodes;
          const t0 = Date.now();
          const window0Us = nowUs();
          ctx.progress.phase(`${label} · measuring`);
          await ctx.progress.wait(p.durationSeconds / p.rounds, ctx.signal, sampler);
          const w = mergeWindows(await ctx.pool.all<WindowStats>(() => ({ op: 'stats', reset: true })));
          const seconds = (Date.now() - t0) / 1000;
          const cpu = cluster.cpu().nodes - cpu0;
          const totals = await ctx.pool.all<RpcTotals>(() => ({ op: 'rpcStop', group }));
          const a = acc.get(system) ?? {
            w: emptyWindow(),
            seconds: 0,
            cpu: 0,
            calls: 0,
            failed: 0,
            connectErrors: 0,
            errors: [],
            rounds: [],
          };
          acc.set(system, a);
          addWindow(a.w, w);
          a.seconds += seconds;
          a.cpu += cpu;
          a.calls += totals.reduce((n, t) => n + t.calls, 0);
          a.failed += totals.reduce((n, t) => n + t.failed, 0);
          a.connectErrors += c.failed;
          for (const e of [...c.errors, ...totals.flatMap((t) => t.errors)])
            if (a.errors.length < 10 && !a.errors.includes(e)) a.errors.push(e);
          const lat = summarize(w.ackLatency);
          a.rounds.push({
            seconds: round(seconds, 2),
            calls: w.rpcOk,
            latencyP50Ms: lat.med,
            latencyP99Ms: lat.p99,
            cpuSecondsPer1kCalls: w.rpcOk > 0 ? round(cpu / (w.rpcOk / 1000), 5) : null,
            rpcFailed: w.rpcFailed,
            window0Us,
            window1Us: window0Us + Math.round(seconds * 1e6),
          });
          ctx.progress.log(`${label}: ${Math.round(w.rpcOk / seconds)} calls/s, p50 ${lat.med} p99 ${lat.p99} ms, ${w.rpcFailed} failed`);
        } finally {
          await closeGroup(ctx, group);
        }
      },
      { variant: mode },
    );
    await ctx.clusters.release();
    for (const system of systems) {
      const a = acc.get(system);
      if (failures.has(system) || !a) {
        runs.push(failures.get(system) ?? failedRun(system, 'not run', mode));
        continue;
      }
      const lat = summarize(a.w.ackLatency);
      const metrics = {
        sb_ack_latency: lat,
        sb_rpc_errors: counter(a.failed, a.seconds),
        sb_connect_errors: counter(a.connectErrors, a.seconds),
      };
      runs.push(
        finish({
          system,
          variant: mode,
          seconds: round(a.seconds, 2),
          metrics,
          figures: {
            callsPerSecond: a.seconds > 0 ? Math.round(a.w.rpcOk / a.seconds) : null,
            latencyP50Ms: lat.med,
            latencyP99Ms: lat.p99,
            latencyP999Ms: lat.p999,
            cpuSecondsPer1kCalls: a.w.rpcOk > 0 ? round(a.cpu / (a.w.rpcOk / 1000), 5) : null,
            serverCpuPercent: a.seconds > 0 ? round((a.cpu / a.seconds) * 100, 1) : null,
            callsBehind: a.w.rpcBehind,
          },
          thresholds: evaluate(scenario.thresholds, metrics, { sb_ack_latency: a.w.ackLatency }),
          rounds: a.rounds,
          errors: a.errors,
        }),
      );
    }
  }
  return runs;
};
