// The IPC vocabulary between the harness (parent) and its client workers (worker.ts): requests, and what each returns.

/** Which channels client `g` (its index across all workers) subscribes to: `k` consecutive ones modulo `channels`. */
export interface ChannelPlan {
  prefix: string;
  channels: number;
  perClient: number;
}

export function channelName(prefix: string, i: number): string {
  return `${prefix}:${i}`;
}

export function channelsOf(plan: ChannelPlan, g: number): string[] {
  const out: string[] = [];
  for (let j = 0; j < plan.perClient; j++) out.push(channelName(plan.prefix, (g * plan.perClient + j) % plan.channels));
  return out;
}

/** `socket`: a client's `publish`; `http`: `POST /api/publish`; `grip`: `POST /publish/` in GRIP's format (Pushpin). */
export type PublishVia = 'socket' | 'http' | 'grip';

/** Start publishing from a group's first client (`socket`) or over HTTP, at `rate` per second from this worker. */
export interface PublishStart {
  op: 'publishStart';
  group: string;
  via: PublishVia;
  /** Publications per second from this worker. */
  rate: number;
  channels: string[];
  event: string;
  payloadBytes: number;
  /** Publisher stream id; sequence numbers count per (stream, channel). */
  stream: string;
  httpUrl: string;
  apiKey: string;
  localAddress: string;
}

/** The HTTP body of one publication: `POST /api/publish`'s, or a GRIP publish of one SSE event (Pushpin's). */
export function publishBody(via: 'http' | 'grip', channel: string, event: string, data: unknown): unknown {
  if (via === 'http') return { channel, event, data };
  return { items: [{ channel, formats: { 'http-stream': { content: `event: ${event}\ndata: ${JSON.stringify(data)}\n\n` } } }] };
}

export type Request =
  | {
      op: 'connect';
      group: string;
      /** Client i of this group connects to urls[(offset + i) % urls.length]. */
      urls: string[];
      offset: number;
      count: number;
      concurrency: number;
      localAddress: string;
      /** Keep per-client sequence bookkeeping strict (every stream must start at 1). */
      strictSeq: boolean;
    }
  | { op: 'subscribe'; group: string; plan: ChannelPlan; offset: number; concurrency: number }
  /** SSE streams, one channel each (client g takes the first of channelsOf(plan, g)), from urls[g % urls.length]. */
  | {
      op: 'sseConnect';
      group: string;
      urls: string[];
      plan: ChannelPlan;
      offset: number;
      count: number;
      concurrency: number;
      localAddress: string;
    }
  /** How many of the group's SSE streams have seen a fence event. */
  | { op: 'sseLive'; group: string }
  /** Closes the group's streams that have seen no fence yet and opens each again; returns how many. */
  | { op: 'sseReopen'; group: string }
  | PublishStart
  | { op: 'publishStop'; group: string }
  | { op: 'rpcStart'; group: string; rate: number; method: string; payloadBytes: number }
  | { op: 'rpcStop'; group: string }
  | { op: 'churnStart'; group: string; intervalMs: number; fraction: number; localAddress: string }
  | { op: 'churnStop'; group: string }
  | { op: 'peek' }
  | { op: 'stats'; reset: boolean }
  | { op: 'totals'; reset: boolean }
  | { op: 'tail'; group: string; finals: Record<string, Record<string, number>> }
  | { op: 'close'; group: string }
  | { op: 'exit' };

export interface ConnectResult {
  ok: number;
  failed: number;
  /** Handshake durations (µs), encoded histogram. */
  handshake: string;
  /** Monotonic µs of the first attempt and the last completion. */
  t0: number;
  t1: number;
  errors: string[];
}

export interface SseConnectResult extends ConnectResult {
  byChannel: Record<string, number>;
}

export interface SubscribeResult {
  ok: number;
  failed: number;
  byChannel: Record<string, number>;
  ackLatency: string;
  errors: string[];
}

export interface PublishTotals {
  sent: number;
  acked: number;
  failed: number;
  /** Publications acknowledged per channel. */
  ackedByChannel: Record<string, number>;
  /** Highest sequence number sent per channel (stream = the request's `stream`). */
  finalSeq: Record<string, number>;
  stream: string;
  errors: string[];
}

export interface RpcTotals {
  calls: number;
  ok: number;
  failed: number;
  errors: string[];
}

/**
 * The load counters, listed once: each counts over a window (since the last `stats` with reset). The worker's
 * recorder zeroes them from this list and the harness sums the workers' windows by it.
 */
export const COUNTERS = [
  /** Publications received by subscribers. */
  'received',
  'pubSent',
  'pubAcked',
  'pubFailed',
  /** Publications skipped because too many were in flight (the offered rate was not met). */
  'pubBehind',
  'rpcOk',
  'rpcFailed',
  'rpcBehind',
  'seqLost',
  'seqGaps',
  'seqLate',
  'malformed',
  /** Connections lost without being asked to close. */
  'disconnects',
  'reconnects',
  'reconnectFailures',
  'unrecovered',
  'replayed',
] as const;
export type CounterName = (typeof COUNTERS)[number];
export type Counters = Record<CounterName, number>;

export function zeroCounters(): Counters {
  const out = {} as Counters;
  for (const k of COUNTERS) out[k] = 0;
  return out;
}

/** One worker's window: the counters, latency histograms and the worker's own CPU. */
export interface WindowStats extends Counters {
  /** End-to-end latency (µs), encoded. */
  latency: string;
  /** Ack round trip of publish and rpc calls (µs), encoded. */
  ackLatency: string;
  /** Worker process CPU µs (user + system) over the window. */
  cpuUs: number;
  windowUs: number;
  errors: string[];
}

export interface Peek {
  received: number;
  pubAcked: number;
  rpcOk: number;
  connected: number;
}

export interface Totals {
  received: number;
  byChannel: Record<string, number>;
}

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
