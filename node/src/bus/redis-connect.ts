// The one place Switchboard opens Redis connections: which Redis (one URL, Sentinel, Cluster) and how each role retries.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { redactUrl } from '../config/load.js';
import type { Config } from '../config/schema.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Where the data lives. Precedence when several are configured: cluster > sentinel > single. */
export type RedisTarget =
  | { mode: 'single'; url: string }
  | {
      mode: 'sentinel';
      sentinels: HostPort[];
      /** Master group name the sentinels watch. */
      name: string;
      sentinelUsername?: string;
      sentinelPassword?: string;
      /** TLS to the sentinels and to the data nodes they name. */
      tls: boolean;
    }
  | { mode: 'cluster'; nodes: string[] };

export interface RedisConnectOptions {
  target: RedisTarget;
  /** Data-node ACL user (REDIS_USERNAME); URL credentials are read from the URL instead. */
  username?: string;
  /** Data-node password (REDIS_PASSWORD). */
  password?: string;
  /** One connection attempt, to a data node or a sentinel. @default 5000 */
  connectTimeoutMs: number;
  /** Reconnection back-off grows 100 ms per attempt up to this, and never gives up. @default 2000 */
  reconnectMaxMs: number;
  /** Env names that were set but are outranked by the chosen mode (worth a line in the start-up log). */
  ignored: string[];
}

export interface ClientRole {
  /** Names the client in logs and in the `switchboard_redis_connected{role}` metric. */
  role: string;
  /**
   * Commands fail at once while no Redis is connected, so the caller answers `unavailable` or falls back,
   * instead of piling up in memory. Subscriber connections set false: their SUBSCRIBEs must survive reconnects.
   */
  failFast: boolean;
  /** Per-command timeout (fail-fast clients); unset: none. */
  commandTimeoutMs?: number;
  /** Connect on connect() or the first command rather than at once. @default false */
  lazyConnect?: boolean;
}

type RedisConfig = Pick<
  Config,
  | 'redisUrl'
  | 'redisSentinels'
  | 'redisSentinelName'
  | 'redisSentinelUsername'
  | 'redisSentinelPassword'
  | 'redisSentinelTls'
  | 'redisClusterNodes'
  | 'redisUsername'
  | 'redisPassword'
  | 'redisConnectTimeoutMs'
  | 'redisReconnectMaxMs'
>;

/** The Redis options of the configuration, or undefined when no Redis is configured (in-memory bus). */
export function redisConnectOptions(cfg: RedisConfig): RedisConnectOptions | undefined {
  let target: RedisTarget;
  const ignored: string[] = [];
  if (cfg.redisClusterNodes) {
    target = { mode: 'cluster', nodes: [...cfg.redisClusterNodes] };
    if (cfg.redisSentinels) ignored.push('REDIS_SENTINELS');
    if (cfg.redisUrl) ignored.push('REDIS_URL');
  } else if (cfg.redisSentinels) {
    target = {
      mode: 'sentinel',
      sentinels: cfg.redisSentinels.map((s) => ({ ...s })),
      name: cfg.redisSentinelName!,
      sentinelUsername: cfg.redisSentinelUsername,
      sentinelPassword: cfg.redisSentinelPassword,
      tls: cfg.redisSentinelTls,
    };
    if (cfg.redisUrl) ignored.push('REDIS_URL');
  } else if (cfg.redisUrl) {
    target = { mode: 'single', url: cfg.redisUrl };
  } else {
    return undefined;
  }
  return {
    target,
    username: cfg.redisUsername,
    password: cfg.redisPassword,
    connectTimeoutMs: cfg.redisConnectTimeoutMs,
    reconnectMaxMs: cfg.redisReconnectMaxMs,
    ignored,
  };
}

/** For the start-up log: the mode and addresses, never a password. */
export function describeRedis(o: RedisConnectOptions): { mode: RedisTarget['mode']; addresses: string[]; group?: string; ignored?: string[] } {
  const t = o.target;
  const extra = o.ignored.length ? { ignored: o.ignored } : {};
  if (t.mode === 'single') return { mode: t.mode, addresses: [redactUrl(t.url)], ...extra };
  if (t.mode === 'cluster') return { mode: t.mode, addresses: t.nodes.map(redactUrl), ...extra };
  return { mode: t.mode, addresses: t.sentinels.map((s) => (s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`)), group: t.name, ...extra };
}

// Errors a data node answers while it is not (yet) a usable master: after a failover the old master turns
// replica (READONLY), a fresh one loads its data (LOADING), or Sentinel has none to name (MASTERDOWN).
// Reconnecting lets the Sentinel lookup (or DNS) find the current master.
const RECONNECT_ON = /^(READONLY|LOADING|MASTERDOWN)/;

function roleOptions(o: RedisConnectOptions, r: ClientRole): RedisOptions {
  return {
    lazyConnect: r.lazyConnect ?? false,
    connectTimeout: o.connectTimeoutMs,
    // Back off 100 ms, 200 ms, … up to the cap, forever: Redis coming back must need no restart of the node.
    retryStrategy: (times) => Math.min(times * 100, o.reconnectMaxMs),
    reconnectOnError: (err) => RECONNECT_ON.test(err.message),
    ...(r.failFast ? { enableOfflineQueue: false, maxRetriesPerRequest: 0 } : { maxRetriesPerRequest: null }),
    ...(r.commandTimeoutMs !== undefined ? { commandTimeout: r.commandTimeoutMs } : {}),
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    connectionName: `switchboard:${r.role}`,
  };
}

/** A client for one role, on one Redis or on the current Sentinel master. Cluster mode: use createRedisCluster. */
export function createRedisClient(o: RedisConnectOptions, r: ClientRole): Redis {
  const t = o.target;
  const base = roleOptions(o, r);
  if (t.mode === 'single') return new Redis(t.url, base);
  if (t.mode === 'sentinel') {
    return new Redis({
      ...base,
      sentinels: t.sentinels,
      name: t.name,
      role: 'master',
      ...(t.sentinelUsername !== undefined ? { sentinelUsername: t.sentinelUsername } : {}),
      ...(t.sentinelPassword !== undefined ? { sentinelPassword: t.sentinelPassword } : {}),
      ...(t.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
      // While no sentinel answers, ask again with the same back-off, forever.
      sentinelRetryStrategy: (times) => Math.min(times * 100, o.reconnectMaxMs),
      sentinelCommandTimeout: o.connectTimeoutMs,
      // Listens for +switch-master on the sentinels and reconnects at once, even when the old master is
      // hung (SIGSTOP, partition) and would never close the connection itself.
      failoverDetector: true,
    });
  }
  throw new Error(`REDIS_CLUSTER_NODES: the ${r.role} client has no Redis Cluster mode yet (cluster clients come from createRedisCluster)`);
}

/** Seeds of REDIS_CLUSTER_NODES as host/port, with the credentials and TLS of the URLs (the first that has them). */
function clusterSeeds(o: RedisConnectOptions): { nodes: HostPort[]; auth: RedisOptions } {
  const t = o.target;
  if (t.mode !== 'cluster') throw new Error('not a cluster target');
  const nodes: HostPort[] = [];
  const auth: RedisOptions = {};
  for (const raw of t.nodes) {
    const u = new URL(raw);
    nodes.push({ host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379 });
    if (u.username && auth.username === undefined) auth.username = decodeURIComponent(u.username);
    if (u.password && auth.password === undefined) auth.password = decodeURIComponent(u.password);
    if (u.protocol === 'rediss:') auth.tls = {};
  }
  if (o.username !== undefined) auth.username = o.username;
  if (o.password !== undefined) auth.password = o.password;
  return { nodes, auth };
}

export interface ClusterRole extends ClientRole {
  /** How often the slot map is re-read, so a failover is seen without waiting for a MOVED. @default 1000 */
  slotsRefreshMs?: number;
}

/**
 * Cluster mode (REDIS_CLUSTER_NODES): an ioredis Cluster client. Commands go to the master of their key's slot;
 * the slot map is refreshed on a timer (failovers are found without traffic) and on MOVED.
 */
export function createRedisCluster(o: RedisConnectOptions, r: ClusterRole): Cluster {
  const { nodes, auth } = clusterSeeds(o);
  const { username, password, ...node } = roleOptions(o, r);
  void username;
  void password;
  const options: ClusterOptions = {
    redisOptions: { ...node, ...auth },
    lazyConnect: r.lazyConnect ?? false,
    scaleReads: 'master',
    slotsRefreshInterval: r.slotsRefreshMs ?? 1000,
    slotsRefreshTimeout: Math.min(o.connectTimeoutMs, 1000),
    // While no seed answers, try again with the same back-off, forever.
    clusterRetryStrategy: (times) => Math.min(times * 100, o.reconnectMaxMs),
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    maxRedirections: 16,
    ...(r.failFast ? { enableOfflineQueue: false } : {}),
    ...(auth.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
  };
  return new Cluster(nodes, options);
}

/** A connection to one cluster node (a master, by the address the slot map gives), with the cluster's credentials. */
export function createClusterNodeClient(o: RedisConnectOptions, r: ClientRole, node: HostPort): Redis {
  const { auth } = clusterSeeds(o);
  const { username, password, ...base } = roleOptions(o, r);
  void username;
  void password;
  return new Redis({ ...base, ...auth, host: node.host, port: node.port });
}
