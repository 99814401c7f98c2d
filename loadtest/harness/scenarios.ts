// The one schema for loadtest/scenarios/*.json, used by the local harness, the k6 scripts (types only) and the tests.
// No Node imports here: the k6 type-check reads this file too (file loading lives in load-scenarios.ts).
import { z } from 'zod';

/** Custom metric names shared by the k6 scripts and the harness; thresholds may only name these. */
export const METRICS = {
  sb_e2e_latency: 'trend',
  sb_ack_latency: 'trend',
  sb_handshake_duration: 'trend',
  sb_deliveries: 'counter',
  sb_messages_lost: 'counter',
  sb_seq_gaps: 'counter',
  sb_publish_errors: 'counter',
  sb_rpc_errors: 'counter',
  sb_connect_errors: 'counter',
  sb_reconnects: 'counter',
  sb_unrecovered: 'counter',
} as const;
export type MetricName = keyof typeof METRICS;
const metricNames = Object.keys(METRICS) as [MetricName, ...MetricName[]];

/** A k6 threshold expression: `p(99)<100`, `avg<=20`, `count==0`, `rate<0.01`, `max<1000`, `med<5`. */
export const THRESHOLD_RE = /^(avg|min|max|med|count|rate|p\((\d+(?:\.\d+)?)\))\s*(<=|>=|==|===|!=|<|>)\s*(-?\d+(?:\.\d+)?)$/;
const thresholdExpr = z.string().regex(THRESHOLD_RE, 'a k6 threshold expression such as "p(99)<100" or "count==0"');

/** k6-style thresholds: metric name → expressions that must all hold. Latency trends are in milliseconds. */
const Thresholds = z.partialRecord(z.enum(metricNames), z.array(thresholdExpr).min(1));

const seconds = z.number().positive();
const count = z.int().positive();
const channelName = z.string().regex(/^[A-Za-z0-9_:.\-@/=,]{1,200}$/);

/** How publications enter the system: a Socket.IO `publish` from a client, or `POST /api/publish`. */
const PublishVia = z.enum(['socket', 'http']);

// Fields shared by every scenario's params.
const common = {
  /** Measured seconds (per system, summed over harness rounds). */
  durationSeconds: seconds,
  /** Seconds of load before measuring starts. */
  warmupSeconds: z.number().nonnegative().default(0),
  /** Harness only: the measured time is split into this many rounds, systems alternating (ABC, CBA, …) to cancel drift. */
  rounds: count.default(1),
  /** Event name publications and calls use. */
  event: z.string().min(1).default('bench'),
  /** Prefix of every channel the scenario uses; a run id is appended. */
  channelPrefix: channelName.default('bench'),
};

const ConnectStormParams = z.strictObject({
  ...common,
  /** Connections opened to one node (harness) or in total (k6). */
  connections: count,
  /** Harness: handshakes in flight at once, over all client workers. */
  concurrency: count,
  /** k6: new connections per second (constant-arrival-rate). */
  arrivalRate: count,
  /** Seconds each connection stays open and idle once connected; the harness samples RSS at the end of it. */
  holdSeconds: seconds,
});

const MaxRate = z.strictObject({
  /** First probed delivery rate (deliveries per second). */
  startDeliveryRate: count,
  /** Each probe multiplies the rate by this. */
  factor: z.number().gt(1),
  /** Length of each probe step. */
  probeSeconds: seconds,
  /** The best probed rate must then hold this long (the figure is the rate held). */
  holdSeconds: seconds,
  /** Upper bound on probe steps. */
  maxSteps: count,
  /** A step passes with p99 end-to-end latency under this and no loss. */
  p99Ms: z.number().positive(),
});

const FanoutParams = z.strictObject({
  ...common,
  /** Subscriber connections (harness: all on the last node, publisher on node 1). */
  subscribers: count,
  /** Channels the subscribers are spread over (each subscriber joins one). */
  channels: count,
  /** Publications per second, over all channels (deliveries = publishRate × subscribers / channels). */
  publishRate: z.number().positive(),
  publishVia: PublishVia,
  /** Padding added to each publication's data. */
  payloadBytes: z.int().nonnegative(),
  /** Harness only: the step search for the highest delivery rate held with p99 under `p99Ms` and no loss. */
  maxRate: MaxRate,
  /**
   * Harness only: a second fixed rate (publications per second), measured after the search in rounds of its own
   * (systems alternating): CPU and latency where the work per delivery outweighs what each node costs anyway.
   * Unset: not measured.
   */
  highPublishRate: z.number().positive().optional(),
  /**
   * The systems measured at `highPublishRate` (named, not taken from the search: its top steps are client-bound and
   * move from run to run). A system that cannot hold the rate would only queue and lose, so it is left out here.
   */
  highRateSystems: z.array(z.enum(['switchboard', 'plain', 'stock', 'ceiling'])).optional(),
});

const ManyChannelsParams = z.strictObject({
  ...common,
  /** Subscriber connections, spread over every node. */
  connections: count,
  /** Distinct channels. */
  channels: count,
  /** Channels each connection subscribes to (connection i takes i·k … i·k+k−1 modulo `channels`). */
  channelsPerConnection: count,
  /** Publications per second, round-robin over the channels. */
  publishRate: z.number().positive(),
  publishVia: PublishVia,
  payloadBytes: z.int().nonnegative(),
});

const RpcParams = z.strictObject({
  ...common,
  /** Connections making calls, spread over every node. */
  clients: count,
  /** Calls per second over all clients. */
  callRate: z.number().positive(),
  /** The RPC method; the bench app and the webhook backend both answer `echo`. */
  method: z.string().min(1),
  payloadBytes: z.int().nonnegative(),
  /** Harness: `embedded` runs the in-process handler (SWITCHBOARD_APP), `webhook` the HTTP backend (BACKEND_URL). */
  modes: z.array(z.enum(['embedded', 'webhook'])).min(1),
});

const SseFanoutParams = z.strictObject({
  ...common,
  /** SSE streams (one channel each), all on one server: one Switchboard node, or one Pushpin. */
  streams: count,
  /** Channels the streams are spread over. */
  channels: count,
  /** Publications per second over all channels (deliveries = publishRate × streams / channels). */
  publishRate: z.number().positive(),
  /** Padding added to each publication's data. */
  payloadBytes: z.int().nonnegative(),
  /** The step search for the highest delivery rate held, as in fanout. */
  maxRate: MaxRate,
});

const IdleParams = z.strictObject({
  ...common,
  /** Connections into one node, each subscribed to one channel, then left idle (pings only). */
  connections: count,
  /** Channels the connections spread over. */
  channels: count,
  /** Seconds of idleness measured (CPU over it; RSS at its end). One ping interval (25 s) gives every connection one ping. */
  holdSeconds: seconds,
});

const BusCapacityParams = z.strictObject({
  ...common,
  /** Channels the publications spread over; half have their one subscriber on node A, half on node B. */
  channels: count,
  /** Channels one subscriber connection holds (connections per node = channels / 2 / this). */
  channelsPerConnection: count,
  /** Publications per second over all channels (HTTP API, `channels` batches, round-robin over A and B). */
  publishRate: z.number().positive(),
  /** Channels per POST /api/publish. */
  batch: count,
  payloadBytes: z.int().nonnegative(),
  /** Redis modes compared: one redis-server, and a Redis Cluster of 3 masters (+ 3 replicas). */
  modes: z.array(z.enum(['one-redis', 'cluster'])).min(1),
});

const Churn = z.strictObject({
  /** Every this many seconds … */
  intervalSeconds: seconds,
  /** … this fraction of subscribers disconnects and reconnects, resubscribing with `since`. */
  fraction: z.number().min(0).max(1),
});

const SoakParams = z.strictObject({
  ...common,
  ...FanoutParams.pick({ subscribers: true, channels: true, publishRate: true, publishVia: true, payloadBytes: true }).shape,
  churn: Churn,
  /** Harness: seconds between RSS samples of the server processes. */
  sampleSeconds: seconds,
});

/** Deep-partial profile overrides (`local` for the full harness run, `smoke` for seconds-long runs). */
function profiles<T extends z.ZodObject>(params: T, nested: Record<string, z.ZodObject> = {}) {
  const shape: Record<string, z.ZodType> = {};
  for (const [k, v] of Object.entries(params.shape)) shape[k] = (nested[k] ? nested[k].partial() : (v as z.ZodType)).optional();
  const partial = z.strictObject(shape);
  return z.strictObject({ local: partial.optional(), smoke: partial.optional() }).default({});
}

function scenario<N extends string, P extends z.ZodObject>(name: N, params: P, nested: Record<string, z.ZodObject> = {}) {
  return z.strictObject({
    $schema: z.string().optional(),
    name: z.literal(name),
    description: z.string().min(1),
    params,
    profiles: profiles(params, nested),
    thresholds: Thresholds,
  });
}

export const ScenarioSchema = z.discriminatedUnion('name', [
  scenario('connect-storm', ConnectStormParams),
  scenario('fanout', FanoutParams, { maxRate: MaxRate }),
  scenario('many-channels', ManyChannelsParams),
  scenario('rpc', RpcParams),
  scenario('soak', SoakParams, { churn: Churn }),
  scenario('sse-fanout', SseFanoutParams, { maxRate: MaxRate }),
  scenario('idle', IdleParams),
  scenario('bus-capacity', BusCapacityParams),
]);

export type Scenario = z.infer<typeof ScenarioSchema>;
export type ScenarioName = Scenario['name'];
export type ScenarioOf<N extends ScenarioName> = Extract<Scenario, { name: N }>;
export type ParamsOf<N extends ScenarioName> = ScenarioOf<N>['params'];
export type ConnectStormParams = ParamsOf<'connect-storm'>;
export type FanoutParams = ParamsOf<'fanout'>;
export type ManyChannelsParams = ParamsOf<'many-channels'>;
export type RpcParams = ParamsOf<'rpc'>;
export type SoakParams = ParamsOf<'soak'>;
export type SseFanoutParams = ParamsOf<'sse-fanout'>;
export type IdleParams = ParamsOf<'idle'>;
export type BusCapacityParams = ParamsOf<'bus-capacity'>;
export type Thresholds = z.infer<typeof Thresholds>;
export type Profile = 'base' | 'local' | 'smoke';

/** The order the harness runs them in. */
export const SCENARIO_NAMES: readonly ScenarioName[] = [
  'connect-storm',
  'idle',
  'fanout',
  'many-channels',
  'rpc',
  'soak',
  'sse-fanout',
  'bus-capacity',
];

/**
 * Scenarios only the local harness runs: k6 has no SSE client, Pushpin is started by the harness, idle cost is read
 * from /proc of the server, and bus-capacity starts its own Redis topologies and reads Redis's CPU per shard.
 */
export const HARNESS_ONLY: readonly ScenarioName[] = ['idle', 'sse-fanout', 'bus-capacity'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merges `over` into `base`: nested plain objects merge, everything else replaces. */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isPlainObject(out[k]) && isPlainObject(v) ? deepMerge(out[k], v) : v;
  return out as T;
}

/**
 * Parses one scenario definition. Throws with the file name and every problem on a bad file.
 * The profiles are checked too: each resolved profile must be a complete, valid parameter set.
 */
export function parseScenario(json: unknown, source = 'scenario'): Scenario {
  const res = ScenarioSchema.safeParse(json);
  if (!res.success) throw new Error(`${source}: invalid scenario\n${z.prettifyError(res.error)}`);
  for (const p of ['local', 'smoke'] as const) resolveParams(res.data, p, source);
  return res.data;
}

/** The parameters for a profile: `base` as written, `local` = base + local, `smoke` = base + local + smoke. */
export function resolveParams<S extends Scenario>(s: S, profile: Profile, source: string = s.name): S['params'] {
  let merged: unknown = s.params;
  if (profile !== 'base') merged = deepMerge(merged, s.profiles.local ?? {});
  if (profile === 'smoke') merged = deepMerge(merged, s.profiles.smoke ?? {});
  const schema = ScenarioSchema.options.find((o) => o.shape.name.value === s.name)!.shape.params;
  const res = schema.safeParse(merged);
  if (!res.success) throw new Error(`${source}: profile "${profile}" does not resolve to valid params\n${z.prettifyError(res.error)}`);
  return res.data as S['params'];
}

/** JSON Schema of the scenario files, for editors (`$schema`); generated, never hand-edited. */
export function scenarioJsonSchema(): unknown {
  return z.toJSONSchema(ScenarioSchema, { io: 'input', unrepresentable: 'any' });
}
