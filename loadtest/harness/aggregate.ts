// Aggregation of what the workers measured: merging their windows, summing rounds, and the k6-named metrics.
import { mergeEncoded, summarize, type Histogram } from './histogram.js';
import { COUNTERS, zeroCounters, type WindowStats } from './messages.js';
import type { CounterSummary, MetricsSummary, RoundFigures } from './results.js';

/** Sums the workers' window stats; histograms merge. */
export interface MergedWindow extends Omit<WindowStats, 'latency' | 'ackLatency'> {
  latency: Histogram;
  ackLatency: Histogram;
}

export function mergeWindows(parts: readonly WindowStats[]): MergedWindow {
  const out: MergedWindow = {
    ...zeroCounters(),
    cpuUs: 0,
    windowUs: 0,
    errors: [],
    latency: mergeEncoded(parts.map((p) => p.latency)),
    ackLatency: mergeEncoded(parts.map((p) => p.ackLatency)),
  };
  for (const p of parts) {
    for (const k of COUNTERS) out[k] += p[k];
    out.cpuUs += p.cpuUs;
    out.windowUs = Math.max(out.windowUs, p.windowUs);
    for (const e of p.errors) if (out.errors.length < 10 && !out.errors.includes(e)) out.errors.push(e);
  }
  return out;
}

export function addWindow(into: MergedWindow, w: MergedWindow): MergedWindow {
  for (const k of COUNTERS) into[k] += w[k];
  into.cpuUs += w.cpuUs;
  into.windowUs += w.windowUs;
  into.latency.add(w.latency);
  into.ackLatency.add(w.ackLatency);
  for (const e of w.errors) if (into.errors.length < 10 && !into.errors.includes(e)) into.errors.push(e);
  return into;
}

export function emptyWindow(): MergedWindow {
  return mergeWindows([]);
}

export const counter = (count: number, seconds: number): CounterSummary => ({
  count,
  rate: seconds > 0 ? Math.round((count / seconds) * 100) / 100 : 0,
});

/** The metrics of a pub/sub window in the k6 names (trends in ms). */
export function pubsubMetrics(w: MergedWindow, seconds: number, extra: { lost: number; connectErrors: number }): MetricsSummary {
  return {
    sb_e2e_latency: summarize(w.latency),
    sb_ack_latency: summarize(w.ackLatency),
    sb_deliveries: counter(w.received, seconds),
    sb_messages_lost: counter(extra.lost, seconds),
    sb_seq_gaps: counter(w.seqGaps, seconds),
    sb_publish_errors: counter(w.pubFailed, seconds),
    sb_connect_errors: counter(extra.connectErrors, seconds),
    sb_reconnects: counter(w.reconnects, seconds),
    sb_unrecovered: counter(w.unrecovered, seconds),
  };
}

export interface PhaseResult {
  window: MergedWindow;
  /** Wall-clock seconds of the measured window. */
  seconds: number;
  /** The measured window on the shared monotonic clock (µs): CPU profiles of the servers can be cut to it. */
  window0Us: number;
  window1Us: number;
  cpu: { nodes: number; perNode: number[]; redis: number };
  /** Publications the subscribers should have received over the whole phase, and did. */
  expected: number;
  receivedTotal: number;
  lost: number;
  extra: number;
  published: { sent: number; acked: number; failed: number };
  rssSamples: Array<{ t: number; kib: number[] }>;
  errors: string[];
}

/** Accumulates phases of one system over rounds. */
export class PubSubAgg {
  window = emptyWindow();
  seconds = 0;
  cpuNodes = 0;
  cpuRedis = 0;
  lost = 0;
  extra = 0;
  expected = 0;
  connectErrors = 0;
  published = { sent: 0, acked: 0, failed: 0 };
  errors: string[] = [];
  /** Per round, the figures the report's spread is taken over. */
  rounds: RoundFigures[] = [];

  add(r: PhaseResult, connectErrors: number): void {
    addWindow(this.window, r.window);
    this.seconds += r.seconds;
    this.cpuNodes += r.cpu.nodes;
    this.cpuRedis += r.cpu.redis;
    this.lost += r.lost;
    this.extra += r.extra;
    this.expected += r.expected;
    this.connectErrors += connectErrors;
    this.published.sent += r.published.sent;
    this.published.acked += r.published.acked;
    this.published.failed += r.published.failed;
    for (const e of r.errors) if (this.errors.length < 10 && !this.errors.includes(e)) this.errors.push(e);
    const lat = summarize(r.window.latency);
    this.rounds.push({
      seconds: round(r.seconds, 2),
      deliveries: r.window.received,
      latencyP50Ms: lat.med,
      latencyP99Ms: lat.p99,
      cpuSeconds: round(r.cpu.nodes, 3),
      cpuSecondsPer1kDeliveries: r.window.received > 0 ? round(r.cpu.nodes / (r.window.received / 1000), 5) : null,
      serverCpuPercent: r.seconds > 0 ? round((r.cpu.nodes / r.seconds) * 100, 1) : null,
      redisCpuPercent: r.seconds > 0 ? round((r.cpu.redis / r.seconds) * 100, 1) : null,
      // Where the server CPU sits (node 1 publishes in fanout and many-channels): % of a core, per node.
      ...Object.fromEntries(
        r.cpu.perNode.map((c, i) => [`node${i + 1}CpuPercent`, r.seconds > 0 ? round((c / r.seconds) * 100, 1) : null]),
      ),
      lost: r.lost,
      window0Us: r.window0Us,
      window1Us: r.window1Us,
    });
  }

  /** Server CPU seconds per 1,000 deliveries over the measured windows. */
  get cpuPer1k(): number | null {
    return this.window.received > 0 ? round(this.cpuNodes / (this.window.received / 1000), 5) : null;
  }
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
