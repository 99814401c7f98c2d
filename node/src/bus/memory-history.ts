// Per-channel history kept in process memory (single-node mode), bounded by length and age.
import type { HistoryRead, Publication } from './bus.js';
import { compareIds, parseId } from '../core/ids.js';

export class MemoryHistory {
  private readonly channels = new Map<string, { list: Publication[]; ttlMs: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(sweepEveryMs: number) {
    // Channels nobody publishes to any more leave memory once their newest entry has aged out.
    this.sweeper = setInterval(() => this.sweep(), Math.min(sweepEveryMs, 60_000)).unref();
  }

  append(p: Publication, size: number, ttlMs: number) {
    let h = this.channels.get(p.channel);
    if (size === 0) {
      if (h) this.channels.delete(p.channel);
      return;
    }
    if (!h) this.channels.set(p.channel, (h = { list: [], ttlMs }));
    h.ttlMs = ttlMs;
    h.list.push(p);
    if (h.list.length > size) h.list.splice(0, h.list.length - size);
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

  private sweep() {
    const now = Date.now();
    for (const [channel, h] of this.channels) {
      const keepFrom = h.list.findIndex((p) => p.ts >= now - h.ttlMs);
      if (keepFrom === -1) this.channels.delete(channel);
      else if (keepFrom > 0) h.list.splice(0, keepFrom);
    }
  }

  close() {
    clearInterval(this.sweeper);
  }
}
