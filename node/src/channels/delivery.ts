// Hands bus publications to local subscribers (Socket.IO rooms and other sinks such as SSE), and joins
// subscribers with history replay so that none misses or repeats a publication.
import type { Server, Socket } from 'socket.io';
import type { Bus, Publication } from '../bus/bus.js';
import type { Metrics } from '../metrics/metrics.js';
import { compareIds } from '../core/ids.js';
import type { ChannelRules } from './rules.js';
import type { Logger } from '../log/logger.js';
import type { RoomPublisher } from '../transport/room-publisher.js';

export interface Meta {
  channel: string;
  id: string;
  ts: number;
}

/** A local receiver of publications other than Socket.IO rooms (SSE). */
export interface Sink {
  deliver(p: Publication): number;
  /** True while it has subscribers of `channel`. */
  has(channel: string): boolean;
  /** A system notice for the channel's subscribers (loss). */
  notice?(channel: string, data: unknown): void;
}

export interface JoinResult {
  recovered: boolean;
  replayed: number;
}

const HISTORY_PAGE = 1000;

export class Delivery {
  /** Subscribers between "history read started" and "joined the room": live publications wait here. */
  private readonly joining = new Map<string, Set<Publication[]>>();
  /** Channels catching up after a bus gap: live publications wait here, in order, until history is read. */
  private readonly catching = new Map<string, Publication[]>();
  /** The last id handed to each channel's local subscribers (live or caught up); bounded by live channels. */
  private readonly lastDelivered = new Map<string, string>();
  /** Channels whose lastDelivered is still the bus watermark from when they were tracked. */
  private readonly fromWatermark = new Set<string>();
  private readonly sinks: Sink[] = [];

  constructor(
    private readonly io: Server,
    private readonly bus: Bus,
    private readonly rules: ChannelRules,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** Outbound bytes past which a subscriber misses volatile publications. */
    private readonly volatileLimit: number,
    private readonly rooms: RoomPublisher,
  ) {
    bus.onPublication((p) => this.deliver(p));
    bus.onResync((kind) => void this.resync(kind));
    const adapter = io.of('/').adapter;
    adapter.on('create-room', (room: string) => {
      if (!adapter.sids.has(room) && !io.of('/').sockets.has(room)) this.track(room);
    });
    adapter.on('delete-room', (room: string) => this.untrack(room));
  }

  addSink(s: Sink) {
    this.sinks.push(s);
  }

  /**
   * A channel gained its first local subscriber. Anything it misses in a later bus gap comes after the
   * newest id the bus has seen now (ids are Redis stream ids, ordered by Redis time across streams).
   */
  track(channel: string) {
    if (this.lastDelivered.has(channel)) return;
    this.lastDelivered.set(channel, this.bus.watermark());
    this.fromWatermark.add(channel);
  }

  /** A channel lost its last local subscriber (of every kind). */
  untrack(channel: string) {
    if (this.io.of('/').adapter.rooms.has(channel) || this.sinks.some((s) => s.has(channel))) return;
    this.lastDelivered.delete(channel);
    this.fromWatermark.delete(channel);
  }

  private deliver(p: Publication) {
    const queued = this.catching.get(p.channel);
    if (queued) queued.push(p);
    else this.emit(p);
  }

  private emit(p: Publication) {
    const waiting = this.joining.get(p.channel);
    if (waiting) for (const buf of waiting) buf.push(p);
    const room = this.io.of('/').adapter.rooms.get(p.channel);
    let n = 0;
    if (room && room.size > 0) {
      const meta: Meta = { channel: p.channel, id: p.id, ts: p.ts };
      if (p.volatile) n = this.emitVolatile(room, p, meta);
      else {
        this.rooms.emit(p.channel, room, p.event, [p.data, meta]);
        n = room.size;
      }
      this.metrics.deliveries.inc({ transport: 'socketio' }, n);
    }
    for (const s of this.sinks) n += s.deliver(p);
    if (n > 0) {
      this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - p.ts) / 1000);
      if (!p.localOnly && !p.volatile) {
        this.lastDelivered.set(p.channel, p.id);
        this.fromWatermark.delete(p.channel);
      }
    }
  }

  /**
   * Volatile publications skip subscribers whose WebSocket buffer is already half full (counted as dropped)
   * rather than pushing them toward a slow_consumer close. One send per socket: opt-in, not the fast path.
   */
  private emitVolatile(room: Set<string>, p: Publication, meta: Meta): number {
    const sockets = this.io.of('/').sockets;
    let n = 0;
    for (const sid of room) {
      const s = sockets.get(sid);
      if (!s) continue;
      const ws = (s.conn.transport as { socket?: { getBufferedAmount?(): number } }).socket;
      if ((ws?.getBufferedAmount?.() ?? 0) > this.volatileLimit) {
        this.metrics.dropped.inc({ reason: 'volatile' });
        continue;
      }
      s.emit(p.event, p.data, meta);
      n++;
    }
    return n;
  }

  /**
   * The bus may have missed publications. After a gap or a reconnect, every channel with local subscribers
   * catches up from history before live delivery goes on: what was missed is delivered in id order, then
   * what arrived meanwhile, de-duplicated by id, so subscribers see no gap, no repeat and no reordering.
   * When history cannot say (Redis restarted empty, entries trimmed), subscribers get
   * `switchboard:resync { channel, recovered: false }` — loss is announced, never silent.
   */
  private async resync(kind: 'gap' | 'reset') {
    const channels = [...this.lastDelivered.keys()].filter((c) => !this.catching.has(c));
    this.metrics.resyncs.inc({ kind });
    if (kind === 'reset') {
      for (const c of channels) this.announceLoss(c);
      return;
    }
    for (const c of channels) this.catching.set(c, []);
    await Promise.all(channels.map((c) => this.catchUp(c)));
  }

  private async catchUp(channel: string) {
    const queued = this.catching.get(channel)!;
    let last = this.lastDelivered.get(channel)!;
    // A watermark is an id from another stream: "found" means nothing for it, only what comes after.
    const checkFound = !this.fromWatermark.has(channel);
    let lossless = false;
    try {
      const ttl = this.rules.for(channel).historyTtlMs;
      for (let cursor = last, first = true; ; first = false) {
        const page = await this.bus.history(channel, cursor, HISTORY_PAGE, ttl);
        if (first) lossless = page.found || !checkFound;
        for (const p of page.entries) {
          if (compareIds(p.id, last) <= 0) continue;
          this.emit(p);
          last = p.id;
          this.metrics.busCatchup.inc();
        }
        if (page.entries.length < HISTORY_PAGE) break;
        cursor = page.entries[page.entries.length - 1]!.id;
      }
    } catch (err) {
      lossless = false;
      this.log.warn({ err: { message: (err as Error).message }, channel }, 'catch-up from history failed');
    } finally {
      this.catching.delete(channel);
      for (const p of queued) if (p.localOnly || compareIds(p.id, last) > 0) this.emit(p);
    }
    if (!lossless) this.announceLoss(channel);
  }

  private announceLoss(channel: string) {
    this.log.warn({ channel }, 'publications may be lost on this channel; subscribers are told');
    this.metrics.lossNotices.inc();
    this.io.local.to(channel).emit('switchboard:resync', { channel, recovered: false });
    for (const s of this.sinks) s.notice?.(channel, { channel, recovered: false });
  }

  /** True when `since` is still in the channel's history. */
  async inHistory(channel: string, since: string): Promise<boolean> {
    return (await this.bus.history(channel, since, 1, this.rules.for(channel).historyTtlMs)).found;
  }

  /**
   * Replays history after `since` to `send`, then everything published meanwhile, de-duplicated by id, then
   * calls `join` — all of the last part synchronously, so no live publication falls in between.
   */
  async joinWithHistory(channel: string, since: string | undefined, send: (p: Publication) => void, join: () => void, stillWanted: () => boolean): Promise<JoinResult> {
    if (since === undefined) {
      join();
      return { recovered: false, replayed: 0 };
    }
    const buffer: Publication[] = [];
    let set = this.joining.get(channel);
    if (!set) this.joining.set(channel, (set = new Set()));
    set.add(buffer);
    try {
      const ttl = this.rules.for(channel).historyTtlMs;
      let cursor = since;
      let recovered: boolean | undefined;
      const replay: Publication[] = [];
      for (;;) {
        const page = await this.bus.history(channel, cursor, HISTORY_PAGE, ttl);
        recovered ??= page.found;
        replay.push(...page.entries);
        if (page.entries.length < HISTORY_PAGE) break;
        cursor = page.entries[page.entries.length - 1]!.id;
      }
      if (!stillWanted()) return { recovered: recovered ?? false, replayed: 0 };
      let last = since;
      let replayed = 0;
      for (const p of [...replay, ...buffer]) {
        if (compareIds(p.id, last) <= 0) continue;
        send(p);
        last = p.id;
        replayed++;
      }
      join();
      this.metrics.historyReplays.inc({ recovered: String(!!recovered) });
      this.metrics.replayedMessages.inc(replayed);
      return { recovered: !!recovered, replayed };
    } finally {
      set.delete(buffer);
      if (set.size === 0) this.joining.delete(channel);
    }
  }

  /** Sends one publication to one socket, as live delivery would. */
  static sendTo(socket: Socket, p: Publication) {
    const meta: Meta = { channel: p.channel, id: p.id, ts: p.ts };
    socket.emit(p.event, p.data, meta);
  }
}
