// The one configuration schema: env name, default, validation and description per field.
// The README's configuration table is generated from FIELDS (see docs.ts); a test fails when it is stale.
import os from 'node:os';
import { z } from 'zod';
import { readJwks, readPublicKey } from '../auth/tokens.js';
import { readRules } from './channel-rules.js';
import { isAddressOrCidr } from '../core/client-ip.js';

const port = z.coerce.number().int().min(0).max(65535);
const ms = z.coerce
  .number()
  .int()
  .min(1)
  .max(24 * 3600 * 1000);
const positiveInt = z.coerce.number().int().min(1);
const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const list = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);
const optionalString = z.string().min(1).optional();
/** Shortest accepted HMAC secrets (JWT_SECRET, WEBHOOK_SECRET): 256 bits, the size of SHA-256's output. */
export const MIN_SECRET_BYTES = 32;
/** Shortest accepted API key: a guessable key is an open publish endpoint. */
export const MIN_API_KEY = 16;
const strongSecret = (env: string) =>
  z
    .string()
    .min(1)
    .refine(
      (s) => Buffer.byteLength(s) >= MIN_SECRET_BYTES,
      `${env} must be at least ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -hex 32)`,
    );
/** ALLOWED_ORIGINS: `*`, or origins (`https://app.example.com`, no path). */
const origins = list.refine(
  (l) => l.every((o) => o === '*' || /^https?:\/\/[^/\s]+\/?$/i.test(o)),
  'each entry must be an origin such as https://app.example.com (scheme and host, optional port, no path), or * for any origin',
);
/** A value read and parsed at start-up (a file, JSON): what `read` throws becomes the variable's problem. */
const readWith = <T>(read: (text: string) => T) =>
  z
    .string()
    .min(1)
    .transform((s, ctx) => {
      try {
        return read(s);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    });
const redisUrl = z.string().regex(/^rediss?:\/\/[^\s]+$/, 'must start with redis:// or rediss://');
/** `host:port` or `[ipv6]:port`. */
const hostPort = z.string().transform((s, ctx) => {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not host:port` });
    return z.NEVER;
  }
  return { host: (m[1] ?? m[2])!, port };
});

export interface FieldSpec<S extends z.ZodType = z.ZodType> {
  env: string;
  /** Validates the env string (or flag) and supplies the default. */
  schema: S;
  description: string;
  /** Shown in the README instead of the schema's default (computed defaults). */
  defaultText?: string;
}

function f<S extends z.ZodType>(env: string, schema: S, description: string, defaultText?: string): FieldSpec<S> {
  return { env, schema, description, defaultText };
}

/** Field name → spec. Order is the README's order. */
export const FIELDS = {
  port: f('PORT', port.default(3000), 'Public port: Socket.IO, SSE, HTTP API, demo page'),
  host: f('HOST', z.string().min(1).default('0.0.0.0'), 'Listen address of both ports'),
  internalPort: f('INTERNAL_PORT', port.default(9090), 'Internal port: `/metrics`, `/healthz`, `/readyz`'),
  internalGripPublish: f(
    'INTERNAL_GRIP_PUBLISH',
    bool.default(false),
    'Serve GRIP `POST /publish/` on the internal port without a key (as Pushpin does on 5561), for `pushpin-publish` and GRIP publishers inside the cluster; only what may reach the internal port can publish',
  ),
  redisUrl: f(
    'REDIS_URL',
    redisUrl.optional(),
    'Unset: single node, in-memory bus. `redis://…`: cluster mode over one Redis (credentials may be in the URL). `REDIS_SENTINELS` and `REDIS_CLUSTER_NODES` take precedence',
  ),
  redisSentinels: f(
    'REDIS_SENTINELS',
    list.pipe(z.array(hostPort).min(1, 'needs at least one host:port')).optional(),
    'Comma-separated `host:port` of Redis Sentinels: one Redis with automatic failover, found through them (overrides `REDIS_URL`)',
  ),
  redisSentinelName: f(
    'REDIS_SENTINEL_NAME',
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,100}$/, 'must be 1-100 of A-Z a-z 0-9 _ . -')
      .optional(),
    'Master group name the sentinels watch (required with `REDIS_SENTINELS`)',
  ),
  redisSentinelUsername: f(
    'REDIS_SENTINEL_USERNAME',
    optionalString,
    'ACL user for the sentinels themselves (with `REDIS_SENTINEL_PASSWORD`)',
  ),
  redisSentinelPassword: f(
    'REDIS_SENTINEL_PASSWORD',
    optionalString,
    'Password of the sentinels themselves (`requirepass` in sentinel.conf); the data nodes use `REDIS_PASSWORD`',
  ),
  redisSentinelTls: f('REDIS_SENTINEL_TLS', bool.default(false), 'TLS to the sentinels and to the data nodes they name'),
  redisClusterNodes: f(
    'REDIS_CLUSTER_NODES',
    list.pipe(z.array(redisUrl).min(1, 'needs at least one seed URL')).optional(),
    'Comma-separated seed URLs (`redis://` or `rediss://`) of a Redis Cluster; overrides `REDIS_SENTINELS` and `REDIS_URL`',
  ),
  redisUsername: f('REDIS_USERNAME', optionalString, 'ACL user of the data nodes (with `REDIS_PASSWORD`); or put it in the URL, not both'),
  redisPassword: f('REDIS_PASSWORD', optionalString, 'Password of the data nodes (any Redis mode); or put it in the URL, not both'),
  redisConnectTimeoutMs: f('REDIS_CONNECT_TIMEOUT_MS', ms.default(5000), 'Timeout of one connection attempt to Redis (or to a sentinel)'),
  redisReconnectMaxMs: f(
    'REDIS_RECONNECT_MAX_MS',
    ms.default(2000),
    'Reconnection back-off grows by 100 ms per attempt up to this, forever',
  ),
  redisFailoverHoldMs: f(
    'REDIS_FAILOVER_HOLD_MS',
    ms.default(10000),
    'Sentinel mode: from a sentinel announcing a failover until every sentinel names the new master, writes are held back (publishing answers `unavailable`) so none reaches the old master; this caps the hold',
  ),
  redisKeyPrefix: f(
    'REDIS_KEY_PREFIX',
    z
      .string()
      .regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 _ : . -')
      .default('switchboard'),
    'Prefix of every Redis key and pub/sub channel Switchboard uses (the Socket.IO adapter and emitter use `socket.io`)',
  ),
  nodeId: f(
    'NODE_ID',
    z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,100}$/, 'must be 1-100 of A-Z a-z 0-9 _ . : -')
      .optional(),
    'Names the node in logs, metrics and `/api/stats`',
    'hostname-pid',
  ),
  apiKeys: f(
    'API_KEYS',
    list
      .refine(
        (keys) => keys.every((k) => k.length >= MIN_API_KEY),
        `each key must be at least ${MIN_API_KEY} characters (e.g. openssl rand -hex 24)`,
      )
      .optional(),
    `Comma-separated keys for the HTTP API, each at least ${MIN_API_KEY} characters; unset: the API answers 401 naming \`API_KEYS\``,
  ),
  jwtSecret: f(
    'JWT_SECRET',
    strongSecret('JWT_SECRET').optional(),
    `Set: every client connection must carry a valid HS256 token (\`auth.token\`, or \`token\` query for SSE); at least ${MIN_SECRET_BYTES} bytes`,
  ),
  jwtAudience: f(
    'JWT_AUDIENCE',
    optionalString,
    'Set: client tokens must carry this `aud` (a token minted for another service is refused)',
  ),
  jwtIssuer: f('JWT_ISSUER', optionalString, 'Set: client tokens must carry this `iss`'),
  jwtPublicKeyFile: f('JWT_PUBLIC_KEY_FILE', readWith(readPublicKey).optional(), 'PEM public key (SPKI) for RS256/ES256 client tokens'),
  jwtJwksFile: f('JWT_JWKS_FILE', readWith(readJwks).optional(), 'JWKS file with public keys for RS256/ES256 client tokens'),
  tokenRefreshGraceMs: f(
    'TOKEN_REFRESH_GRACE_MS',
    ms.default(1000),
    "Slack after a token's `exp` before a client that sent no `auth:refresh` is disconnected with `token_expired`",
  ),
  backendUrl: f('BACKEND_URL', z.url().optional(), 'Base URL of the backend webhooks'),
  webhookSecret: f(
    'WEBHOOK_SECRET',
    strongSecret('WEBHOOK_SECRET').optional(),
    'HMAC-SHA256 key for webhook signatures (`X-Switchboard-Signature`)',
  ),
  allowedOrigins: f(
    'ALLOWED_ORIGINS',
    origins.optional(),
    "Origins allowed besides the request's own (comma-separated), answered with CORS headers; `*` allows any. Unset: cross-origin browser requests are refused with 403",
  ),
  corsCredentials: f(
    'CORS_CREDENTIALS',
    bool.default(false),
    'Answer allowed cross-origin requests with `Access-Control-Allow-Credentials: true` (cookies on cross-origin polling, SSE and `fetch`)',
  ),
  logLevel: f('LOG_LEVEL', z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), 'pino log level'),
  trustedProxies: f(
    'TRUSTED_PROXIES',
    list.refine((l) => l.every(isAddressOrCidr), 'each entry must be an IP address or CIDR range (10.0.0.0/8)').default([]),
    'Addresses or CIDR ranges whose `X-Forwarded-For` is trusted for the client address (HAProxy)',
    'empty',
  ),
  app: f(
    'SWITCHBOARD_APP',
    optionalString,
    'Path of an ESM module whose default export is the embedded application (RPC methods, authorization hooks)',
  ),
  maxPayloadBytes: f(
    'MAX_PAYLOAD_BYTES',
    positiveInt.default(102400),
    'Largest client frame (WebSocket message or polling body); larger closes the connection',
  ),
  maxHttpBodyBytes: f('MAX_HTTP_BODY_BYTES', positiveInt.default(1048576), 'Largest HTTP API body; larger answers 413'),
  maxPublishBytes: f(
    'MAX_PUBLISH_BYTES',
    positiveInt.default(65536),
    'Largest publication `data` (JSON bytes), from clients and the HTTP API',
  ),
  idleTimeoutSeconds: f(
    'WS_IDLE_TIMEOUT_S',
    z.coerce.number().int().min(8).max(960).default(120),
    'uWS idle timeout of a WebSocket with no traffic (must exceed ping interval + timeout)',
  ),
  maxBackpressureBytes: f(
    'MAX_BACKPRESSURE_BYTES',
    positiveInt.default(1048576),
    'Outbound bytes buffered per WebSocket before the client counts as a slow consumer and is closed',
  ),
  slowConsumerCheckMs: f(
    'SLOW_CONSUMER_CHECK_MS',
    ms.default(100),
    'How often WebSocket outbound buffers are checked against MAX_BACKPRESSURE_BYTES, while anything is being sent',
  ),
  perMessageDeflate: f('PER_MESSAGE_DEFLATE', bool.default(false), 'WebSocket per-message deflate (costs CPU and memory per connection)'),
  pingIntervalMs: f('PING_INTERVAL_MS', ms.default(25000), 'Engine.IO ping interval'),
  pingTimeoutMs: f('PING_TIMEOUT_MS', ms.default(20000), 'Engine.IO ping timeout'),
  historySize: f(
    'HISTORY_SIZE',
    z.coerce.number().int().min(0).max(1_000_000).default(1000),
    'Publications kept per channel for recovery (0: none)',
  ),
  historyTtlSeconds: f('HISTORY_TTL_S', z.coerce.number().int().min(1).default(600), 'Age after which a publication leaves history'),
  historyMaxChannelBytes: f(
    'HISTORY_MAX_CHANNEL_BYTES',
    positiveInt.default(1048576),
    'Without Redis: bytes of history one channel keeps (JSON data and names); its oldest publications leave first, as with HISTORY_SIZE',
  ),
  historyMaxBytes: f(
    'HISTORY_MAX_BYTES',
    positiveInt.default(134217728),
    'Without Redis: bytes of history on the node in all; a publication that would pass it is refused with `unavailable` (counted as `history_bytes`). With Redis, bound it with Redis `maxmemory` (see "Redis memory")',
  ),
  historyMaxChannels: f(
    'HISTORY_MAX_CHANNELS',
    positiveInt.default(10000),
    'Without Redis: channels with history on the node; a publication to one more is refused with `unavailable` (counted as `history_channels`)',
  ),
  anonymousPublishesPerSecondPerIp: f(
    'ANONYMOUS_PUBLISHES_PER_SECOND_PER_IP',
    positiveInt.default(5),
    'Client publications per second per address from connections without a user (where a rule says `publish: "anyone"`, e.g. `demo:`); more answer `rate_limited`. Per node',
  ),
  channelRules: f(
    'CHANNEL_RULES',
    readWith(readRules).optional(),
    'JSON array of channel rules, or `@path` of a JSON file (see "Channel rules")',
  ),
  connectTimeoutMs: f(
    'CONNECT_TIMEOUT_MS',
    ms.default(10000),
    'An Engine.IO session that sends no Socket.IO CONNECT within this is closed (its per-address slot with it)',
  ),
  maxSubscriptions: f('MAX_SUBSCRIPTIONS', positiveInt.default(100), 'Channels one connection may subscribe to'),
  rpcInFlightPerConnection: f(
    'RPC_INFLIGHT_PER_CONNECTION',
    positiveInt.default(8),
    "RPC calls one connection may have in flight; more answer `rate_limited` at once (one client's hung calls can't take the node's `/rpc` budget)",
  ),
  eventsPerSecond: f('EVENTS_PER_SECOND', positiveInt.default(50), 'Client events per second per connection before `rate_limited`'),
  rateLimitStrikes: f(
    'RATE_LIMIT_STRIKES',
    positiveInt.default(5),
    'Seconds in a row over the event rate after which the connection is closed',
  ),
  connectionsPerIp: f(
    'CONNECTIONS_PER_IP',
    positiveInt.default(1000),
    'Concurrent connections per client address (cluster-wide with Redis)',
  ),
  connectionsPerUser: f('CONNECTIONS_PER_USER', positiveInt.default(100), 'Concurrent connections per authenticated user'),
  handshakesPerSecondPerIp: f('HANDSHAKES_PER_SECOND_PER_IP', positiveInt.default(100), 'New connections per second per client address'),
  drainTimeoutMs: f('DRAIN_TIMEOUT_MS', ms.default(10000), 'Drain window on SIGTERM: clients are disconnected in paced batches over it'),
  drainDelayMs: f(
    'DRAIN_DELAY_MS',
    z.coerce.number().int().min(0).max(600_000).default(2000),
    'On SIGTERM, time between /readyz turning 503 and the first disconnect, so the load balancer stops sending new clients first',
  ),
  drainWatchdogMs: f('DRAIN_WATCHDOG_MS', ms.default(10000), 'If shutdown has not finished this long after the drain window, exit 1'),
  canaryIntervalMs: f(
    'CANARY_INTERVAL_MS',
    ms.default(1000),
    "How often the bus canary goes round each Redis shard (and a Redis Cluster's slot map is re-read)",
  ),
  canaryTimeoutMs: f(
    'CANARY_TIMEOUT_MS',
    ms.default(2000),
    'A canary not back within this marks its shard failed (its channels answer `unavailable`; the node stays ready while another shard works)',
  ),
  busUnsubscribeLingerMs: f(
    'BUS_UNSUBSCRIBE_LINGER_MS',
    ms.default(2000),
    'With Redis: a node stays subscribed to a channel this long after its last local subscriber left (a quick re-subscribe costs no Redis round trip)',
  ),
  busPositionCheckMs: f(
    'BUS_POSITION_CHECK_MS',
    ms.default(30000),
    "With Redis: how often a node compares each quiet channel it receives (none in the last interval) with the channel's sequence in Redis, so a loss on a channel that then went quiet is still found; costs one HMGET per quiet channel per interval on its shard",
  ),
  busChannelStateTtlSeconds: f(
    'BUS_CHANNEL_STATE_TTL_S',
    positiveInt.default(86400),
    "With Redis: a channel's sequence and epoch are kept this long after its last publication (or its history TTL if longer); a channel quiet for longer starts a new epoch, and its subscribers are told `recovered: false`",
  ),
  clusterRequestTimeoutMs: f('CLUSTER_REQUEST_TIMEOUT_MS', ms.default(3000), 'Timeout of cluster-wide queries (presence, channel info)'),
  webhookTimeoutMs: f('WEBHOOK_TIMEOUT_MS', ms.default(5000), 'Timeout of one webhook call'),
  webhookConcurrency: f(
    'WEBHOOK_CONCURRENCY',
    positiveInt.default(256),
    'Webhook calls in flight per node and per hook (`/connect`, `/subscribe`, `/publish`, `/rpc`, `/disconnect` each have this budget, and their own circuit breaker); more answer `unavailable`',
  ),
  webhookForwardHeaders: f(
    'WEBHOOK_FORWARD_HEADERS',
    list.default(['authorization', 'user-agent', 'x-forwarded-for']),
    'Request headers forwarded to `/connect` besides `cookie`',
    'authorization,user-agent,x-forwarded-for',
  ),
  webhookBreakerFailures: f(
    'WEBHOOK_BREAKER_FAILURES',
    positiveInt.default(5),
    'Consecutive webhook failures (timeouts, network errors, 5xx) that open a circuit — one per hook, and one per RPC method: those calls then fail fast with `unavailable`',
  ),
  webhookBreakerCooldownMs: f(
    'WEBHOOK_BREAKER_COOLDOWN_MS',
    ms.default(5000),
    'How long an open webhook circuit stays open before one probe call tests the backend again',
  ),
  webhookDisconnectRetries: f(
    'WEBHOOK_DISCONNECT_RETRIES',
    z.coerce.number().int().min(0).max(100).default(5),
    'Retries of a failed `/disconnect` webhook (timeouts, network errors, 5xx) before it is dropped',
  ),
  webhookRetryBackoffMs: f(
    'WEBHOOK_RETRY_BACKOFF_MS',
    ms.default(500),
    'Delay before the first `/disconnect` retry; doubles per attempt, up to 64 times this',
  ),
  webhookDisconnectQueue: f(
    'WEBHOOK_DISCONNECT_QUEUE',
    positiveInt.default(10000),
    '`/disconnect` webhooks waiting for delivery; more are dropped (counted as outcome `dropped`)',
  ),
  connectionLimitsHeartbeatMs: f(
    'CONNECTION_LIMITS_HEARTBEAT_MS',
    ms.default(5000),
    'With Redis: how often a node renews its share of the cluster-wide connection counts; the counts of a node silent for 4 intervals are released',
  ),
  idempotencyWindowSeconds: f(
    'IDEMPOTENCY_WINDOW_S',
    positiveInt.default(600),
    'How long an `Idempotency-Key` of the HTTP API is remembered',
  ),
  sseMaxChannels: f(
    'SSE_MAX_CHANNELS',
    positiveInt.default(32),
    'Channels one SSE stream may carry (its event ids name a position in each, so they stay under ~700 bytes)',
  ),
  sseKeepaliveMs: f('SSE_KEEPALIVE_MS', ms.default(15000), 'Interval of SSE keep-alive comments'),
  adminUi: f(
    'ADMIN_UI',
    bool.default(false),
    'Serve the Socket.IO Admin UI (`@socket.io/admin-ui`) at `/admin/` on the public port, with its `/admin` namespace; needs ADMIN_UI_USERNAME and ADMIN_UI_PASSWORD_HASH',
  ),
  adminUiUsername: f('ADMIN_UI_USERNAME', optionalString, 'Admin UI login name'),
  adminUiPasswordHash: f(
    'ADMIN_UI_PASSWORD_HASH',
    z
      .string()
      .regex(/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/, 'must be a bcrypt hash (see "Admin view")')
      .optional(),
    'bcrypt hash of the Admin UI password',
  ),
  adminUiMode: f(
    'ADMIN_UI_MODE',
    z.enum(['production', 'development']).default('production'),
    '`production`: servers and aggregate counts; `development`: also every socket, room and event (costs a cluster-wide broadcast per client event)',
  ),
  adminUiReadonly: f('ADMIN_UI_READONLY', bool.default(true), 'Hide the Admin UI actions (emit, join, leave, disconnect sockets)'),
} as const;

export type FieldName = keyof typeof FIELDS;

/** The validated, frozen configuration. */
export type Config = { readonly [K in FieldName]: K extends 'nodeId' ? string : z.output<(typeof FIELDS)[K]['schema']> };

export function defaultNodeId(): string {
  return `${os.hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 100);
}
