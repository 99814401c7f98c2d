// Every Prometheus metric a node exposes, on a private registry passed in by start(); no global default registry.
import client from 'prom-client';
import { ERROR_CODES } from '../core/errors.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Hot-path counts with their labels resolved once: `cell(...values).n += k` is a plain add, folded into the
 * prom-client counter whenever it is collected (scrape, get()). prom-client hashes the label object on every
 * inc() (it showed in the profile of every client event and every delivery).
 */
export class CounterCells<L extends string> {
  /** By the first label's value, then the second's ('' for a one-label counter): no key string built per count. */
  private readonly rows = new Map<string, Map<string, { labels: Partial<Record<L, string>>; n: number }>>();

  constructor(private readonly names: readonly [L] | readonly [L, L]) {}

  cell(first: string, second = ''): { n: number } {
    let row = this.rows.get(first);
    if (!row) this.rows.set(first, (row = new Map()));
    let c = row.get(second);
    if (!c) {
      const labels: Partial<Record<L, string>> = { [this.names[0]]: first } as Partial<Record<L, string>>;
      if (this.names[1] !== undefined) labels[this.names[1]] = second;
      row.set(second, (c = { labels, n: 0 }));
    }
    return c;
  }

  fold(counter: client.Counter<L>) {
    for (const row of this.rows.values())
      for (const c of row.values()) {
        if (c.n === 0) continue;
        const n = c.n;
        c.n = 0;
        counter.inc(c.labels, n);
      }
  }
}

/** One series of a histogram as prom-client's get() returns it (its typings say an enum where the value is a string). */
interface HistogramValue {
  labels: { le?: number | string };
  value: number;
  metricName: string;
}

/**
 * A histogram without labels whose observe() is a bucket search and three adds, for values observed once per
 * publication on every node that receives it (bus and delivery latency). prom-client's Histogram.observe() builds a
 * closure, validates and hashes the (empty) label object on every call; those two were 4 % of a publication's
 * instructions (tools/instructions.js --op publish). Registered on the registry as prom-client's own would be:
 * get() returns prom-client's histogram shape, so /metrics, getMetricsAsJSON() and the default `node` label read the
 * same (a unit test compares the exposition with prom-client's Histogram fed the same values).
 */
export class LatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: string[] = [];
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    registry: client.Registry,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
    // The registry reads name, help, type and get(); the cast is to prom-client's class type, not a different shape.
    registry.registerMetric(this as unknown as client.Metric);
  }

  /** One observation in seconds; a value that is not a finite number is ignored (prom-client would throw). */
  observe(value: number) {
    if (!Number.isFinite(value)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] } {
    const values: HistogramValue[] = [];
    const bucket = `${this.name}_bucket`;
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i]!;
      values.push({ labels: { le: this.bounds[i]! }, value: acc, metricName: bucket });
    }
    values.push(
      { labels: { le: '+Inf' }, value: this.count, metricName: bucket },
      { labels: {}, value: this.sum, metricName: `${this.name}_sum` },
      { labels: {}, value: this.count, metricName: `${this.name}_count` },
    );
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset() {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export function createMetrics(nodeId: string) {
  const registry = new client.Registry();
  registry.setDefaultLabels({ node: nodeId });
  // Event-loop lag is sampled by a timer that wakes the loop every `precision` ms: at 20 ms that was 50 wake-ups a
  // second; at 100 ms an idle node with 200 connections here used 5.9 instead of 7.0 ms of CPU per second (three
  // alternated 30 s rounds each; plain Socket.IO 2.2). At 100 ms a stall of 100 ms
  // or more is always in the lag figures (nodejs_eventloop_lag_max_seconds) and a shorter one by the chance of
  // overlapping a tick; the lag p99 the dashboards show keeps its meaning.
  client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  const r = [registry];
  /** Values read at scrape time, supplied by start() once the parts that know them exist. */
  const providers = { channels: () => 0, subscriptions: () => 0, pendingSessions: () => 0 };

  const eventCells = new CounterCells(['event', 'outcome'] as const);
  const deliveryCells = new CounterCells(['transport'] as const);
  const webhookCells = new CounterCells(['hook', 'outcome'] as const);
  const publicationCells = new CounterCells(['source'] as const);
  const httpCells = new CounterCells(['route', 'status'] as const);
  /** Publications received from the bus: counted here (`busReceivedCell.n++`), folded in when collected. */
  const busReceivedCell = { n: 0 };
  const m = {
    registry,
    providers,
    /** switchboard_client_events_total and switchboard_deliveries_total counted on the hot path (see CounterCells). */
    eventCells,
    deliveryCells,
    webhookCells,
    /** switchboard_publications_total and switchboard_http_requests_total, counted per publication and per request. */
    publicationCells,
    httpCells,
    connections: new client.Gauge({
      name: 'switchboard_connections',
      help: 'Open client connections by transport',
      labelNames: ['transport'] as const,
      registers: r,
    }),
    handshakes: new client.Counter({
      name: 'switchboard_handshakes_total',
      help: 'Client handshakes by outcome (ok, or the refusal reason)',
      labelNames: ['outcome'] as const,
      registers: r,
    }),
    pendingSessions: new client.Gauge({
      name: 'switchboard_pending_sessions',
      help: 'Engine.IO sessions open without a Socket.IO CONNECT yet (they count against the per-address limits)',
      registers: r,
      collect() {
        this.set(providers.pendingSessions());
      },
    }),
    disconnects: new client.Counter({
      name: 'switchboard_disconnects_total',
      help: 'Client disconnections by reason',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    subscriptions: new client.Gauge({
      name: 'switchboard_subscriptions',
      help: 'Channel subscriptions held by clients of this node',
      registers: r,
      collect() {
        this.set(providers.subscriptions());
      },
    }),
    channels: new client.Gauge({
      name: 'switchboard_channels',
      help: 'Channels with at least one local subscriber',
      registers: r,
      collect() {
        this.set(providers.channels());
      },
    }),
    clientEvents: new client.Counter({
      name: 'switchboard_client_events_total',
      help: 'Client events by type and outcome (ok or the error code)',
      labelNames: ['event', 'outcome'] as const,
      registers: r,
      collect() {
        eventCells.fold(this);
      },
    }),
    publications: new client.Counter({
      name: 'switchboard_publications_total',
      help: 'Publications accepted by source (client, http, grip, emitter)',
      labelNames: ['source'] as const,
      registers: r,
      collect() {
        publicationCells.fold(this);
      },
    }),
    deliveries: new client.Counter({
      name: 'switchboard_deliveries_total',
      help: 'Messages handed to subscriber connections, by transport',
      labelNames: ['transport'] as const,
      registers: r,
      collect() {
        deliveryCells.fold(this);
      },
    }),
    deliveryLatency: new LatencyHistogram(
      'switchboard_delivery_latency_seconds',
      'End-to-end latency from publish to hand-off to local subscribers',
      LATENCY_BUCKETS,
      registry,
    ),
    busLatency: new LatencyHistogram(
      'switchboard_bus_latency_seconds',
      'Latency of publications crossing the Redis bus (publish to receipt on a node)',
      LATENCY_BUCKETS,
      registry,
    ),
    busGaps: new client.Counter({
      name: 'switchboard_bus_gaps_total',
      help: 'Publications missed by this node, detected by per-channel sequence gaps (each caught up from history)',
      registers: r,
    }),
    busReceivedCell,
    busReceived: new client.Counter({
      name: 'switchboard_bus_received_total',
      help: 'Publications received from the bus by this node (only channels it has subscribers of)',
      registers: r,
      collect() {
        if (busReceivedCell.n === 0) return;
        this.inc(busReceivedCell.n);
        busReceivedCell.n = 0;
      },
    }),
    channelGaps: new client.Counter({
      name: 'switchboard_bus_channel_gaps_total',
      help: 'Per-channel gaps detected (sequence jumped, or found by the position check); each one catches that channel up',
      labelNames: ['detected_by'] as const,
      registers: r,
    }),
    epochResets: new client.Counter({
      name: 'switchboard_bus_epoch_resets_total',
      help: 'Channels whose bus state was lost or diverged (new epoch, sequence handed out twice): their subscribers are told',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    catchupReads: new client.Counter({
      name: 'switchboard_bus_catchup_reads_total',
      help: 'History reads made to catch a channel up after a gap',
      registers: r,
    }),
    shardSubscriptions: new client.Gauge({
      name: 'switchboard_bus_shard_subscriptions',
      help: 'Pub/sub channels this node is subscribed to on Redis (one per channel it serves, plus one fence per shard)',
      registers: r,
    }),
    shards: new client.Gauge({
      name: 'switchboard_bus_shards',
      help: 'Redis shards (masters) known to this node, by state: ready (canary verified) or failed',
      labelNames: ['state'] as const,
      registers: r,
    }),
    failovers: new client.Counter({
      name: 'switchboard_bus_failovers_total',
      help: 'Topology changes seen by this node: a slot range changed master (failover, resharding) or a shard subscriber connection was rebuilt',
      registers: r,
    }),
    busCatchup: new client.Counter({
      name: 'switchboard_bus_catchup_total',
      help: 'Publications re-read from history after a bus gap or reconnect',
      registers: r,
    }),
    localOnly: new client.Counter({
      name: 'switchboard_bus_local_only_publications_total',
      help: 'Publications delivered to local subscribers only because the cluster bus was down',
      registers: r,
    }),
    resyncs: new client.Counter({
      name: 'switchboard_bus_resyncs_total',
      help: 'Per-channel bus resyncs by kind: gap (caught up from history) or reset (state lost: subscribers told)',
      labelNames: ['kind'] as const,
      registers: r,
    }),
    lossNotices: new client.Counter({
      name: 'switchboard_loss_notices_total',
      help: 'Channels whose subscribers were told publications may be lost (switchboard:resync recovered=false)',
      registers: r,
    }),
    canaryRtt: new client.Histogram({
      name: 'switchboard_bus_canary_rtt_seconds',
      help: 'Round trip of the bus canary through Redis',
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    canaryFailures: new client.Counter({
      name: 'switchboard_bus_canary_failures_total',
      help: 'Bus canaries not received back in time',
      registers: r,
    }),
    redisUp: new client.Gauge({
      name: 'switchboard_redis_connected',
      help: '1 when the Redis client is connected, by role',
      labelNames: ['role'] as const,
      registers: r,
    }),
    busReady: new client.Gauge({
      name: 'switchboard_bus_ready',
      help: '1 when the cluster bus is verified (always 1 in single-node mode)',
      registers: r,
    }),
    ready: new client.Gauge({ name: 'switchboard_ready', help: '1 when /readyz answers 200', registers: r }),
    webhookRequests: new client.Counter({
      name: 'switchboard_webhook_requests_total',
      help: 'Webhook calls by hook and outcome',
      labelNames: ['hook', 'outcome'] as const,
      registers: r,
      collect() {
        webhookCells.fold(this);
      },
    }),
    webhookDuration: new client.Histogram({
      name: 'switchboard_webhook_duration_seconds',
      help: 'Webhook call latency by hook',
      labelNames: ['hook'] as const,
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    dropped: new client.Counter({
      name: 'switchboard_dropped_messages_total',
      help: 'Outbound messages dropped, by reason',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    rejections: new client.Counter({
      name: 'switchboard_rejections_total',
      help: 'Requests, frames or connections refused by a limit or check, by reason',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    badInput: new client.Counter({
      name: 'switchboard_bad_input_total',
      help: 'Malformed client or HTTP input, by kind',
      labelNames: ['kind'] as const,
      registers: r,
    }),
    appErrors: new client.Counter({
      name: 'switchboard_app_errors_total',
      help: 'Exceptions thrown or promises rejected by embedded application code, by hook',
      labelNames: ['hook'] as const,
      registers: r,
    }),
    uncaught: new client.Counter({
      name: 'switchboard_uncaught_exceptions_total',
      help: 'Uncaught exceptions and unhandled rejections caught by the process guard',
      registers: r,
    }),
    historyReplays: new client.Counter({
      name: 'switchboard_history_replays_total',
      help: 'Subscriptions with `since` by recovered (true/false)',
      labelNames: ['recovered'] as const,
      registers: r,
    }),
    replayedMessages: new client.Counter({
      name: 'switchboard_replayed_messages_total',
      help: 'Publications replayed from history to recovering subscribers',
      registers: r,
    }),
    httpRequests: new client.Counter({
      name: 'switchboard_http_requests_total',
      help: 'HTTP API requests by route and status code',
      labelNames: ['route', 'status'] as const,
      registers: r,
      collect() {
        httpCells.fold(this);
      },
    }),
    draining: new client.Gauge({ name: 'switchboard_draining', help: '1 while the node drains', registers: r }),
    drainRemaining: new client.Gauge({
      name: 'switchboard_drain_remaining_connections',
      help: 'Connections still open during a drain',
      registers: r,
    }),
  };
  initialiseSeries(m);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The label values each labelled counter and histogram can take, known up front. Their series are created
 * at 0 on start so that Prometheus sees a counter rise from 0 (an `increase(...) > 0` alert catches the
 * first error, not the second) and dashboards show 0 rather than "No data". Values that only exist at run
 * time (socket.io's own disconnect reasons beyond these, HTTP statuses, the app's RPC methods) still appear
 * on first use.
 */
export const KNOWN_LABELS = {
  transports: ['websocket', 'polling', 'sse'],
  deliveryTransports: ['socketio', 'sse'],
  sources: ['client', 'http', 'grip'],
  events: ['subscribe', 'unsubscribe', 'publish', 'rpc', 'presence', 'unknown'],
  eventOutcomes: ['ok', 'no_ack', ...ERROR_CODES],
  handshakeOutcomes: ['ok', ...ERROR_CODES],
  /** socket.io's disconnect reasons (normalised) and the project's own close reasons. */
  disconnects: [
    'transport_close',
    'transport_error',
    'ping_timeout',
    'parse_error',
    'client_namespace_disconnect',
    'server_namespace_disconnect',
    'forced_close',
    'forced_server_close',
    'server_shutting_down',
    'rate_limited',
    'token_expired',
    'slow_consumer',
    'draining',
    'client_gone',
    'error',
  ],
  dropped: ['volatile', 'slow_consumer'],
  rejections: [
    'origin',
    'bad_request',
    'too_large',
    'rate_limited',
    'handshake_rate',
    'connections_per_ip',
    'connections_per_user',
    'max_subscriptions',
    'rpc_in_flight',
    'history_bytes',
    'history_channels',
    'anonymous_publish_rate',
    'unknown_transport',
    'unknown_sid',
    'bad_handshake_method',
    'forbidden',
    'unsupported_protocol',
    'engine_error',
  ],
  badInput: ['http_400', 'http_413', 'bus_message'],
  appHooks: ['authorizeSubscribe', 'authorizePublish'],
  recovered: ['true', 'false'],
  resyncs: ['gap', 'reset'],
  gapDetectedBy: ['message', 'position_check', 'resubscribe', 'subscribe'],
  epochResets: ['epoch_changed', 'state_lost', 'sequence_reused', 'sequence_rolled_back'],
  shardStates: ['ready', 'failed'],
  hooks: ['connect', 'subscribe', 'rpc', 'publish', 'disconnect'],
  httpRoutes: ['publish', 'channel', 'stats', 'grip'],
  /** The statuses CONTRACT.md lets the HTTP API answer, and 500 for a bug. */
  httpStatuses: ['200', '400', '401', '403', '404', '413', '429', '500', '503'],
  hookOutcomes: ['ok', 'refused', 'timeout', 'unreachable', 'server_error', 'invalid_answer', 'overloaded', 'circuit_open'],
} as const;

function initialiseSeries(m: Metrics): void {
  const L = KNOWN_LABELS;
  for (const transport of L.transports) m.connections.set({ transport }, 0);
  for (const transport of L.deliveryTransports) m.deliveries.inc({ transport }, 0);
  for (const source of L.sources) m.publications.inc({ source }, 0);
  for (const event of L.events) for (const outcome of L.eventOutcomes) m.clientEvents.inc({ event, outcome }, 0);
  for (const outcome of L.handshakeOutcomes) m.handshakes.inc({ outcome }, 0);
  for (const reason of L.disconnects) m.disconnects.inc({ reason }, 0);
  for (const reason of L.dropped) m.dropped.inc({ reason }, 0);
  for (const reason of L.rejections) m.rejections.inc({ reason }, 0);
  for (const kind of L.badInput) m.badInput.inc({ kind }, 0);
  for (const hook of L.appHooks) m.appErrors.inc({ hook }, 0);
  for (const recovered of L.recovered) m.historyReplays.inc({ recovered }, 0);
  for (const kind of L.resyncs) m.resyncs.inc({ kind }, 0);
  for (const detected_by of L.gapDetectedBy) m.channelGaps.inc({ detected_by }, 0);
  for (const reason of L.epochResets) m.epochResets.inc({ reason }, 0);
  for (const state of L.shardStates) m.shards.set({ state }, 0);
  for (const route of L.httpRoutes) for (const status of L.httpStatuses) m.httpRequests.inc({ route, status }, 0);
  for (const hook of L.hooks) {
    m.webhookDuration.zero({ hook });
    for (const outcome of L.hookOutcomes) m.webhookRequests.inc({ hook, outcome }, 0);
  }
  m.webhookRequests.inc({ hook: 'disconnect', outcome: 'dropped' }, 0);
}

/** Creates the app's `rpc:<method>` error series at 0 once the in-process RPC methods are known. */
export function initialiseAppHooks(m: Metrics, rpcMethods: readonly string[]): void {
  for (const method of rpcMethods) m.appErrors.inc({ hook: `rpc:${method}` }, 0);
}

export const METRICS_BEGIN =
  '<!-- metrics-table:begin (generated: `npm run build && node scripts/update-config-table.mjs`; do not edit) -->';
export const METRICS_END = '<!-- metrics-table:end -->';

/** The README's metrics reference, from the registry itself (Switchboard's own metrics). */
export async function metricsTable(): Promise<string> {
  const m = createMetrics('docs');
  const rows: string[] = [];
  for (const x of await m.registry.getMetricsAsJSON()) {
    if (!x.name.startsWith('switchboard_')) continue;
    const labels = ((m.registry.getSingleMetric(x.name) as unknown as { labelNames?: string[] }).labelNames ?? [])
      .map((l) => `\`${l}\``)
      .join(', ');
    rows.push(`| \`${x.name}\` | ${x.type} | ${labels || '—'} | ${x.help} |`);
  }
  return [METRICS_BEGIN, '| metric | type | labels | meaning |', '|---|---|---|---|', ...rows, METRICS_END].join('\n');
}
