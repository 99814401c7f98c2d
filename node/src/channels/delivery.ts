// Hands bus publications to local subscribers (Socket.IO rooms and other sinks such as SSE), and joins
// subscribers with history replay so that none misses or repeats a publication.
import type { Server, Socket } from 'socket.io';
import type { Bus, Publication } from '../bus/bus.js';
import type { Metrics } from '../metrics/metrics.js';
import { compareIds } from './ids.js';
import type { ChannelRules } from './rules.js';

export interface Meta {
  channel: string;
  id: string;
  ts: number;
}

/** A local receiver of publications other than Socket.IO rooms (SSE). */
export interface Sink {
  deliver(p: Publication): number;
}

export interface JoinResult {
  recovered: boolean;
  replayed: number;
}

const HISTORY_PAGE = 1000;

export class Delivery {
  /** Subscribers between "history read started" and "joined the room": live publications wait here. */
  private readonly joining = new Map<string, Set<Publication[]>>();
  private readonly sinks: Sink[] = [];
  private readonly resyncSinks: (() => void)[] = [];

  constructor(
    private readonly io: Server,
    private readonly bus: Bus,
    private readonly rules: ChannelRules,
    private readonly metrics: Metrics,
  ) {
    bus.onPublication((p) => this.deliver(p));
    bus.onResync(() => this.resync());
  }

  /**
   * The bus may have missed publications (a sequence gap, a reconnect, Redis restarted). Every local
   * subscriber is told, per channel, to re-subscribe with its last id: history then fills the gap exactly,
   * or the answer says recovered: false. SSE streams are closed: EventSource reconnects with Last-Event-ID.
   */
  private resync() {
    const adapter = this.io.of('/').adapter;
    let channels = 0;
    for (const room of adapter.rooms.keys()) {
      if (adapter.sids.has(room)) continue; // a socket's own room
      this.io.local.to(room).emit('switchboard:resync', { channel: room });
      channels++;
    }
    for (const s of this.resyncSinks) s();
    this.metrics.resyncs.inc({ channels: channels > 0 ? 'some' : 'none' });
  }

  /** Called on resync (SSE closes its streams). */
  onResync(fn: () => void) {
    this.resyncSinks.push(fn);
  }

  addSink(s: Sink) {
    this.sinks.push(s);
  }

  private deliver(p: Publication) {
    const waiting = this.joining.get(p.channel);
    if (waiting) for (const buf of waiting) buf.push(p);
    const room = this.io.of('/').adapter.rooms.get(p.channel);
    let n = 0;
    if (room && room.size > 0) {
      const meta: Meta = { channel: p.channel, id: p.id, ts: p.ts };
      this.io.local.to(p.channel).emit(p.event, p.data, meta);
      n = room.size;
      this.metrics.deliveries.inc({ transport: 'socketio' }, n);
    }
    for (const s of this.sinks) n += s.deliver(p);
    if (n > 0) this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - p.ts) / 1000);
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
