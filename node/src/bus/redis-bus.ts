// Cluster bus over Redis — one Redis (URL, Sentinel) or a Redis Cluster, one code path: each channel has its
// own sharded pub/sub channel, a node subscribes to it only while it has local subscribers of the channel
// (interest-based routing), and every publish is one atomic script on the shard that owns the channel's slot.
import { createAdapter } from '@socket.io/redis-adapter';
import type { Cluster, Redis } from 'ioredis';
import type {
  Bus,
  BusHealth,
  ChannelPosition,
  HistoryRead,
  NodeInfo,
  Publication,
  PublishInput,
  PublishResult,
  ResyncKind,
} from './bus.js';
import { BusPublication } from './bus.js';
import { IdGenerator, ownCopy, parseId } from '../core/ids.js';
import { decodeParsed, stringifyData } from '../core/codec.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RedisConnectOptions } from './redis-connect.js';
import { createTopology, type RedisTopology } from './redis-topology.js';
import { channelSlot, slotTag } from './slots.js';
import { SbError } from '../core/errors.js';
import { CommandDeadlines, Script } from './script-command.js';

export interface RedisBusOptions {
  /** Which Redis and how to reach it (one URL, Sentinel, or a Redis Cluster). */
  redis: RedisConnectOptions;
  prefix: string;
  nodeId: string;
  /** How often each shard's canary goes round (and the cluster slot map is re-read). */
  canaryIntervalMs: number;
  /** A canary (or a fenced read) not back within this fails: the shard is marked failed. */
  canaryTimeoutMs: number;
  requestTimeoutMs: number;
  /** A channel stays subscribed this long after its last local subscriber left. @default 2000 */
  unsubscribeLingerMs: number;
  /** How often the position of every quiet channel received is compared with Redis. @default 30000 */
  positionCheckMs: number;
  /** A channel's sequence and epoch are kept this long after its last publication. @default 86400 */
  channelStateTtlSeconds: number;
}

// Why one script: XADD assigns the id and SPUBLISH fans out. Run separately, two nodes publishing to one channel
// could XADD in one order and publish in the other, and subscribers would see ids out of order. Inside a script
// Redis runs them with nothing in between, and pub/sub keeps order on each connection.
// Each channel has a meta hash: `e` epoch, `s` sequence, `i` last id. The sequence lets a receiver see a gap on
// that channel alone; the epoch is new whenever the hash is missing (Redis lost the data, or the channel was
// idle past its state TTL), so a sequence that starts over can't pass for continuity. The id of each sequence
// number is carried too: after a failover that lost acknowledged writes, the same sequence number comes back
// with another id, and receivers compare.
// Ids are XADD's own (<ms>-<n>), kept above the channel's last id `i` when the clock steps back or several
// publications share a millisecond; a channel without history makes them here and costs no stream at all.
// Were the meta hash lost while the stream lived on with a higher id, the stream picks the id (the new epoch tells
// receivers not to compare across). Every Redis call in a script costs about a microsecond of Lua on top of the
// command, so the TTLs are refreshed only every tenth of the shorter one (`x`: when next), each set a tenth longer:
// a key still lives at least its TTL after the last publication.
// The optional idempotency key is checked and set in the same step (see PublishInput.once).
// All keys and the shard channel carry one hash tag (see slots.ts): one slot, so one shard, runs it all.
// KEYS[1] stream, KEYS[2] meta, KEYS[3] idempotency key (or the stream), KEYS[4] shard channel.
// ARGV: payload, maxlen ('0': keep none), stream ttl ms, idempotency ttl s ('': no key), meta ttl ms.
export const PUBLISH_LUA = `
if ARGV[4] ~= '' then
  local prev = redis.call('GET', KEYS[3])
  if prev then return {prev, 1} end
end
local m = redis.call('HMGET', KEYS[2], 'e', 's', 'i', 'x')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = m[1]
if not epoch then epoch = string.format('%d%06d', t[1], t[2]) end
local seq = (tonumber(m[2]) or 0) + 1
local id = nil
if m[3] then
  local dash = string.find(m[3], '-', 1, true)
  local lms = dash and tonumber(string.sub(m[3], 1, dash - 1))
  if lms and lms >= now then id = string.format('%d', lms) .. '-' .. (tonumber(string.sub(m[3], dash + 1)) + 1) end
end
local hist = ARGV[2] ~= '0'
if hist then
  if id then
    local r = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], id, 'p', ARGV[1])
    if type(r) == 'table' and r.err then id = nil end
  end
  if not id then id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'p', ARGV[1]) end
elseif not id then
  id = string.format('%d', now) .. '-0'
end
local due = tonumber(m[4])
if m[1] and due and now < due then
  redis.call('HSET', KEYS[2], 's', seq, 'i', id)
else
  local metaTtl = tonumber(ARGV[5])
  local every = math.floor(math.min(metaTtl, tonumber(ARGV[3])) / 10)
  redis.call('HSET', KEYS[2], 'e', epoch, 's', seq, 'i', id, 'x', string.format('%d', now + every))
  redis.call('PEXPIRE', KEYS[2], metaTtl + every)
  if hist then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + every) end
end
redis.call('SPUBLISH', KEYS[4], seq .. ' ' .. epoch .. ' ' .. id .. ' ' .. ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], id, 'EX', ARGV[4]) end
return {id, 0}
`;

/** Channels whose keys a node keeps for publishing without receiving them (an estimate, not measured: under 2 MB with 200-character names). */
const PUBLISH_KEYS_KEPT = 2000;

interface WirePayload {
  c: string; // channel ('' for a canary)
  e: string; // event
  t: number; // publish time, ms
  o: string; // origin node
  v?: 1; // volatile
  d: unknown; // data, in the codec's JSON-safe form: last, so a reader can cut it out as text
}

/**
 * The one place a payload is serialized for the bus: the bytes JSON.stringify gives a WirePayload, same key order,
 * with the data (in the codec's JSON form) and the node id passed in as JSON already, so nothing is built or
 * serialized twice on the way. The data comes last: a receiver cuts it out as text (readWire) and hands it to its
 * subscribers as it is, never parsing it; a reader that parses the whole payload (an older node) reads it the same.
 */
export function toWire(channel: string, event: string, dataJson: string, ts: number, nodeIdJson: string, volatile?: boolean): string {
  return `{"c":${JSON.stringify(channel)},"e":${JSON.stringify(event)},"t":${JSON.stringify(ts)},"o":${nodeIdJson}${volatile ? ',"v":1' : ''},"d":${dataJson}}`;
}

/** A payload from the bus: its header read, its data still the JSON text it came as. */
interface WireRead {
  e: string;
  t: number;
  v: boolean;
  dataJson: string;
  /** The data, when reading it took a parse anyway (a payload in another key order). */
  data?: unknown;
}

/** The one place a payload from the bus (live or history) is read; undefined when it is not ours. */
export function fromWire(raw: string): WireRead | undefined {
  return readWire(raw) ?? parseWire(raw);
}

/**
 * toWire's own layout, read without parsing the data: the header's strings are scanned (escapes and all), the data is
 * what lies between `"d":` and the closing brace. Undefined for anything else, which parseWire then reads.
 */
function readWire(raw: string): WireRead | undefined {
  if (!raw.startsWith('{"c":"')) return undefined;
  const cEnd = stringEnd(raw, 5);
  if (cEnd < 0 || !raw.startsWith(',"e":"', cEnd)) return undefined;
  const eEnd = stringEnd(raw, cEnd + 5);
  if (eEnd < 0 || !raw.startsWith(',"t":', eEnd)) return undefined;
  const tEnd = raw.indexOf(',', eEnd + 5);
  if (tEnd <= eEnd + 5 || !raw.startsWith(',"o":"', tEnd)) return undefined;
  const t = Number(raw.slice(eEnd + 5, tEnd));
  let at = stringEnd(raw, tEnd + 5);
  if (at < 0 || !Number.isFinite(t)) return undefined;
  const v = raw.startsWith(',"v":1', at);
  if (v) at += 6;
  if (!raw.startsWith(',"d":', at) || raw.length < at + 7 || raw.charCodeAt(raw.length - 1) !== 125 /* } */) return undefined;
  return { e: jsonString(raw, cEnd + 5, eEnd), t, v, dataJson: raw.slice(at + 5, raw.length - 1) };
}

/** The index just past the JSON string whose opening quote is at `quote`; -1 when it does not end. */
function stringEnd(s: string, quote: number): number {
  for (let from = quote + 1; ;) {
    const q = s.indexOf('"', from);
    if (q < 0) return -1;
    // A quote after an odd number of backslashes is escaped.
    let b = q - 1;
    while (b > quote && s.charCodeAt(b) === 92 /* \ */) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    from = q + 1;
  }
}

/** The value of the JSON string s[start, end) (quotes included): a slice unless it holds escapes. */
function jsonString(s: string, start: number, end: number): string {
  const body = s.slice(start + 1, end - 1);
  return body.includes('\\') ? (JSON.parse(s.slice(start, end)) as string) : body;
}

/** A payload in any other key order (as nodes before 2026-12 wrote them): parsed whole, checked field by field. */
function parseWire(raw: string): WireRead | undefined {
  try {
    const p = JSON.parse(raw) as WirePayload | null;
    if (!p || typeof p !== 'object' || typeof p.e !== 'string' || typeof p.t !== 'number') return undefined;
    const d = p.d === undefined ? null : p.d;
    return { e: p.e, t: p.t, v: p.v === 1, dataJson: JSON.stringify(d), data: decodeParsed(d, raw) };
  } catch {
    return undefined;
  }
}

/** What this node last received of a channel (a Chan's own, updated in place), or a position read off Redis. */
interface Seen {
  epoch: string;
  seq: number;
  id: string;
}

const RECENT = 32;

/**
 * The last RECENT (sequence, id) pairs a channel received, to check a position read against: a ring of numbers
 * (sequence, id's milliseconds, id's counter), so receiving a publication keeps no object or string of its own and
 * moves nothing (an array of pairs kept a string per publication and shifted on every one).
 */
class Recent {
  private readonly ring = new Float64Array(3 * RECENT);
  private size = 0;
  private next = 0;

  clear() {
    this.size = 0;
    this.next = 0;
  }

  add(seq: number, id: string) {
    const dash = id.indexOf('-');
    const j = 3 * this.next;
    this.ring[j] = seq;
    this.ring[j + 1] = Number(id.slice(0, dash));
    this.ring[j + 2] = Number(id.slice(dash + 1));
    this.next = (this.next + 1) % RECENT;
    if (this.size < RECENT) this.size++;
  }

  /** False when `seq` was received here with another id than `id` (the sequence was reused); true otherwise. */
  agrees(seq: number, id: string): boolean {
    for (let k = 0; k < this.size; k++) {
      if (this.ring[3 * k] !== seq) continue;
      const p = parseId(id);
      return p !== undefined && this.ring[3 * k + 1] === p[0] && this.ring[3 * k + 2] === p[1];
    }
    return true;
  }
}

/** Where a channel lives in Redis: its slot, its history stream and meta hash, and its shard channel. */
interface ChannelKeys {
  slot: number;
  stream: string;
  meta: string;
  shardChannel: string;
}

interface Chan extends ChannelKeys {
  name: string;
  /** The shard whose subscriber connection carries it ('' while none). */
  master: string;
  seen?: Seen;
  /** Made with the channel's first publication received. */
  recent?: Recent;
  /** Subscribed while its shard could not be reached: the first position read catches it up. */
  deferred: boolean;
  /** When the last publication of it arrived (ms). */
  lastRx: number;
  linger?: NodeJS.Timeout;
  ready?: Promise<ChannelPosition>;
}

interface Shard {
  master: string;
  /** A slot the master serves; its tag places this node's fence channel and canary keys on this shard. */
  slot: number;
  fence: string;
  sub: Redis;
  channels: Set<Chan>;
  verified: boolean;
  failure?: string;
  canary?: { token: string; sentAt: number };
  closed: boolean;
  /** Its channels' positions must be checked (after a resubscribe) and the check has not succeeded yet. */
  needsCheck: boolean;
  checking?: boolean;
}

const FENCE = 'f';

export class RedisBus implements Bus {
  readonly mode = 'redis' as const;
  private readonly topo: RedisTopology;
  /** The publish script, as every publication and canary sends it (script-command.ts), and its commands' timeouts. */
  private readonly publishScript: Script;
  private readonly deadlines: CommandDeadlines;
  /** NODE_ID as JSON, written into every publication's payload. */
  private readonly nodeIdJson: string;
  private readonly shards = new Map<string, Shard>();
  private readonly chans = new Map<string, Chan>();
  /** Keys of channels this node publishes to without receiving them (a publishers' node); emptied when full. */
  private readonly publishKeys = new Map<string, ChannelKeys>();
  private readonly byShardChannel = new Map<string, Chan>();
  private readonly listeners: ((p: Publication) => void)[] = [];
  private readonly resyncListeners: ((channel: string, kind: ResyncKind) => void)[] = [];
  private readonly healthListeners: ((h: BusHealth) => void)[] = [];
  private readonly fences = new Map<string, () => void>();
  private counter = 0;
  private current: BusHealth = { ready: false, reason: 'redis not connected yet' };
  private closing = false;
  private canaryTimer: NodeJS.Timeout | undefined;
  private positionTimer: NodeJS.Timeout | undefined;
  private readonly localIds = new IdGenerator();
  private lastRedisMs = 0;
  private adapterSub: Redis | Cluster | undefined;
  private self: () => NodeInfo = () => ({ id: this.opts.nodeId, connections: 0 });
  private readonly log: Logger;

  constructor(
    private readonly opts: RedisBusOptions,
    log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.log = log.child({ module: 'bus' });
    this.nodeIdJson = JSON.stringify(opts.nodeId);
    // Commands fail fast while Redis is away (publish answers `unavailable`), instead of queueing in memory.
    this.topo = createTopology(opts.redis, { commandTimeoutMs: opts.canaryTimeoutMs, slotsRefreshMs: opts.canaryIntervalMs });
    // Checked four times per timeout: a publish Redis does not answer fails at most a quarter of it late.
    this.deadlines = new CommandDeadlines(Math.max(10, Math.floor(opts.canaryTimeoutMs / 4)));
    this.publishScript = new Script(PUBLISH_LUA, this.deadlines);
    const cmd = this.topo.commands as Redis;
    cmd.on('error', (err: Error) =>
      this.log.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, role: 'publisher' }, 'redis error'),
    );
    cmd.on('ready', () => {
      this.metrics.redisUp.set({ role: 'publisher' }, 1);
      this.log.info({ role: 'publisher', clustered: this.topo.clustered }, 'redis connected');
      this.syncTopology();
      this.evaluate();
    });
    cmd.on('close', () => {
      this.metrics.redisUp.set({ role: 'publisher' }, 0);
      if (!this.closing) this.log.warn({ role: 'publisher' }, 'redis connection lost; reconnecting');
      this.evaluate();
    });
    this.topo.onRefresh(() => this.syncTopology());
  }

  async start() {
    // The first connection may fail while Redis starts; ioredis keeps retrying, and readiness waits for it.
    await this.topo.connect().catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'redis not reachable yet; retrying'));
    this.syncTopology();
    this.canaryTimer = setInterval(() => this.tickCanaries(), this.opts.canaryIntervalMs);
    this.positionTimer = setInterval(() => this.checkAllPositions(), this.opts.positionCheckMs);
    this.tickCanaries();
    // Readiness needs one canary round trip on some shard: proof that publish → Redis → subscriber works.
    await new Promise<void>((resolve) => {
      if (this.current.ready) return resolve();
      this.healthListeners.push((h) => h.ready && resolve());
    });
  }

  private publishKeysOf(channel: string): ChannelKeys {
    let k = this.publishKeys.get(channel);
    if (!k) {
      if (this.publishKeys.size >= PUBLISH_KEYS_KEPT) this.publishKeys.clear();
      this.publishKeys.set(channel, (k = this.keysOf(channel)));
    }
    return k;
  }

  private keysOf(channel: string): ChannelKeys {
    const slot = channelSlot(channel);
    const tag = `{${slotTag(slot)}}`;
    return {
      slot,
      stream: `${this.opts.prefix}:${tag}:h:${channel}`,
      meta: `${this.opts.prefix}:${tag}:m:${channel}`,
      shardChannel: `${this.opts.prefix}:${tag}:c:${channel}`,
    };
  }

  // ---- shards: one subscriber connection per master, a fence channel and a canary on each ----

  /** Compares the slot map with where channels are subscribed; moves what changed master. Never waits for traffic. */
  private syncTopology() {
    if (this.closing) return;
    const masters = this.topo.masters();
    let changed = false;
    for (const [master, slot] of masters) {
      const sh = this.shards.get(master);
      if (!sh) this.addShard(master, slot);
      else if (this.topo.ownerOf(sh.slot) !== master) this.refence(sh, slot);
    }
    for (const sh of [...this.shards.values()]) {
      if (masters.has(sh.master) || masters.size === 0) continue;
      this.log.warn({ master: sh.master }, 'a Redis master left the slot map; its channels move to the new owners');
      this.removeShard(sh);
      changed = true;
    }
    for (const c of this.chans.values()) {
      const owner = this.topo.ownerOf(c.slot);
      if (owner && owner !== c.master) {
        changed ||= c.master !== '';
        this.place(c, owner);
      }
    }
    if (changed) {
      this.metrics.failovers.inc();
      this.log.warn('redis topology changed: channels resubscribed on their new shards and checked for gaps');
    }
    this.evaluate();
  }

  private fenceOf(slot: number) {
    return `${this.opts.prefix}:{${slotTag(slot)}}:f:${this.opts.nodeId}`;
  }

  private addShard(master: string, slot: number) {
    const sub = this.topo.subscriber(master, { role: 'subscriber', failFast: false });
    // Resubscribing is ours (shardReady), so a reconnect also checks each channel's position for gaps.
    (sub.options as { autoResubscribe: boolean }).autoResubscribe = false;
    const sh: Shard = {
      master,
      slot,
      fence: this.fenceOf(slot),
      sub,
      channels: new Set(),
      verified: false,
      closed: false,
      needsCheck: false,
    };
    this.shards.set(master, sh);
    sub.on('smessage', (chan: string, msg: string) => this.onMessage(sh, chan, msg));
    sub.on('ready', () => {
      this.metrics.redisUp.set({ role: 'subscriber' }, 1);
      this.shardReady(sh);
    });
    sub.on('moved', () => this.topo.refresh());
    sub.on('close', () => {
      if (!this.closing && !sh.closed) this.log.warn({ master }, 'redis subscriber connection lost; reconnecting');
      sh.verified = false;
      this.evaluate();
    });
    sub.on('error', (err: Error) => {
      // ioredis 5 takes a server-pushed `sunsubscribe` (failover, slot migration) for the reply to a command it
      // never sent, and reports this error: the shard dropped our subscriptions. Rebuild them from scratch.
      if (/Command queue state error/.test(err.message)) this.rebuild(sh, 'the server dropped our shard subscriptions');
      else this.log.debug({ err: { message: err.message }, master }, 'redis subscriber error');
    });
    this.updateSubscriptionGauge();
  }

  private removeShard(sh: Shard) {
    sh.closed = true;
    this.shards.delete(sh.master);
    for (const c of sh.channels) c.master = '';
    sh.sub.disconnect();
    this.updateSubscriptionGauge();
  }

  private refence(sh: Shard, slot: number) {
    const old = sh.fence;
    sh.slot = slot;
    sh.fence = this.fenceOf(slot);
    if (sh.sub.status === 'ready') {
      sh.sub.sunsubscribe(old).catch(() => {});
      void this.ssubscribe(sh, sh.fence);
    }
  }

  private rebuild(sh: Shard, why: string) {
    if (sh.closed || this.closing) return;
    this.log.warn({ master: sh.master, why }, 'rebuilding a shard subscriber connection');
    this.metrics.failovers.inc();
    sh.verified = false;
    this.topo.refresh();
    sh.sub.disconnect(true);
  }

  /** SSUBSCRIBE with a deadline: ioredis 5 never settles an SSUBSCRIBE answered with MOVED (it emits `moved`). */
  private ssubscribe(sh: Shard, channel: string): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      sh.sub.ssubscribe(channel).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.opts.canaryTimeoutMs))),
    ])
      .catch(() => false)
      .finally(() => clearTimeout(timer));
  }

  /** A shard's subscriber connected (first time or again): subscribe everything it carries, then look for gaps. */
  private async shardReady(sh: Shard) {
    sh.needsCheck = true;
    const chans = [...sh.channels];
    const ok = await Promise.all([this.ssubscribe(sh, sh.fence), ...chans.map((c) => this.ssubscribe(sh, c.shardChannel))]);
    this.updateSubscriptionGauge();
    if (ok.some((x) => !x)) this.topo.refresh();
    this.tickCanary(sh, Date.now());
    await this.recheck(sh);
  }

  /**
   * Checks every channel of the shard after a resubscribe. Until it succeeds (the command connection may come back
   * after the subscriber one) it is retried on every canary tick: a reconnect must never skip the gap check.
   */
  private async recheck(sh: Shard) {
    if (!sh.needsCheck || sh.checking) return;
    sh.checking = true;
    try {
      const chans = [...sh.channels];
      let ok = true;
      for (let i = 0; i < chans.length && ok; i += 500) ok = await this.checkPositions(sh, chans.slice(i, i + 500), 'resubscribe');
      if (ok) sh.needsCheck = false;
    } finally {
      sh.checking = false;
    }
  }

  /** Puts a channel on the subscriber connection of `master`, leaving the one it was on. */
  private place(c: Chan, master: string) {
    const from = this.shards.get(c.master);
    if (from) {
      from.channels.delete(c);
      if (from.sub.status === 'ready') from.sub.sunsubscribe(c.shardChannel).catch(() => {});
    }
    const to = this.shards.get(master);
    c.master = to ? master : '';
    if (!to) return;
    to.channels.add(c);
    if (to.sub.status !== 'ready') return; // shardReady subscribes and checks it
    void this.ssubscribe(to, c.shardChannel).then(async (ok) => {
      this.updateSubscriptionGauge();
      if (ok && (await this.checkPositions(to, [c], 'resubscribe'))) return;
      to.needsCheck = true;
      this.topo.refresh();
    });
  }

  private updateSubscriptionGauge() {
    let n = 0;
    for (const sh of this.shards.values()) n += sh.channels.size + 1;
    this.metrics.shardSubscriptions.set(n);
  }

  // ---- interest ----

  subscribe(channel: string): Promise<ChannelPosition> {
    const existing = this.chans.get(channel);
    if (existing) {
      clearTimeout(existing.linger);
      existing.linger = undefined;
      return existing.ready ?? Promise.resolve(this.positionOf(existing));
    }
    const c: Chan = {
      name: channel,
      ...this.keysOf(channel),
      master: '',
      deferred: false,
      lastRx: 0,
    };
    this.chans.set(channel, c);
    this.byShardChannel.set(c.shardChannel, c);
    c.ready = this.attach(c).finally(() => (c.ready = undefined));
    return c.ready;
  }

  private positionOf(c: Chan): ChannelPosition {
    if (!c.seen) return { id: `${Math.max(Date.now(), this.lastRedisMs)}-0`, exact: false };
    return { id: c.seen.id, exact: c.seen.id !== '0-0' };
  }

  private async attach(c: Chan): Promise<ChannelPosition> {
    const master = this.topo.ownerOf(c.slot);
    const sh = this.shards.get(master);
    if (!sh || sh.sub.status !== 'ready') {
      // Redis (or this shard) is away: the subscriber still joins, and when the shard is back its position read
      // catches the channel up from the time of this subscribe.
      c.deferred = true;
      if (sh) this.place(c, master);
      return this.positionOf(c);
    }
    c.master = master;
    sh.channels.add(c);
    const subscribed = await this.ssubscribe(sh, c.shardChannel);
    this.updateSubscriptionGauge();
    if (!subscribed || !(await this.checkPositions(sh, [c], 'subscribe'))) {
      c.deferred = true;
      sh.needsCheck = true;
      this.topo.refresh();
    }
    return this.positionOf(c);
  }

  unsubscribe(channel: string) {
    const c = this.chans.get(channel);
    if (!c || c.linger) return;
    c.linger = setTimeout(() => this.detach(c), this.opts.unsubscribeLingerMs);
    c.linger.unref();
  }

  private detach(c: Chan) {
    this.chans.delete(c.name);
    this.byShardChannel.delete(c.shardChannel);
    const sh = this.shards.get(c.master);
    if (sh) {
      sh.channels.delete(c);
      if (sh.sub.status === 'ready') sh.sub.sunsubscribe(c.shardChannel).catch(() => {});
    }
    this.updateSubscriptionGauge();
  }

  // ---- receiving, gap detection ----

  private onMessage(sh: Shard, chan: string, msg: string) {
    if (chan === sh.fence) return this.onFenceChannel(sh, msg);
    const c = this.byShardChannel.get(chan);
    if (!c) return;
    const m = this.parseMessage(msg);
    if (!m) return;
    const p = fromWire(m.payload);
    if (!p) {
      this.metrics.badInput.inc({ kind: 'bus_message' });
      return;
    }
    this.metrics.busReceivedCell.n++;
    c.lastRx = Date.now();
    if (!this.track(c, m.seq, m.epoch, m.id)) return;
    this.metrics.busLatency.observe(Math.max(0, Date.now() - p.t) / 1000);
    const pub = new BusPublication(c.name, p.e, p.dataJson, p.t, m.id, p.v || undefined, p.data);
    for (const fn of this.listeners) fn(pub);
  }

  private parseMessage(msg: string) {
    const s1 = msg.indexOf(' ');
    const s2 = msg.indexOf(' ', s1 + 1);
    const s3 = msg.indexOf(' ', s2 + 1);
    if (s1 < 0 || s2 < 0 || s3 < 0) return undefined;
    // The id is kept well after the message (see ownCopy); the epoch is copied only when it is new (track()).
    const id = ownCopy(msg.slice(s2 + 1, s3));
    const ms = Number(id.slice(0, id.indexOf('-')));
    if (ms > this.lastRedisMs) this.lastRedisMs = ms;
    return { seq: Number(msg.slice(0, s1)), epoch: msg.slice(s1 + 1, s2), id, payload: msg.slice(s3 + 1) };
  }

  /** Checks one received publication against what came before; false: drop it (already handed on). */
  private track(c: Chan, seq: number, epoch: string, id: string): boolean {
    const s = c.seen;
    // An empty epoch: the channel had no state when this node read it, so the first epoch is no change.
    if (s && s.epoch !== '' && epoch !== s.epoch) this.resync(c, 'reset', 'epoch changed');
    else if (s && seq > s.seq + 1) this.resync(c, 'gap', 'message', seq - s.seq - 1);
    else if (s && seq <= s.seq) {
      if (seq === s.seq && id === s.id) return false;
      // The same sequence number again with another id: the shard lost acknowledged writes (failover).
      this.resync(c, 'reset', 'sequence reused');
    }
    this.see(c, s?.epoch === epoch ? s.epoch : ownCopy(epoch), seq, id);
    return true;
  }

  private see(c: Chan, epoch: string, seq: number, id: string) {
    const seen = c.seen;
    if (!seen) c.seen = { epoch, seq, id };
    else {
      // Sequences restart with an epoch: the old epoch's pairs would read as a sequence reused.
      if (seen.epoch !== epoch) c.recent?.clear();
      seen.epoch = epoch;
      seen.seq = seq;
      seen.id = id;
    }
    (c.recent ??= new Recent()).add(seq, id);
  }

  private resync(c: Chan, kind: ResyncKind, why: string, missed = 0) {
    if (kind === 'gap') {
      this.metrics.channelGaps.inc({ detected_by: why });
      if (missed > 0) this.metrics.busGaps.inc(missed);
    } else this.metrics.epochResets.inc({ reason: why.replace(/ /g, '_') });
    this.log.warn(
      { channel: c.name, kind, why, missed },
      kind === 'gap'
        ? 'bus gap on a channel: catching it up from history'
        : 'channel state lost or diverged on Redis: subscribers are told',
    );
    for (const fn of this.resyncListeners) fn(c.name, kind);
  }

  /**
   * Reads the channel positions (meta hashes) on the shard, then waits for a fence published after the read to
   * come back on the subscriber connection: by then every publication the read counted has arrived too, so a
   * sequence still ahead of what was received is a real gap. Returns false when the read could not be done.
   */
  private async checkPositions(sh: Shard, chans: Chan[], by: 'subscribe' | 'resubscribe' | 'position_check'): Promise<boolean> {
    const client = this.topo.nodeClient(sh.master);
    if (!client || client.status !== 'ready' || sh.sub.status !== 'ready') return false;
    // Copies: a channel's own Seen changes in place as publications arrive.
    const before = chans.map((c) => (c.seen ? { ...c.seen } : undefined));
    let rows: ([Error | null, unknown] | undefined)[];
    try {
      rows = await this.fenced(sh, client, (p) => {
        for (const c of chans) p.hmget(c.meta, 'e', 's', 'i');
      });
    } catch (err) {
      this.log.debug({ err: { message: (err as Error).message }, master: sh.master }, 'position read failed');
      return false;
    }
    let moved = false;
    chans.forEach((c, i) => {
      const [err, v] = rows[i] ?? [new Error('no reply'), null];
      if (err) return void (moved = true);
      if (!this.chans.has(c.name) || c.master !== sh.master) return;
      const [e, s, id] = v as [string | null, string | null, string | null];
      this.compare(c, { epoch: e ?? '', seq: s ? Number(s) : 0, id: id ?? '0-0' }, before[i], by);
    });
    if (moved) this.topo.refresh();
    return !moved;
  }

  /**
   * `at` is the channel's state in Redis when the read ran; `atRead` what this node had received by then. Publications
   * published after the read may arrive before its fence, so `c.seen` can be newer than `at`: a read older than what
   * was received since shows nothing (an epoch that changed since was checked by track() as it arrived).
   */
  private compare(c: Chan, at: Seen, atRead: Seen | undefined, by: string) {
    const s = c.seen;
    const deferred = c.deferred;
    c.deferred = false;
    if (!s) {
      this.see(c, at.epoch, at.seq, at.id);
      if (deferred && at.seq > 0) this.resync(c, 'gap', by);
      return;
    }
    if (at.epoch !== s.epoch && s.epoch !== '') {
      // E.g. the read found no state yet, and the channel's first publication arrived before the fence.
      if (s.epoch !== (atRead?.epoch ?? '')) return;
      this.resync(c, 'reset', at.epoch === '' ? 'state lost' : 'epoch changed');
      this.see(c, at.epoch, at.seq, at.id);
    } else if (at.seq > s.seq) {
      this.resync(c, 'gap', by);
      this.see(c, at.epoch, at.seq, at.id);
    } else if (atRead !== undefined && atRead.epoch === at.epoch && at.seq < atRead.seq) {
      // This node had received a sequence before sending the read that Redis no longer has: writes were lost.
      this.resync(c, 'reset', 'sequence rolled back');
      this.see(c, at.epoch, at.seq, at.id);
    } else {
      if (c.recent && !c.recent.agrees(at.seq, at.id)) {
        this.resync(c, 'reset', 'sequence reused');
        this.see(c, at.epoch, at.seq, at.id);
      }
    }
  }

  /** Runs `build` as one pipeline on the master itself, then a fence; resolves with the replies once it is back. */
  private async fenced(sh: Shard, client: Redis, build: (p: ReturnType<Redis['pipeline']>) => void) {
    const token = `${++this.counter}`;
    let timer: NodeJS.Timeout | undefined;
    const back = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => {
        this.fences.delete(token);
        reject(new Error('the subscriber connection did not confirm the read in time'));
      }, this.opts.canaryTimeoutMs);
      this.fences.set(token, () => {
        clearTimeout(timer);
        this.fences.delete(token);
        resolve();
      });
    });
    back.catch(() => {});
    const p = client.pipeline();
    build(p);
    p.spublish(sh.fence, FENCE + token);
    let rows: [Error | null, unknown][];
    try {
      rows = ((await p.exec()) ?? []) as [Error | null, unknown][];
    } catch (err) {
      clearTimeout(timer);
      this.fences.delete(token);
      throw err;
    }
    const fenceErr = rows[rows.length - 1]?.[0];
    if (fenceErr) {
      clearTimeout(timer);
      this.fences.delete(token);
      throw fenceErr;
    }
    await back;
    return rows.slice(0, -1);
  }

  private onFenceChannel(sh: Shard, msg: string) {
    if (msg.startsWith(FENCE)) return this.fences.get(msg.slice(1))?.();
    // A canary comes back through the publish script: "<seq> <epoch> <id> <payload>".
    const m = this.parseMessage(msg);
    const p = m && fromWire(m.payload);
    if (p && sh.canary && p.e === sh.canary.token) this.canaryBack(sh);
  }

  private checkAllPositions() {
    // A channel that received a publication during the last interval was checked by its sequence already; only the
    // quiet ones need Redis (a loss right before a channel goes quiet is found one interval later).
    const since = Date.now() - this.opts.positionCheckMs;
    for (const sh of this.shards.values()) {
      const chans = [...sh.channels].filter((c) => !c.linger && c.lastRx < since);
      // Batches keep one pipeline from holding the shard for long.
      for (let i = 0; i < chans.length; i += 500) void this.checkPositions(sh, chans.slice(i, i + 500), 'position_check');
    }
  }

  // ---- publishing, history ----

  async publish(input: PublishInput): Promise<PublishResult> {
    if (!this.current.ready) {
      // Exactly-once can't be promised by one node alone: the caller retries once the bus is back.
      if (input.once) throw new SbError('unavailable', `the cluster bus is unavailable (${this.current.reason}); retry`);
      return this.publishLocal(input);
    }
    // A channel's keys are built once, not three key strings per publication: a channel this node receives has them
    // already, and a node that only publishes to a channel keeps them in a small map.
    const k = this.chans.get(input.channel) ?? this.publishKeysOf(input.channel);
    const sh = this.shards.get(this.topo.ownerOf(k.slot));
    // One failed shard fails only its own channels, at once, until a replica has taken over.
    if (!sh?.verified)
      throw new SbError('unavailable', `the Redis shard of this channel is unavailable (${sh?.failure ?? 'failover in progress'}); retry`);
    const payload = toWire(
      input.channel,
      input.event,
      input.dataJson ?? stringifyData(input.data),
      input.ts,
      this.nodeIdJson,
      input.volatile,
    );
    try {
      // The script makes the id above the channel's last one (meta `i`), with or without a stream.
      const [id, dup] = (await this.publishScript.run(this.topo.commands, [
        4,
        k.stream,
        k.meta,
        input.once ? `${this.opts.prefix}:{${slotTag(k.slot)}}:once:${input.once.key}` : k.stream,
        k.shardChannel,
        payload,
        input.history.size,
        Math.max(input.history.ttlMs, 60_000),
        input.once ? input.once.ttlSeconds : '',
        Math.max(this.opts.channelStateTtlSeconds * 1000, input.history.ttlMs),
      ])) as [string, number];
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
    const pub: Publication = {
      channel: input.channel,
      event: input.event,
      data: input.data,
      ts: input.ts,
      id,
      localOnly: true,
      volatile: input.volatile,
      json: input.dataJson,
    };
    if (this.chans.has(input.channel)) for (const fn of this.listeners) fn(pub);
    return { id, localOnly: true };
  }

  async history(channel: string, since: string | undefined, limit: number, ttlMs: number): Promise<HistoryRead> {
    const k = this.keysOf(channel);
    try {
      if (since === undefined) {
        const rows = (await this.topo.commands.xrevrange(k.stream, '+', '-', 'COUNT', limit)).reverse();
        return { found: true, entries: this.decodeRows(channel, rows, ttlMs) };
      }
      if (!parseId(since)) return { found: false, entries: [] };
      // The fence: history comes back on the command connection, live publications on the subscriber one, and
      // nothing orders two TCP connections. A publication in this read may still be on its way as a live
      // message. Redis delivers pub/sub messages to one connection in execution order, so once the fence
      // published after the read has arrived, every publication the read saw has arrived live too, and the
      // caller's de-duplication by id catches it instead of sending it twice.
      const master = this.topo.ownerOf(k.slot);
      const sh = this.shards.get(master);
      const client = this.topo.nodeClient(master);
      if (!sh || !client || sh.sub.status !== 'ready') throw new Error('the shard of this channel is not connected');
      const [at, after] = await this.fenced(sh, client, (p) =>
        p.xrange(k.stream, since, since).xrange(k.stream, `(${since}`, '+', 'COUNT', limit),
      );
      if (at?.[0] || after?.[0]) {
        if (/MOVED/.test(String(at?.[0] ?? after?.[0]))) this.topo.refresh();
        throw at?.[0] ?? after?.[0];
      }
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
      const p = fromWire(fields[1] ?? 'null');
      if (p && p.t >= minTs) out.push(new BusPublication(channel, p.e, p.dataJson, p.t, id, undefined, p.data));
    }
    return out;
  }

  // ---- canaries, health ----

  private tickCanaries() {
    const now = Date.now();
    if (this.topo.commands.status === 'ready') this.heartbeat();
    for (const sh of this.shards.values()) {
      this.tickCanary(sh, now);
      if (sh.needsCheck && sh.sub.status === 'ready') void this.recheck(sh);
    }
    this.evaluate();
  }

  private tickCanary(sh: Shard, now: number) {
    if (sh.canary && now - sh.canary.sentAt > this.opts.canaryTimeoutMs) {
      this.metrics.canaryFailures.inc();
      this.log.warn({ master: sh.master, afterMs: now - sh.canary.sentAt }, 'shard canary not received back in time');
      sh.canary = undefined;
      sh.verified = false;
      sh.failure = 'shard canary failed';
      this.topo.refresh();
      // A connection that looks fine may have lost its subscriptions (a pushed unsubscribe): subscribing again is
      // harmless when they are still there, and the position check that follows finds whatever was missed.
      // (Not a reconnect: on a merely slow shard that would itself lose the publications in flight.)
      if (sh.sub.status === 'ready') void this.shardReady(sh);
    }
    if (sh.canary || sh.sub.status !== 'ready' || this.topo.commands.status !== 'ready') return;
    const token = `canary-${++this.counter}`;
    sh.canary = { token, sentAt: now };
    const tag = `{${slotTag(sh.slot)}}`;
    const key = `${this.opts.prefix}:${tag}:k:${this.opts.nodeId}`;
    const payload = toWire('', token, 'null', now, this.nodeIdJson);
    // Through the publications' own path (script, command, timeout), so a canary back means that path works.
    this.publishScript
      .run(this.topo.commands, [
        4,
        key,
        `${key}:m`,
        key,
        sh.fence,
        payload,
        0,
        this.opts.canaryTimeoutMs * 10,
        '',
        this.opts.canaryTimeoutMs * 10,
      ])
      .catch((err: Error) => this.log.debug({ err: { message: err.message }, master: sh.master }, 'canary publish failed'));
  }

  private canaryBack(sh: Shard) {
    const rtt = Date.now() - sh.canary!.sentAt;
    sh.canary = undefined;
    this.metrics.canaryRtt.observe(rtt / 1000);
    if (!sh.verified) this.log.info({ master: sh.master, rttMs: rtt }, 'shard verified');
    sh.verified = true;
    sh.failure = undefined;
    this.evaluate();
  }

  /**
   * Ready while the command connection is up and at least one shard is verified: one failed shard must not take
   * every node out of rotation (its channels answer `unavailable` until failover; the rest keep working).
   */
  private evaluate() {
    const shards = [...this.shards.values()];
    const good = shards.filter((s) => s.verified && s.sub.status === 'ready').length;
    this.metrics.shards.set({ state: 'ready' }, good);
    this.metrics.shards.set({ state: 'failed' }, shards.length - good);
    let next: BusHealth;
    if (this.topo.commands.status !== 'ready') next = { ready: false, reason: 'redis publisher not connected' };
    else if (shards.length === 0) next = { ready: false, reason: 'no redis shard known yet' };
    else if (good === 0)
      next = {
        ready: false,
        reason:
          shards.find((s) => s.failure)?.failure ??
          (shards.some((s) => s.sub.status !== 'ready') ? 'redis subscriber not connected' : 'bus not verified yet (canary pending)'),
      };
    else next = { ready: true };
    const changed = next.ready !== this.current.ready || next.reason !== this.current.reason;
    this.current = next;
    this.metrics.busReady.set(next.ready ? 1 : 0);
    if (changed) for (const fn of this.healthListeners) fn(next);
  }

  watermark() {
    // The millisecond only: another channel's publications of the same millisecond may have lower sequence parts.
    return `${this.lastRedisMs}-0`;
  }

  onPublication(fn: (p: Publication) => void) {
    this.listeners.push(fn);
  }
  onResync(fn: (channel: string, kind: ResyncKind) => void) {
    this.resyncListeners.push(fn);
  }
  onHealth(fn: (h: BusHealth) => void) {
    this.healthListeners.push(fn);
  }
  health() {
    return this.current;
  }

  adapter() {
    // The standard Socket.IO Redis adapter (classic pub/sub, key prefix `socket.io`): cluster-wide rooms,
    // fetchSockets, and messages from @socket.io/redis-emitter. Not the sharded adapter: the emitter only uses
    // classic PUBLISH, which a Redis Cluster broadcasts to every node, where SSUBSCRIBE would never see it.
    this.adapterSub ??= this.topo.adapterSubscriber();
    return createAdapter(this.topo.commands, this.adapterSub, { key: 'socket.io', requestsTimeout: this.opts.requestTimeoutMs });
  }

  setSelf(fn: () => NodeInfo) {
    this.self = fn;
  }

  async nodes(): Promise<NodeInfo[]> {
    // One hash, one key: cluster-safe, on whichever shard owns it.
    const key = `${this.opts.prefix}:nodes:all`;
    const now = Date.now();
    const self = this.self();
    try {
      await this.topo.commands.hset(key, self.id, JSON.stringify({ c: self.connections, t: now }));
      const all = await this.topo.commands.hgetall(key);
      const out: NodeInfo[] = [];
      const stale: string[] = [];
      for (const [id, raw] of Object.entries(all)) {
        const v = JSON.parse(raw) as { c: number; t: number };
        if (now - v.t > this.opts.canaryIntervalMs * 5 + 5000) stale.push(id);
        else out.push({ id, connections: v.c });
      }
      if (stale.length) await this.topo.commands.hdel(key, ...stale);
      return out;
    } catch (err) {
      throw new SbError('unavailable', `cluster state is unavailable: ${(err as Error).message}`);
    }
  }

  /** On the canary timer: this node's connection count, so /api/stats on any node sees every live node. */
  private heartbeat() {
    const self = this.self();
    this.topo.commands
      .hset(`${this.opts.prefix}:nodes:all`, self.id, JSON.stringify({ c: self.connections, t: Date.now() }))
      .catch(() => {});
  }

  async close() {
    this.closing = true;
    this.deadlines.close();
    clearInterval(this.canaryTimer);
    clearInterval(this.positionTimer);
    for (const c of this.chans.values()) clearTimeout(c.linger);
    await this.topo.commands.hdel(`${this.opts.prefix}:nodes:all`, this.opts.nodeId).catch(() => {});
    for (const sh of this.shards.values()) {
      sh.closed = true;
      await sh.sub.quit().catch(() => {});
      sh.sub.disconnect();
    }
    if (this.adapterSub) {
      await this.adapterSub.quit().catch(() => {});
      this.adapterSub.disconnect();
    }
    await this.topo.close();
  }
}
