// Single-node bus: ids from a local generator, history in memory, fan-out by a synchronous callback.
import type { Bus, BusHealth, ChannelPosition, HistoryRead, NodeInfo, Publication, PublishInput, PublishResult } from './bus.js';
import { IdGenerator } from '../core/ids.js';
import { MemoryHistory, type MemoryHistoryOptions } from './memory-history.js';

export class MemoryBus implements Bus {
  readonly mode = 'memory' as const;
  // One generator for every channel: ids unique and increasing per channel (and globally).
  private readonly ids = new IdGenerator();
  private readonly store: MemoryHistory;
  private readonly listeners: ((p: Publication) => void)[] = [];
  private last = '0-0';
  private readonly once = new Map<string, { id: string; until: number }>();
  /** Channels this node receives (interest), as over Redis: the rest is stored but handed to nobody. */
  private readonly subscribed = new Set<string>();

  private self: () => NodeInfo = () => ({ id: 'local', connections: 0 });

  constructor(maxTtlMs: number, history?: MemoryHistoryOptions) {
    this.store = new MemoryHistory(maxTtlMs, history);
  }

  async start() {}

  async publish(input: PublishInput): Promise<PublishResult> {
    const now = Date.now();
    if (input.once) {
      const prev = this.once.get(input.once.key);
      if (prev && prev.until > now) return { id: prev.id, duplicate: true };
    }
    const p: Publication = {
      channel: input.channel,
      event: input.event,
      data: input.data,
      ts: input.ts,
      id: '',
      ...(input.volatile ? { volatile: true } : {}),
    };
    // Refused (HistoryFull) before it gets an id or reaches anyone: a publication is stored, or not published.
    const cost = p.volatile ? 0 : this.store.admit(p, input.history.size);
    p.id = this.ids.next();
    this.last = p.id;
    if (!p.volatile) this.store.append(p, input.history.size, input.history.ttlMs, cost);
    if (input.once) {
      this.once.set(input.once.key, { id: p.id, until: now + input.once.ttlSeconds * 1000 });
      if (this.once.size > 100_000) for (const [k, v] of this.once) if (v.until <= now) this.once.delete(k);
    }
    if (this.subscribed.has(p.channel)) for (const fn of this.listeners) fn(p);
    return { id: p.id };
  }

  async history(channel: string, since: string | undefined, limit: number): Promise<HistoryRead> {
    // The ttl is the one stored with the channel's entries.
    return this.store.read(channel, since, limit);
  }

  onPublication(fn: (p: Publication) => void) {
    this.listeners.push(fn);
  }
  watermark() {
    // As RedisBus's: the millisecond of the newest id (a later id of another channel may share it).
    return `${this.last.slice(0, this.last.indexOf('-'))}-0`;
  }
  async subscribe(channel: string): Promise<ChannelPosition> {
    this.subscribed.add(channel);
    // Ids here are "<ms>-<n>" from Date.now(): anything published later is above "<now>-0".
    return { id: `${Date.now()}-0`, exact: false };
  }
  unsubscribe(channel: string) {
    this.subscribed.delete(channel);
  }
  onResync() {}
  onHealth() {}
  health(): BusHealth {
    return { ready: true };
  }
  adapter() {
    return undefined;
  }
  setSelf(fn: () => NodeInfo) {
    this.self = fn;
  }
  async nodes(): Promise<NodeInfo[]> {
    return [this.self()];
  }
  async close() {
    this.store.close();
  }
}
