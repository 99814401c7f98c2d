// The highest delivery rate a system holds: steps the rate up until a step misses (p99 over the limit, loss, or the
// offered rate not met), then holds the best passing rate. Used by fanout and sse-fanout.
import os from 'node:os';
import { summarize } from '../histogram.js';
import { round, type PhaseResult } from '../aggregate.js';
import type { Ctx, PubSubSession } from '../session.js';

export interface MaxRateParams {
  startDeliveryRate: number;
  factor: number;
  probeSeconds: number;
  holdSeconds: number;
  maxSteps: number;
  p99Ms: number;
}

export interface Step {
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
function judge(kind: Step['kind'], offered: number, pubRate: number, fanout: number, r: PhaseResult, m: MaxRateParams): Step {
  const lat = summarize(r.window.latency);
  const achieved = r.seconds > 0 ? r.window.received / r.seconds : 0;
  const why: string[] = [];
  if (r.lost > 0) why.push(`lost ${r.lost}`);
  if (r.published.failed > 0) why.push(`${r.published.failed} publishes failed`);
  if (lat.p99 >= m.p99Ms) why.push(`p99 ${lat.p99} ms`);
  if (r.window.pubSent < pubRate * r.seconds * 0.95 - 2)
    why.push(`publishers fell behind (${Math.round(r.window.pubSent / r.seconds)}/${Math.round(pubRate)} pub/s)`);
  // Deliveries must keep pace within the window, or a backlog is growing that a short step would not show as loss.
  const due = r.window.pubAcked * fanout;
  if (due > 0 && r.window.received < due * 0.95)
    why.push(`deliveries falling behind (${Math.round((r.window.received / due) * 100)}% of due)`);
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

/** Steps the delivery rate up, then holds the best passing rate (the next lower passing ones, up to three, if a hold misses). */
export async function maxRate(
  ctx: Ctx,
  label: string,
  s: PubSubSession,
  m: MaxRateParams,
): Promise<{ held: number | null; steps: Step[] }> {
  const steps: Step[] = [];
  try {
    ctx.progress.phase(`${label} · max rate · setting up`);
    await s.open();
    if (s.fanout === 0) throw new Error('no subscriptions succeeded');
    const passing: number[] = [];
    let rate = m.startDeliveryRate;
    for (let i = 0; i < m.maxSteps; i++) {
      const r = await s.phase({
        rate: rate / s.fanout,
        warmupSeconds: 0,
        measureSeconds: m.probeSeconds,
        status: `${label} · probe ${Math.round(rate)} deliveries/s`,
      });
      const step = judge('probe', rate, rate / s.fanout, s.fanout, r, m);
      steps.push(step);
      ctx.progress.log(
        `${label} · probe ${step.offeredDeliveryRate}/s → ${step.pass ? 'ok' : `miss (${step.why})`}, p99 ${step.p99Ms} ms${step.clientBound ? ' (client-bound)' : ''}`,
      );
      if (!step.pass) break;
      passing.push(rate);
      rate *= m.factor;
    }
    for (const candidate of passing.reverse().slice(0, 3)) {
      const r = await s.phase({
        rate: candidate / s.fanout,
        warmupSeconds: 0,
        measureSeconds: m.holdSeconds,
        status: `${label} · hold ${Math.round(candidate)} deliveries/s`,
      });
      const step = judge('hold', candidate, candidate / s.fanout, s.fanout, r, m);
      steps.push(step);
      ctx.progress.log(
        `${label} · hold ${step.offeredDeliveryRate}/s for ${step.seconds} s → ${step.pass ? 'held' : `miss (${step.why})`}, p99 ${step.p99Ms} ms${step.clientBound ? ' (client-bound)' : ''}`,
      );
      if (step.pass) return { held: step.achievedDeliveryRate, steps };
    }
    return { held: null, steps };
  } finally {
    await s.close();
  }
}

/** Runs the max-rate search for each system (in `order`); a failure is recorded as an error, an abort propagates. */
export async function maxRates(
  ctx: Ctx,
  order: readonly string[],
  run: (system: string) => Promise<{ held: number | null; steps: Step[] }>,
): Promise<Map<string, { held: number | null; steps: Step[]; error?: string }>> {
  const rates = new Map<string, { held: number | null; steps: Step[]; error?: string }>();
  for (const system of order) {
    try {
      rates.set(system, await run(system));
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      ctx.progress.log(`  ! max rate · ${system}: ${msg.split('\n')[0]}`);
      rates.set(system, { held: null, steps: [], error: msg });
    }
  }
  return rates;
}
