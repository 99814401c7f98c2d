// Cluster-wide connection limits over Redis: one counter per address and per user, plus per-node bookkeeping
// of what each node holds, so a node that dies (kill -9) has its share released by the others.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { Logger } from '../log/logger.js';
import { createRedisClient, createRedisCluster, type RedisConnectOptions } from '../bus/redis-connect.js';
import type { Metrics } from '../metrics/metrics.js';
import {
  consumeHandshake,
  limitError,
  LocalConnectionLimits,
  Slot,
  type ConnectionLimits,
  type LimitOptions,
  type SlotOwner,
} from './connections.js';

export interface RedisLimitOptions extends LimitOptions {
  /** Which Redis and how to reach it (one URL or Sentinel). */
  redis: RedisConnectOptions;
  /** REDIS_KEY_PREFIX. */
  prefix: string;
  nodeId: string;
  /** How often this node proves it is alive and reaps dead nodes; dead after 4 silent intervals. @default 5000 */
  heartbeatMs: number;
  /** Timeout of one Redis command; past it the node falls back to per-node limits. @default 2000 */
  commandTimeoutMs: number;
}

// Counters and node ledgers also expire, as a last resort should every node be gone for that long while Redis
// keeps its data. A counter is renewed by every connection to it, a ledger by its node's heartbeat.
const KEY_TTL_MS = 24 * 3600 * 1000;
const DEAD_AFTER_HEARTBEATS = 4;

// KEYS[1] ip counter, KEYS[2] user counter, KEYS[3] this node's ledger. ARGV: ip limit, user limit, has user, ttl,
// has ip. Returns 0 (counted), 1 (address full) or 2 (user full).
const ACQUIRE_LUA = `
if ARGV[5] == '1' and tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 1 end
if ARGV[3] == '1' and tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return 2 end
local use = { ARGV[5] == '1', ARGV[3] == '1' }
for i = 1, 2 do
  if use[i] then
    redis.call('INCR', KEYS[i])
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
    redis.call('HINCRBY', KEYS[3], KEYS[i], 1)
  end
end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 0
`;

// Same keys; ARGV[1] has user, ARGV[2] has ip. Only what the ledger still holds is released: if other nodes
// presumed this one dead (a long pause) and released its share already, releasing again would undercount.
const RELEASE_LUA = `
local use = { ARGV[2] == '1', ARGV[1] == '1' }
for i = 1, 2 do
  if use[i] and tonumber(redis.call('HGET', KEYS[3], KEYS[i]) or '0') > 0 then
    if redis.call('DECR', KEYS[i]) <= 0 then redis.call('DEL', KEYS[i]) end
    if redis.call('HINCRBY', KEYS[3], KEYS[i], -1) <= 0 then redis.call('HDEL', KEYS[3], KEYS[i]) end
  end
end
return 0
`;

// KEYS[1] the alive set (member: node instance, score: last heartbeat, Redis time so node clocks don't matter).
// ARGV: this instance, dead-after ms, ledger key prefix, ttl. Renews this node, then releases every dead node's
// ledger — atomically, so two nodes reaping at once cannot release a share twice. Returns how many were reaped.
const HEARTBEAT_LUA = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', ARGV[3] .. ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
for _, node in ipairs(dead) do
  local ledger = ARGV[3] .. node
  local held = redis.call('HGETALL', ledger)
  for i = 1, #held, 2 do
    if redis.call('DECRBY', held[i], held[i + 1]) <= 0 then redis.call('DEL', held[i]) end
  end
  redis.call('DEL', ledger)
  redis.call('ZREM', KEYS[1], node)
end
return #dead
`;

type LimitsRedis = Redis & {
  sbLimAcquire(
    ipKey: string,
    userKey: string,
    ledger: string,
    ipLimit: number,
    userLimit: number,
    hasUser: string,
    ttl: number,
    hasIp: string,
  ): Promise<number>;
  sbLimRelease(ipKey: string, userKey: string, ledger: string, hasUser: string, hasIp: string): Promise<number>;
  sbLimHeartbeat(alive: string, instance: string, deadAfterMs: number, ledgerPrefix: string, ttl: number): Promise<number>;
};

export class RedisConnectionLimits implements ConnectionLimits, SlotOwner {
  private readonly redis: LimitsRedis;
  private readonly local: LocalConnectionLimits;
  private readonly handshakes: RateLimiterRedis;
  /** This process's ledger: a restarted node (same NODE_ID) is a new instance; the old one is reaped. */
  private readonly instance: string;
  private readonly ledgerPrefix: string;
  private readonly limPrefix: string;
  private readonly ledger: string;
  private readonly alive: string;
  private readonly unreleased: { ip: string | undefined; user: string | undefined }[] = [];
  private readonly timer: NodeJS.Timeout;
  private degraded = false;
  private readonly log: Logger;

  constructor(
    private readonly opts: RedisLimitOptions,
    private readonly metrics: Metrics,
    log: Logger,
  ) {
    this.log = log.child({ module: 'limits' });
    this.instance = `${opts.nodeId}.${randomBytes(4).toString('hex')}`;
    // Every counter, ledger and the alive set share one hash tag: the scripts touch several of them atomically, so
    // on a Redis Cluster they must live in one slot. Connection counting is one shard's work (a few commands per
    // connect and disconnect); publications, the heavy part, spread over every shard.
    const lim = `${opts.prefix}:{${opts.prefix}:lim}`;
    this.limPrefix = lim;
    this.ledgerPrefix = `${lim}:node:`;
    this.ledger = this.ledgerPrefix + this.instance;
    this.alive = `${lim}:alive`;
    this.local = new LocalConnectionLimits(opts, metrics);
    // Fail fast while Redis is away (the per-node fallback answers), reconnect forever.
    const role = { role: 'limits', failFast: true, commandTimeoutMs: opts.commandTimeoutMs };
    this.redis = (opts.redis.target.mode === 'cluster'
      ? createRedisCluster(opts.redis, role)
      : createRedisClient(opts.redis, role)) as unknown as LimitsRedis;
    this.redis.on('error', (err) => this.log.debug({ err: { message: err.message } }, 'redis error (limits)'));
    this.redis.on('ready', () => this.heartbeat());
    this.redis.defineCommand('sbLimAcquire', { numberOfKeys: 3, lua: ACQUIRE_LUA });
    this.redis.defineCommand('sbLimRelease', { numberOfKeys: 3, lua: RELEASE_LUA });
    this.redis.defineCommand('sbLimHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT_LUA });
    this.handshakes = new RateLimiterRedis({
      storeClient: this.redis,
      keyPrefix: `${opts.prefix}:lim:hs`,
      points: opts.handshakesPerSecondPerIp,
      duration: 1,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ points: opts.handshakesPerSecondPerIp, duration: 1 }),
    });
    this.timer = setInterval(() => this.heartbeat(), opts.heartbeatMs);
    this.timer.unref();
  }

  async handshake(ip: string) {
    await consumeHandshake(this.handshakes, ip, this.opts, this.metrics);
  }

  async acquire(ip: string | undefined, user: string | undefined): Promise<Slot> {
    let verdict: number;
    try {
      verdict = await this.redis.sbLimAcquire(
        this.key('ip', ip),
        this.key('user', user),
        this.ledger,
        this.opts.connectionsPerIp,
        this.opts.connectionsPerUser,
        user === undefined ? '0' : '1',
        KEY_TTL_MS,
        ip === undefined ? '0' : '1',
      );
      this.setDegraded(false);
    } catch (err) {
      // Redis away: the same limits per node rather than none, or refusing everyone.
      this.setDegraded(true, err);
      return this.local.acquire(ip, user);
    }
    if (verdict === 1) throw limitError('ip', this.opts, this.metrics);
    if (verdict === 2) throw limitError('user', this.opts, this.metrics);
    return new Slot(this, ip, user);
  }

  /** A slot's counts back (Slot.release calls it once). */
  free(ip: string | undefined, user: string | undefined) {
    this.redis
      .sbLimRelease(this.key('ip', ip), this.key('user', user), this.ledger, user === undefined ? '0' : '1', ip === undefined ? '0' : '1')
      .catch(() => {
        // Retried on the next heartbeat; the ledger keeps the count right meanwhile.
        this.unreleased.push({ ip, user });
      });
  }

  private key(kind: 'ip' | 'user', name: string | undefined) {
    return `${this.limPrefix}:${kind}:${name ?? ''}`;
  }

  private heartbeat() {
    if (this.redis.status !== 'ready') return;
    this.redis
      .sbLimHeartbeat(this.alive, this.instance, this.opts.heartbeatMs * DEAD_AFTER_HEARTBEATS, this.ledgerPrefix, KEY_TTL_MS)
      .then((reaped) => {
        if (reaped > 0) this.log.info({ nodes: reaped }, 'released the connection counts of nodes that stopped without closing');
        for (const r of this.unreleased.splice(0)) this.free(r.ip, r.user);
      })
      .catch((err: Error) => this.log.debug({ err: { message: err.message } }, 'limits heartbeat failed'));
  }

  private setDegraded(on: boolean, err?: unknown) {
    if (on === this.degraded) return;
    this.degraded = on;
    if (on)
      this.log.warn({ err: { message: (err as Error)?.message } }, 'redis unavailable: connection limits are per node until it returns');
    else this.log.info('redis back: connection limits are cluster-wide again');
  }

  async close() {
    clearInterval(this.timer);
    // Connections still counted (the drain released the rest) are released by the other nodes' reaping;
    // leaving the alive set now makes that immediate.
    await this.redis.zadd(this.alive, 0, this.instance).catch(() => {});
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
