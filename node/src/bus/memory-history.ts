// Per-channel history kept in process memory (single-node mode), bounded by length, age, bytes per channel,
// bytes in all and channels: what anyone may publish must not grow the process without end.
import type { HistoryRead, Publication } from './bus.js';
import { compareIds, parseId } from '../core/ids.js';
import { stringifyData } from '../core/codec.js';
import { SbError } from '../core/errors.js';

export interface MemoryHistoryOptions {
  /** Newest publications a channel keeps within this many bytes; older ones leave first (HISTORY_MAX_CHANNEL_BYTES). @default 1048576 */
  maxChannelBytes: number;
  /** Bytes of history on the node in all; a publication that would pass it is refused (HISTORY_MAX_BYTES). @default 134217728 */
  maxBytes: number;
  /** Channels with history on the node; a publication to one more is refused (HISTORY_MAX_CHANNELS). @default 10000 */
  maxChannels: number;
}

/** A publication refused because history is full; `reason` is its `switchboard_rejections_total` label. */
export class HistoryFull extends SbError {
  constructor(
    readonly reason: 'history_bytes' | 'history_channels',
    message: string,
  ) {
    super('unavailable', message);
  }
}

/** What a publication costs in memory: its JSON-encoded data and names, plus the object around them. */
function costOf(p: Publication): number {
  let data: number;
  try {
    data = Buffer.byteLength(stringifyData(p.data));
  } catch {
    data = 0;
  }
  return data + p.event.length + p.channel.length + 96;
}

interface ChannelHistory {
  list: Publication[];
  sizes: number[];
  bytes: number;
  ttlMs: number;
}

export class MemoryHistory {
  private readonly channels = new Map<string, ChannelHistory>();
  private readonly sweeper: NodeJS.Timeout;
  private bytes = 0;
  private sweptAt = 0;

  constructor(
    sweepEveryMs: number,
    private readonly opts: MemoryHistoryOptions = { maxChannelBytes: 1 << 20, maxBytes: 128 << 20, maxChannels: 10_000 },
  ) {
    // Channels nobody publishes to any more leave memory once their newest entry has aged out.
    this.sweeper = setInterval(() => this.sweep(), Math.min(sweepEveryMs, 60_000)).unref();
  }

  /** Bytes of history held (for the gauge and tests). */
  get totalBytes(): number {
    return this.bytes;
  }

  /**
   * Checks that `p` fits before anything is published: throws HistoryFull when the node's caps would be passed.
   * Returns its cost for append().
   */
  admit(p: Publication, size: number): number {
    if (size === 0) return 0;
    const cost = costOf(p);
    const h = this.channels.get(p.channel);
    if (!h && this.channels.size >= this.opts.maxChannels) {
      this.sweepSoon();
      if (this.channels.size >= this.opts.maxChannels)
        throw new HistoryFull(
          'history_channels',
          `history is full: ${this.opts.maxChannels} channels with history on this node (HISTORY_MAX_CHANNELS)`,
        );
    }
    // What this channel gives back to make room for the publication counts: it only trims itself.
    const freed = h ? Math.max(0, h.bytes + cost - this.opts.maxChannelBytes) : 0;
    if (this.bytes + cost - freed > this.opts.maxBytes) {
      this.sweepSoon();
      if (this.bytes + cost - freed > this.opts.maxBytes)
        throw new HistoryFull('history_bytes', `history is full: ${this.opts.maxBytes} bytes on this node (HISTORY_MAX_BYTES)`);
    }
    return cost;
  }

  append(p: Publication, size: number, ttlMs: number, cost = costOf(p)) {
    let h = this.channels.get(p.channel);
    if (size === 0) {
      if (h) this.drop(p.channel, h);
      return;
    }
    if (!h) this.channels.set(p.channel, (h = { list: [], sizes: [], bytes: 0, ttlMs }));
    h.ttlMs = ttlMs;
    h.list.push(p);
    h.sizes.push(cost);
    h.bytes += cost;
    this.bytes += cost;
    // By count, then by bytes; the newest publication always stays (MAX_PUBLISH_BYTES bounds it).
    let cut = Math.max(0, h.list.length - size);
    let bytes = h.bytes;
    for (let i = 0; i < cut; i++) bytes -= h.sizes[i]!;
    while (cut < h.list.length - 1 && bytes > this.opts.maxChannelBytes) bytes -= h.sizes[cut++]!;
    if (cut > 0) this.trim(h, cut);
  }

  private trim(h: ChannelHistory, n: number) {
    h.list.splice(0, n);
    const gone = h.sizes.splice(0, n).reduce((a, b) => a + b, 0);
    h.bytes -= gone;
    this.bytes -= gone;
  }

  private drop(channel: string, h: ChannelHistory) {
    this.bytes -= h.bytes;
    this.channels.delete(channel);
  }

  read(channel: string, since: string | undefined, limit: number): HistoryRead {
    const h = this.channels.get(channel);
    const minTs = Date.now() - (h?.ttlMs ?? 0);
    const list = (h?.list ?? []).filter((p) => p.ts >= minTs);
    if (since === undefined) return { found: true, entries: list.slice(-limit) };
    if (!parseId(since)) return { found: false, entries: [] };
    const at = list.findIndex((p) => p.id === since);
    if (at >= 0) return { found: true, entries: list.slice(at + 1, at + 1 + limit) };
    return { found: false, entries: list.filter((p) => compareIds(p.id, since) > 0).slice(0, limit) };
  }

  channelCount(): number {
    return this.channels.size;
  }

  /** A sweep now, unless one ran in the last second (a publisher at a cap would make every publish a full scan). */
  private sweepSoon() {
    if (Date.now() - this.sweptAt >= 1000) this.sweep();
  }

  private sweep() {
    const now = Date.now();
    this.sweptAt = now;
    for (const [channel, h] of this.channels) {
      const keepFrom = h.list.findIndex((p) => p.ts >= now - h.ttlMs);
      if (keepFrom === -1) this.drop(channel, h);
      else if (keepFrom > 0) this.trim(h, keepFrom);
    }
  }

  close() {
    clearInterval(this.sweeper);
  }
}
