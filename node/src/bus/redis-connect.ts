// The one place Switchboard opens Redis connections: which Redis (one URL, Sentinel, Cluster) and how each role retries.
import { Cluster, Redis, SentinelConnector, type ClusterOptions, type RedisOptions } from 'ioredis';
import { redactUrl } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';

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
  /** Sentinel mode: keeps every client off the old master while a failover runs (see SentinelFailoverGate). */
  gate?: SentinelFailoverGate;
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
export function describeRedis(o: RedisConnectOptions): {
  mode: RedisTarget['mode'];
  addresses: string[];
  group?: string;
  ignored?: string[];
} {
  const t = o.target;
  const extra = o.ignored.length ? { ignored: o.ignored } : {};
  if (t.mode === 'single') return { mode: t.mode, addresses: [redactUrl(t.url)], ...extra };
  if (t.mode === 'cluster') return { mode: t.mode, addresses: t.nodes.map(redactUrl), ...extra };
  return {
    mode: t.mode,
    addresses: t.sentinels.map((s) => (s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`)),
    group: t.name,
    ...extra,
  };
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
    const client = new Redis({
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
      // Without a gate, ioredis's own detector reconnects on +switch-master (the gate does that and more).
      failoverDetector: !o.gate,
      ...(o.gate ? { Connector: o.gate.connector() } : {}),
    });
    o.gate?.register(client, r.failFast ? 'writer' : 'reader');
    return client;
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

export interface FailoverGateOptions {
  /** Longest time writers are held back during one failover; then they reconnect whatever the sentinels say. @default 10000 */
  maxHoldMs: number;
}

/**
 * Sentinel fails over by promoting a replica; the old master, if alive (a planned SENTINEL FAILOVER, a partition),
 * stays a writable master until a sentinel next reads its INFO (seconds later) and demotes it, and whatever is
 * written to it meanwhile is wiped by the resync. Sentinels also learn of the switch one after another, so a client
 * reconnecting in that window may be sent back to the old master. Both lose acknowledged writes.
 * The gate closes that window: from `+try-failover` on any sentinel it disconnects every writer and holds every
 * reconnect (publishes answer `unavailable`, the canary stops, readiness turns false), so nothing reaches the old
 * master after its replica started taking over; on `+switch-master` it waits until every sentinel that answers
 * names the new master, moves the readers (subscriptions) still on another address and opens again. An aborted
 * failover, or none finishing within `maxHoldMs`, opens it as well.
 */
export class SentinelFailoverGate {
  private readonly watchers: Redis[] = [];
  private readonly askers: Redis[] = [];
  private readonly writers = new Set<Redis>();
  private readonly readers = new Set<Redis>();
  /** Sentinels that announced a failover of our group not yet ended. */
  private readonly trying = new Set<string>();
  private held: { until: Promise<void>; open: () => void; timer: NodeJS.Timeout } | undefined;
  private settling = 0;
  private settled = '';
  private closed = false;
  private readonly log: Logger;
  private readonly target: Extract<RedisTarget, { mode: 'sentinel' }>;

  constructor(
    private readonly o: RedisConnectOptions,
    private readonly opts: FailoverGateOptions,
    log: Logger,
  ) {
    if (o.target.mode !== 'sentinel') throw new Error('a failover gate needs REDIS_SENTINELS');
    this.target = o.target;
    this.log = log.child({ module: 'redis-failover' });
  }

  /** Opens one event subscription and one command connection per sentinel. */
  start() {
    for (const s of this.target.sentinels) {
      const addr = `${s.host}:${s.port}`;
      const opts: RedisOptions = {
        host: s.host,
        port: s.port,
        ...(this.target.sentinelUsername !== undefined ? { username: this.target.sentinelUsername } : {}),
        ...(this.target.sentinelPassword !== undefined ? { password: this.target.sentinelPassword } : {}),
        ...(this.target.tls ? { tls: {} } : {}),
        connectTimeout: this.o.connectTimeoutMs,
        retryStrategy: (times) => Math.min(times * 100, this.o.reconnectMaxMs),
        // A sentinel is not a data node: no INFO-based ready check.
        enableReadyCheck: false,
        connectionName: 'switchboard:failover-gate',
      };
      const watcher = new Redis({ ...opts, maxRetriesPerRequest: null });
      watcher.on('error', (err) => this.log.debug({ err: { message: err.message }, sentinel: addr }, 'sentinel connection error'));
      watcher.subscribe('+try-failover', '+switch-master').catch(() => {});
      watcher.psubscribe('-failover-abort*').catch(() => {});
      watcher.on('message', (channel: string, msg: string) => this.onEvent(addr, channel, msg));
      watcher.on('pmessage', (_p: string, channel: string, msg: string) => this.onEvent(addr, channel, msg));
      this.watchers.push(watcher);
      const asker = new Redis({ ...opts, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: this.o.connectTimeoutMs });
      asker.on('error', () => {});
      this.askers.push(asker);
    }
  }

  /** Called by createRedisClient: writers (fail-fast command clients) are cut off during a failover, readers moved after. */
  register(client: Redis, kind: 'writer' | 'reader') {
    const set = kind === 'writer' ? this.writers : this.readers;
    set.add(client);
    client.on('end', () => set.delete(client));
    // A writer that was mid-connect when the hold began may reach the old master: cut it off too.
    if (kind === 'writer') client.on('ready', () => this.held && client.disconnect(true));
  }

  /** The connector of every sentinel-mode client: a (re)connection waits while the gate holds. */
  connector(): NonNullable<RedisOptions['Connector']> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const gate = this;
    class GatedSentinelConnector extends SentinelConnector {
      override async connect(eventEmitter: Parameters<SentinelConnector['connect']>[0]) {
        this.connecting = true;
        await gate.held?.until;
        // Closed by its owner while waiting: connect nothing.
        if (!this.connecting) throw new Error('Connection is closed.');
        return super.connect(eventEmitter);
      }
    }
    return GatedSentinelConnector as unknown as NonNullable<RedisOptions['Connector']>;
  }

  private onEvent(sentinel: string, channel: string, msg: string) {
    const f = msg.split(' ');
    if (channel === '+switch-master') {
      if (f[0] !== this.target.name) return;
      this.trying.clear();
      void this.settle(`${f[3]}:${f[4]}`);
      return;
    }
    // "<type> <name> <ip> <port> …": only our own master group.
    if (f[0] !== 'master' || f[1] !== this.target.name) return;
    if (channel === '+try-failover') {
      this.trying.add(sentinel);
      this.hold(sentinel, f[1]);
    } else if (channel.startsWith('-failover-abort')) {
      this.trying.delete(sentinel);
      if (this.trying.size === 0 && this.settling === 0) this.open(`failover aborted (${channel})`);
    }
  }

  private hold(sentinel: string, group: string) {
    if (this.closed || this.held) return;
    this.log.warn({ sentinel, group }, 'sentinel failover started: writes held until the new master is named');
    let open!: () => void;
    const until = new Promise<void>((r) => (open = r));
    this.held = { until, open, timer: setTimeout(() => this.open('no new master named in time'), this.opts.maxHoldMs) };
    this.settled = '';
    // Only established connections: ioredis ends (for good) a client disconnected while connecting; those
    // reconnect through the gate, or are cut off on 'ready' (see register).
    for (const w of this.writers) if (w.status === 'ready' || w.status === 'connect') w.disconnect(true);
  }

  private open(reason: string) {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    clearTimeout(h.timer);
    this.log.info({ reason }, 'writes released');
    h.open();
  }

  /** After +switch-master: once every sentinel that answers names `master`, move everything there. */
  private async settle(master: string) {
    // Each sentinel announces the switch as it learns it: one move per new master.
    if (master === this.settled && !this.held) return;
    this.settled = master;
    const round = ++this.settling;
    const deadline = Date.now() + this.opts.maxHoldMs;
    for (;;) {
      if (this.closed || round !== this.settling) return;
      const named = await Promise.all(
        this.askers.map((a) =>
          a.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.target.name).then(
            (r: unknown) => (Array.isArray(r) ? `${r[0]}:${r[1]}` : undefined),
            () => undefined,
          ),
        ),
      );
      const answered = named.filter((x): x is string => x !== undefined);
      if ((answered.length > 0 && answered.every((x) => x === master)) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (round !== this.settling) return;
    this.settling = 0;
    this.log.info({ master }, 'sentinels name the new master: moving every connection there');
    for (const c of [...this.readers, ...this.writers]) {
      const stream = (c as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
      const at = stream ? `${stream.remoteAddress}:${stream.remotePort}` : '';
      if ((c.status === 'ready' || c.status === 'connect') && at !== master) c.disconnect(true);
    }
    this.open('new master named');
  }

  async close() {
    this.closed = true;
    this.open('closing');
    await Promise.allSettled([...this.watchers, ...this.askers].map((c) => c.quit()));
    for (const c of [...this.watchers, ...this.askers]) c.disconnect();
  }
}
