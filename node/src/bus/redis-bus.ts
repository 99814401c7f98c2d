// Cluster bus over Redis: publications go through one Lua script that appends to the channel's stream
// (history, id) and PUBLISHes in the same atomic step, so every node sees every channel in id order.
import { createAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import type { Bus, BusHealth, HistoryRead, NodeInfo, Publication, PublishInput, PublishResult } from './bus.js';
import { IdGenerator, parseId } from '../core/ids.js';
import { decodeParsed, encodeData } from '../core/codec.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { createRedisClient, type RedisConnectOptions } from './redis-connect.js';
import { SbError } from '../core/errors.js';

export interface RedisBusOptions {
  /** Which Redis and how to reach it (one URL or Sentinel). */
  redis: RedisConnectOptions;
  prefix: string;
  nodeId: string;
  canaryIntervalMs: number;
  canaryTimeoutMs: number;
  requestTimeoutMs: number;
}

// Why one script: XADD assigns the id and PUBLISH fans out. Run separately, two nodes publishing to one
// channel could XADD in one order and PUBLISH in the other, and subscribers would see ids out of order.
// Inside a script Redis runs both with nothing in between, and pub/sub keeps order on each connection,
// so every subscriber receives each channel in id order. The global counter lets receivers count gaps;
// it restarts at 1 when Redis loses its data, which receivers take as "history may be lost".
// The optional idempotency key is checked and set in the same step (see PublishInput.once).
// KEYS[1] stream, KEYS[2] counter, KEYS[3] idempotency key. ARGV: pubsub channel, payload,
// maxlen ('0': keep none), ttl ms, idempotency ttl s ('' : no key).
const PUBLISH_LUA = `
if ARGV[5] ~= '' then
  local prev = redis.call('GET', KEYS[3])
  if prev then return {prev, 1} end
end
local seq = redis.call('INCR', KEYS[2])
local id
if ARGV[3] == '0' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '0', '*', 'p', ARGV[2])
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'p', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[1], seq .. ' ' .. id .. ' ' .. ARGV[2])
if ARGV[5] ~= '' then redis.call('SET', KEYS[3], id, 'EX', ARGV[5]) end
return {id, 0}
`;

interface WirePayload {
  c: string; // channel ('' for a canary)
  e: string; // event
  d: unknown; // data
  t: number; // publish time, ms
  o: string; // origin node
  v?: 1; // volatile
}

type RedisWithScript = Redis & {
  sbPublish(stream: string, counter: string, once: string, chan: string, payload: string, maxlen: string, ttl: string, onceTtl: string): Promise<[string, number]>;
};

export class RedisBus implements Bus {
  readonly mode = 'redis' as const;
  private readonly pub: RedisWithScript;
  private readonly sub: Redis;
  private readonly channel: string;
  private readonly listeners: ((p: Publication) => void)[] = [];
  private readonly resyncListeners: ((kind: 'gap' | 'reset') => void)[] = [];
  private lastId = '0-0';
  private readonly healthListeners: ((h: BusHealth) => void)[] = [];
  private lastSeq: number | undefined;
  private verified = false;
  private canary: { token: string; sentAt: number } | undefined;
  private canaryTimer: NodeJS.Timeout | undefined;
  private canaryCounter = 0;
  private current: BusHealth = { ready: false, reason: 'redis not connected yet' };
  private closing = false;
  private readonly fenceChannel: string;
  private readonly fences = new Map<string, () => void>();
  private fenceCounter = 0;
  private readonly localIds = new IdGenerator();
  private lastRedisMs = 0;
  private self: () => NodeInfo = () => ({ id: this.opts.nodeId, connections: 0 });
  private readonly log: Logger;

  constructor(
    private readonly opts: RedisBusOptions,
    log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.log = log.child({ module: 'bus' });
    // Commands fail fast while Redis is away (publish answers `unavailable`), instead of queueing in memory.
    this.pub = createRedisClient(opts.redis, { role: 'publisher', failFast: true, commandTimeoutMs: opts.canaryTimeoutMs, lazyConnect: true }) as RedisWithScript;
    this.sub = createRedisClient(opts.redis, { role: 'subscriber', failFast: false, lazyConnect: true });
    this.pub.defineCommand('sbPublish', { numberOfKeys: 3, lua: PUBLISH_LUA });
    this.channel = `${opts.prefix}:pub`;
    for (const [role, client] of [['publisher', this.pub], ['subscriber', this.sub]] as const) {
      client.on('error', (err) => this.log.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, role }, 'redis error'));
      client.on('ready', () => {
        this.metrics.redisUp.set({ role }, 1);
        this.log.info({ role }, 'redis connected');
        // After any reconnect the subscription is verified again (canary) before readiness returns.
        this.verified = false;
        this.evaluate();
        if (role === 'subscriber') this.emitResync('gap', 'subscriber reconnected');
      });
      client.on('close', () => {
        this.metrics.redisUp.set({ role }, 0);
        if (!this.closing) this.log.warn({ role }, 'redis connection lost; reconnecting');
        this.verified = false;
        this.evaluate();
      });
    }
    this.fenceChannel = `${opts.prefix}:fence:${opts.nodeId}`;
    this.sub.on('message', (chan: string, msg: string) => {
      if (chan === this.channel) this.receive(msg);
      else if (chan === this.fenceChannel) this.fences.get(msg)?.();
    });
  }

  async start() {
    // The adapter may already have started a connection by issuing its SUBSCRIBE commands.
    const connected = (c: Redis) => (c.status === 'wait' ? c.connect() : c.status === 'ready' ? undefined : new Promise((r) => c.once('ready', r)));
    await Promise.all([connected(this.pub), connected(this.sub)]);
    await this.sub.subscribe(this.channel, this.fenceChannel);
    this.canaryTimer = setInterval(() => this.tickCanary(), this.opts.canaryIntervalMs);
    this.tickCanary();
    // Readiness needs one canary round trip: proof that publish → Redis → subscriber works.
    await new Promise<void>((resolve) => {
      if (this.current.ready) return resolve();
      const fn = (h: BusHealth) => h.ready && resolve();
      this.healthListeners.push(fn);
    });
  }

  private key(kind: string, name: string) {
    return `${this.opts.prefix}:${kind}:${name}`;
  }

  async publish(input: PublishInput): Promise<PublishResult> {
    if (!this.current.ready) {
      // Exactly-once can't be promised by one node alone: the caller retries once the bus is back.
      if (input.once) throw new SbError('unavailable', `the cluster bus is unavailable (${this.current.reason}); retry`);
      return this.publishLocal(input);
    }
    const payload: WirePayload = { c: input.channel, e: input.event, d: encodeData(input.data), t: input.ts, o: this.opts.nodeId, ...(input.volatile ? { v: 1 as const } : {}) };
    try {
      // The stream keeps its last id even at MAXLEN 0, so ids stay increasing for channels without history.
      const stream = this.key('h', input.channel);
      const [id, dup] = await this.pub.sbPublish(
        stream,
        this.key('seq', 'bus'),
        input.once ? this.key('once', input.once.key) : stream,
        this.channel,
        JSON.stringify(payload),
        String(input.history.size),
        String(Math.max(input.history.ttlMs, 60_000)),
        input.once ? String(input.once.ttlSeconds) : '',
      );
      return dup ? { id, duplicate: true } : { id };
    } catch (err) {
      const msg = (err as Error).message;
      // A timed-out command may still run when Redis wakes up: the publisher must not assume either way.
      if (/timed? ?out/i.test(msg)) throw new SbError('timeout', `the cluster bus did not answer in time: ${msg}`);
      throw new SbError('unavailable', `the cluster bus is unavailable: ${msg}`);
    }
  }

  /**
   * While the bus is down, publications still reach this node's subscribers (nothing is sent to Redis, so
   * nothing can arrive twice later). They are not in history; their ids come from a local generator kept
   * above every id seen from Redis, so recovery from them reports recovered: false, never a false true.
   */
  private publishLocal(input: PublishInput): PublishResult {
    this.metrics.localOnly.inc();
    const id = this.localIds.next(Math.max(Date.now(), this.lastRedisMs));
    const pub: Publication = { channel: input.channel, event: input.event, data: input.data, ts: input.ts, id, localOnly: true, volatile: input.volatile };
    for (const fn of this.listeners) fn(pub);
    return { id, localOnly: true };
  }

  async history(channel: string, since: string | undefined, limit: number, ttlMs: number): Promise<HistoryRead> {
    const key = this.key('h', channel);
    try {
      if (since === undefined) {
        const rows = (await this.pub.xrevrange(key, '+', '-', 'COUNT', limit)).reverse();
        return { found: true, entries: this.decodeRows(channel, rows, ttlMs) };
      }
      if (!parseId(since)) return { found: false, entries: [] };
      // The fence: history comes back on the command connection, live publications on the subscriber one,
      // and nothing orders two TCP connections. A publication in this read may still be on its way as a live
      // message. Redis delivers pub/sub messages to one connection in execution order, so once the fence
      // published after the read has arrived, every publication the read saw has arrived live too, and the
      // caller's de-duplication by id catches it instead of sending it twice.
      const token = `f${++this.fenceCounter}`;
      const fenced = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.fences.delete(token);
          reject(new Error('the subscriber connection did not confirm the read in time'));
        }, this.opts.canaryTimeoutMs);
        this.fences.set(token, () => {
          clearTimeout(timer);
          this.fences.delete(token);
          resolve();
        });
      });
      fenced.catch(() => {});
      const [at, after] = (await this.pub.pipeline().xrange(key, since, since).xrange(key, `(${since}`, '+', 'COUNT', limit).publish(this.fenceChannel, token).exec()) ?? [];
      if (at?.[0] || after?.[0]) throw at?.[0] ?? after?.[0];
      await fenced;
      const found = (at?.[1] as unknown[]).length === 1;
      return { found, entries: this.decodeRows(channel, after?.[1] as [string, string[]][], ttlMs) };
    } catch (err) {
      if (err instanceof SbError) throw err;
      throw new SbError('unavailable', `history is unavailable: ${(err as Error).message}`);
    }
  }

  private decodeRows(channel: string, rows: [string, string[]][], ttlMs: number): Publication[] {
    const minTs = Date.now() - ttlMs;
    const out: Publication[] = [];
    for (const [id, fields] of rows) {
      const raw = fields[1] ?? 'null';
      const p = JSON.parse(raw) as WirePayload | null;
      if (p && p.t >= minTs) out.push({ channel, event: p.e, data: decodeParsed(p.d, raw), ts: p.t, id });
    }
    return out;
  }

  private receive(msg: string) {
    const s1 = msg.indexOf(' ');
    const s2 = msg.indexOf(' ', s1 + 1);
    const seq = Number(msg.slice(0, s1));
    const id = msg.slice(s1 + 1, s2);
    let p: WirePayload;
    try {
      p = JSON.parse(msg.slice(s2 + 1)) as WirePayload;
    } catch {
      this.metrics.badInput.inc({ kind: 'bus_message' });
      return;
    }
    this.trackSeq(seq);
    const ms = Number(id.slice(0, id.indexOf('-')));
    if (ms > this.lastRedisMs) this.lastRedisMs = ms;
    // The watermark drops the sequence part: ids of other streams with the same millisecond may be lower.
    this.lastId = `${ms}-0`;
    this.metrics.busLatency.observe(Math.max(0, Date.now() - p.t) / 1000);
    if (p.c === '') {
      if (p.o === this.opts.nodeId && this.canary && p.e === this.canary.token) this.canaryBack();
      return;
    }
    const pub: Publication = { channel: p.c, event: p.e, data: decodeParsed(p.d, msg), ts: p.t, id, ...(p.v ? { volatile: true } : {}) };
    for (const fn of this.listeners) fn(pub);
  }

  private trackSeq(seq: number) {
    const last = this.lastSeq;
    this.lastSeq = seq;
    if (last === undefined || seq === last + 1) return;
    if (seq > last + 1) {
      this.metrics.busGaps.inc(seq - last - 1);
      this.log.warn({ missed: seq - last - 1 }, 'bus gap: publications missed; catching up from history');
      this.emitResync('gap', 'sequence gap');
    } else {
      this.log.warn({ seq, last }, 'bus sequence restarted (Redis lost its data); history may be lost');
      this.emitResync('reset', 'sequence restarted');
    }
  }

  private emitResync(kind: 'gap' | 'reset', reason: string) {
    this.log.info({ kind, reason }, 'bus resync');
    for (const fn of this.resyncListeners) fn(kind);
  }

  watermark() {
    return this.lastId;
  }

  private tickCanary() {
    const now = Date.now();
    if (this.pub.status === 'ready') this.heartbeat();
    if (this.canary && now - this.canary.sentAt > this.opts.canaryTimeoutMs) {
      this.metrics.canaryFailures.inc();
      this.log.warn({ afterMs: now - this.canary.sentAt }, 'bus canary not received back in time');
      this.canary = undefined;
      this.verified = false;
      this.evaluate('bus canary failed');
    }
    if (this.canary) return; // one in flight at a time
    const token = `canary-${++this.canaryCounter}`;
    this.canary = { token, sentAt: now };
    const payload: WirePayload = { c: '', e: token, d: null, t: now, o: this.opts.nodeId };
    this.pub
      .sbPublish(this.key('canary', this.opts.nodeId), this.key('seq', 'bus'), this.key('canary', this.opts.nodeId), this.channel, JSON.stringify(payload), '0', String(this.opts.canaryTimeoutMs * 10), '')
      .catch((err: Error) => this.log.debug({ err: { message: err.message } }, 'canary publish failed'));
  }

  private canaryBack() {
    const rtt = Date.now() - this.canary!.sentAt;
    this.canary = undefined;
    this.metrics.canaryRtt.observe(rtt / 1000);
    if (!this.verified) this.log.info({ rttMs: rtt }, 'bus verified');
    this.verified = true;
    this.evaluate();
  }

  private evaluate(failure?: string) {
    let next: BusHealth;
    if (this.pub.status !== 'ready') next = { ready: false, reason: 'redis publisher not connected' };
    else if (this.sub.status !== 'ready') next = { ready: false, reason: 'redis subscriber not connected' };
    else if (failure) next = { ready: false, reason: failure };
    else if (!this.verified) next = { ready: false, reason: 'bus not verified yet (canary pending)' };
    else next = { ready: true };
    const changed = next.ready !== this.current.ready || next.reason !== this.current.reason;
    this.current = next;
    this.metrics.busReady.set(next.ready ? 1 : 0);
    if (changed) for (const fn of this.healthListeners) fn(next);
  }

  onPublication(fn: (p: Publication) => void) {
    this.listeners.push(fn);
  }
  onResync(fn: (kind: 'gap' | 'reset') => void) {
    this.resyncListeners.push(fn);
  }
  onHealth(fn: (h: BusHealth) => void) {
    this.healthListeners.push(fn);
  }
  health() {
    return this.current;
  }

  adapter() {
    // The standard Socket.IO Redis adapter on the same two connections: cluster-wide rooms, fetchSockets,
    // and messages from @socket.io/redis-emitter (key prefix `socket.io`).
    return createAdapter(this.pub, this.sub, { key: 'socket.io', requestsTimeout: this.opts.requestTimeoutMs });
  }

  setSelf(fn: () => NodeInfo) {
    this.self = fn;
  }

  async nodes(): Promise<NodeInfo[]> {
    const key = this.key('nodes', 'all');
    const now = Date.now();
    const self = this.self();
    try {
      await this.pub.hset(key, self.id, JSON.stringify({ c: self.connections, t: now }));
      const all = await this.pub.hgetall(key);
      const out: NodeInfo[] = [];
      const stale: string[] = [];
      for (const [id, raw] of Object.entries(all)) {
        const v = JSON.parse(raw) as { c: number; t: number };
        if (now - v.t > this.opts.canaryIntervalMs * 5 + 5000) stale.push(id);
        else out.push({ id, connections: v.c });
      }
      if (stale.length) await this.pub.hdel(key, ...stale);
      return out;
    } catch (err) {
      throw new SbError('unavailable', `cluster state is unavailable: ${(err as Error).message}`);
    }
  }

  /** On the canary timer: this node's connection count, so /api/stats on any node sees every live node. */
  private heartbeat() {
    const self = this.self();
    this.pub.hset(this.key('nodes', 'all'), self.id, JSON.stringify({ c: self.connections, t: Date.now() })).catch(() => {});
  }

  async close() {
    this.closing = true;
    clearInterval(this.canaryTimer);
    await this.pub.hdel(this.key('nodes', 'all'), this.opts.nodeId).catch(() => {});
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
