// Core delivery, free of transports: hands bus publications to local sinks (Socket.IO rooms, SSE streams) in
// per-channel id order, joins subscribers with history replay, catches one channel up after a bus gap, and
// tells a channel's subscribers when publications may be lost.
import type { Bus, Publication, ResyncKind } from '../bus/bus.js';
import { compareIds } from '../core/ids.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ChannelRules } from './rules.js';

/** Where live publications go on this node: one per transport (Socket.IO rooms, SSE streams). */
export interface DeliverySink {
  /** Sends `p` to this sink's local subscribers of `p.channel`; returns how many got it. */
  deliver(p: Publication): number;
  /** True while it has local subscribers of `channel`. */
  has(channel: string): boolean;
  /** Sends `switchboard:resync` to the channel's local subscribers (publications may be lost). */
  notice(channel: string, data: { channel: string; recovered: false }): void;
}

export interface JoinResult {
  recovered: boolean;
  replayed: number;
}

export interface DeliveryOptions {
  bus: Bus;
  rules: Pick<ChannelRules, 'for'>;
  metrics: Metrics;
  log: Logger;
  /** History entries read per request while joining or catching up. @default 1000 */
  historyPage?: number;
}

interface ChannelState {
  /** The last id handed to the channel's local subscribers, or the bus position when it was first received. */
  last: string;
  /** False while `last` is a time-based position, not one of the channel's own ids: history can't "find" it. */
  exact: boolean;
  /** Joins in progress (interest held while history is read, before any sink has the subscriber). */
  holds: number;
  /** Resolves once the bus receives the channel. */
  ready: Promise<void>;
}

export class Delivery {
  /** Subscribers between "history read started" and "joined": live publications wait here. */
  private readonly joining = new Map<string, Set<Publication[]>>();
  /** Channels catching up after a bus gap: live publications wait here, in order, until history is read. */
  private readonly catching = new Map<string, Publication[]>();
  /** Channels with local interest; bounded by the channels this node serves. */
  private readonly channels = new Map<string, ChannelState>();
  private readonly sinks: DeliverySink[] = [];
  private readonly bus: Bus;
  private readonly rules: Pick<ChannelRules, 'for'>;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly page: number;

  constructor(o: DeliveryOptions) {
    this.bus = o.bus;
    this.rules = o.rules;
    this.metrics = o.metrics;
    this.log = o.log;
    this.page = o.historyPage ?? 1000;
    this.bus.onPublication((p) => this.deliver(p));
    this.bus.onResync((channel, kind) => void this.resync(channel, kind));
  }

  addSink(s: DeliverySink) {
    this.sinks.push(s);
  }

  /** Channels this node currently receives for its subscribers. */
  channelCount(): number {
    return this.channels.size;
  }

  /** Holds interest in `channel`: resolves once the bus delivers it here. Pair with release(). */
  private async hold(channel: string): Promise<void> {
    let st = this.channels.get(channel);
    if (!st) {
      const fresh: ChannelState = { last: '0-0', exact: false, holds: 0, ready: Promise.resolve() };
      fresh.ready = this.bus.subscribe(channel).then((pos) => {
        // Publications handed on before the position was known are older than it (the bus fences the read).
        const cmp = compareIds(pos.id, fresh.last);
        if (cmp > 0) {
          fresh.last = pos.id;
          fresh.exact = pos.exact;
        } else if (cmp === 0) fresh.exact ||= pos.exact;
      });
      this.channels.set(channel, (st = fresh));
    }
    st.holds++;
    try {
      await st.ready;
    } catch (err) {
      this.release(channel);
      throw err;
    }
  }

  private release(channel: string) {
    const st = this.channels.get(channel);
    if (!st) return;
    st.holds--;
    this.untrack(channel);
  }

  /** A sink lost its last local subscriber of `channel`: stop receiving it unless someone else still wants it. */
  untrack(channel: string) {
    const st = this.channels.get(channel);
    if (!st || st.holds > 0 || this.sinks.some((s) => s.has(channel))) return;
    this.channels.delete(channel);
    this.bus.unsubscribe(channel);
  }

  private deliver(p: Publication) {
    if (!this.channels.has(p.channel)) return;
    const queued = this.catching.get(p.channel);
    if (queued) queued.push(p);
    else this.emit(p);
  }

  private emit(p: Publication) {
    const waiting = this.joining.get(p.channel);
    if (waiting) for (const buf of waiting) buf.push(p);
    let n = 0;
    for (const s of this.sinks) n += s.deliver(p);
    if (n > 0) this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - p.ts) / 1000);
    // Volatile and local-only publications are never in history: a catch-up could not find them.
    const st = this.channels.get(p.channel);
    if (st && !p.localOnly && !p.volatile) {
      st.last = p.id;
      st.exact = true;
    }
  }

  /**
   * The bus may have missed publications of one channel. After a gap the channel catches up from history before
   * live delivery goes on: what was missed is delivered in id order, then what arrived meanwhile, de-duplicated
   * by id, so subscribers see no gap, no repeat and no reordering. When history cannot say (the channel's state
   * was lost, entries trimmed), subscribers get `switchboard:resync { channel, recovered: false }` — loss is
   * announced, never silent. Other channels are not touched.
   */
  private async resync(channel: string, kind: ResyncKind) {
    if (!this.channels.has(channel) || this.catching.has(channel)) return;
    this.metrics.resyncs.inc({ kind });
    if (kind === 'reset') return this.announceLoss(channel);
    this.catching.set(channel, []);
    await this.catchUp(channel);
  }

  private async catchUp(channel: string) {
    const queued = this.catching.get(channel)!;
    const st = this.channels.get(channel)!;
    let last = st.last;
    let lossless = false;
    try {
      const ttl = this.rules.for(channel).historyTtlMs;
      for (let cursor = last, first = true; ; first = false) {
        const page = await this.bus.history(channel, cursor, this.page, ttl);
        this.metrics.catchupReads.inc();
        // A time-based position is no entry of the stream: "found" means nothing for it, only what comes after.
        if (first) lossless = page.found || !st.exact;
        for (const p of page.entries) {
          if (compareIds(p.id, last) <= 0) continue;
          this.emit(p);
          last = p.id;
          this.metrics.busCatchup.inc();
        }
        if (page.entries.length < this.page) break;
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
    for (const s of this.sinks) s.notice(channel, { channel, recovered: false });
  }

  /** True when `since` is still in the channel's history. */
  async inHistory(channel: string, since: string): Promise<boolean> {
    return (await this.bus.history(channel, since, 1, this.rules.for(channel).historyTtlMs)).found;
  }

  /**
   * Receives the channel on this node first (so nothing published from then on can be missed), replays history
   * after `since` to `send`, then everything published meanwhile, de-duplicated by id, then calls `join` — all
   * of the last part synchronously, so no live publication falls in between.
   */
  async joinWithHistory(
    channel: string,
    since: string | undefined,
    send: (p: Publication) => void,
    join: () => void,
    stillWanted: () => boolean,
  ): Promise<JoinResult> {
    await this.hold(channel);
    try {
      if (since === undefined) {
        if (stillWanted()) join();
        return { recovered: false, replayed: 0 };
      }
      return await this.replayThenJoin(channel, since, send, join, stillWanted);
    } finally {
      this.release(channel);
    }
  }

  private async replayThenJoin(
    channel: string,
    since: string,
    send: (p: Publication) => void,
    join: () => void,
    stillWanted: () => boolean,
  ): Promise<JoinResult> {
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
        const page = await this.bus.history(channel, cursor, this.page, ttl);
        recovered ??= page.found;
        replay.push(...page.entries);
        if (page.entries.length < this.page) break;
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
}
