// fanout: subscribers of `channels` channels on the last node, publishers on node 1. First the fixed rate (rounds
// alternating systems): cross-node latency and server CPU per delivery. Then, per system, the rate steps up until a
// step misses (p99 over the limit, loss, or the offered rate not met), and the best rate must hold for `holdSeconds`.
import os from 'node:os';
import type { SystemName } from '../cluster.js';
import { summarize } from '../histogram.js';
import { PubSubAgg, round } from '../aggregate.js';
import { PubSubSession, errorText, roundOrder, type Ctx, type PhaseResult } from '../session.js';
import type { FanoutParams } from '../scenarios.js';
import type { SystemRun } from '../results.js';
import { failedRun, guarded, pubsubRun, type Runner } from './common.js';

interface Step {
  kind: 'probe' | 'hold';
  offeredDeliveryRate: number;
  achievedDeliveryRate: number;
  seconds: number;
  p99Ms: number;
  lost: number;
  publishFailed: number;
  pass: boolean;
  why?: string;
  serverCpuPercent: number;
  clientCpuPercent: number;
  clientBound: boolean;
}

/**
 * A step passes when every acknowledged publication reached every subscriber (exact count after the drain), p99
 * stayed under the limit, no publish failed, and the publishers kept the offered rate (a system that cannot take
 * the publications fails the step; slow delivery shows as latency).
 */
function judge(kind: Step['kind'], offered: number, pubRate: number, fanout: number, r: PhaseResult, p: FanoutParams): Step {
  const lat = summarize(r.window.latency);
  const achieved = r.seconds > 0 ? r.window.received / r.seconds : 0;
  const why: string[] = [];
  if (r.lost > 0) why.push(`lost ${r.lost}`);
  if (r.published.failed > 0) why.push(`${r.published.failed} publishes failed`);
  if (lat.p99 >= p.maxRate.p99Ms) why.push(`p99 ${lat.p99} ms`);
  if (r.window.pubSent < pubRate * r.seconds * 0.95 - 2) why.push(`publishers fell behind (${Math.round(r.window.pubSent / r.seconds)}/${Math.round(pubRate)} pub/s)`);
  // Deliveries must keep pace within the window, or a backlog is growing that a short step would not show as loss.
  const due = r.window.pubAcked * fanout;
  if (due > 0 && r.window.received < due * 0.95) why.push(`deliveries falling behind (${Math.round((r.window.received / due) * 100)}% of due)`);
  const clientCpu = r.seconds > 0 ? round((r.window.cpuUs / 1e6 / r.seconds) * 100, 1) : 0;
  return {
    kind,
    offeredDeliveryRate: Math.round(offered),
    achievedDeliveryRate: Math.round(achieved),
    seconds: round(r.seconds, 2),
    p99Ms: lat.p99,
    lost: r.lost,
    publishFailed: r.published.failed,
    pass: why.length === 0,
    ...(why.length ? { why: why.join(', ') } : {}),
    serverCpuPercent: r.seconds > 0 ? round((r.cpu.nodes / r.seconds) * 100, 1) : 0,
    clientCpuPercent: clientCpu,
    // The clients took most of the machine: a miss here may be the load generator's, not the server's.
    clientBound: clientCpu >= os.cpus().length * 100 * 0.6,
  };
}

function session(ctx: Ctx, system: SystemName, p: FanoutParams, nodes: number, tag: string, cluster: Awaited<ReturnType<Ctx['clusters']['get']>>) {
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

/** Steps the delivery rate up, then holds the best passing rate (the next lower passing ones, up to three, if a hold misses). */
async function maxRate(ctx: Ctx, system: SystemName, p: FanoutParams, nodes: number): Promise<{ held: number | null; steps: Step[] }> {
  const cluster = await ctx.clusters.get(system);
  const s = session(ctx, system, p, nodes, 'max', cluster);
  const m = p.maxRate;
  const steps: Step[] = [];
  try {
    ctx.progress.phase(`fanout · ${system} · max rate · setting up`);
    await s.open();
    if (s.fanout === 0) throw new Error('no subscriptions succeeded');
    const passing: number[] = [];
    let rate = m.startDeliveryRate;
    for (let i = 0; i < m.maxSteps; i++) {
      const r = await s.phase({ rate: rate / s.fanout, warmupSeconds: 0, measureSeconds: m.probeSeconds, status: `fanout · ${system} · probe ${Math.round(rate)} deliveries/s` });
      const step = judge('probe', rate, rate / s.fanout, s.fanout, r, p);
      steps.push(step);
      ctx.progress.log(`fanout · ${system} · probe ${step.offeredDeliveryRate}/s → ${step.pass ? 'ok' : `miss (${step.why})`}, p99 ${step.p99Ms} ms${step.clientBound ? ' (client-bound)' : ''}`);
      if (!step.pass) break;
      passing.push(rate);
      rate *= m.factor;
    }
    for (const candidate of passing.reverse().slice(0, 3)) {
      const r = await s.phase({ rate: candidate / s.fanout, warmupSeconds: 0, measureSeconds: m.holdSeconds, status: `fanout · ${system} · hold ${Math.round(candidate)} deliveries/s` });
      const step = judge('hold', candidate, candidate / s.fanout, s.fanout, r, p);
      steps.push(step);
      ctx.progress.log(`fanout · ${system} · hold ${step.offeredDeliveryRate}/s for ${step.seconds} s → ${step.pass ? 'held' : `miss (${step.why})`}, p99 ${step.p99Ms} ms${step.clientBound ? ' (client-bound)' : ''}`);
      if (step.pass) return { held: step.achievedDeliveryRate, steps };
    }
    return { held: null, steps };
  } finally {
    await s.close();
  }
}

export const runFanout: Runner<'fanout'> = async ({ ctx, scenario, params: p, systems, nodes }) => {
  const aggs = new Map<SystemName, PubSubAgg>();
  const failures = new Map<SystemName, SystemRun>();
  const perRound = p.durationSeconds / p.rounds;
  for (let r = 0; r < p.rounds; r++) {
    for (const system of roundOrder(systems, r)) {
      if (failures.has(system)) continue;
      await guarded(
        ctx,
        async () => {
          const cluster = await ctx.clusters.get(system);
          const s = session(ctx, system, p, nodes, `r${r}`, cluster);
          const label = `fanout · ${system} · round ${r + 1}/${p.rounds} · ${p.publishRate} pub/s`;
          ctx.progress.phase(`${label} · setting up`);
          try {
            await s.open();
            const res = await s.phase({ rate: p.publishRate, warmupSeconds: p.warmupSeconds, measureSeconds: perRound, status: label });
            const agg = aggs.get(system) ?? new PubSubAgg();
            aggs.set(system, agg);
            agg.add(res, s.connectErrors + s.subscribeErrors);
            for (const e of s.errors) if (!agg.errors.includes(e)) agg.errors.push(e);
            const lat = summarize(res.window.latency);
            ctx.progress.log(
              `${label}: ${Math.round(res.window.received / res.seconds)} deliveries/s, p50 ${lat.med} p99 ${lat.p99} p99.9 ${lat.p999} ms, CPU ${(res.cpu.nodes / (res.window.received / 1000 || 1)).toFixed(4)} s/1k, lost ${res.lost}`,
            );
          } finally {
            await s.close();
          }
        },
        (err) => failures.set(system, failedRun(system, err)),
      );
    }
  }
  const rates = new Map<SystemName, { held: number | null; steps: Step[]; error?: string }>();
  for (const system of roundOrder(systems, p.rounds)) {
    if (failures.has(system)) continue;
    try {
      rates.set(system, await maxRate(ctx, system, p, nodes));
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      ctx.progress.log(`  ! fanout max rate · ${system}: ${errorText(err).split('\n')[0]}`);
      rates.set(system, { held: null, steps: [], error: errorText(err) });
    }
  }
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
