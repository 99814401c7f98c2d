// The one publish path for every source (client, HTTP API, GRIP): validate, size-check, store and fan out.
import type { Bus } from '../bus/bus.js';
import { HistoryFull } from '../bus/memory-history.js';
import { stringifyData } from '../core/codec.js';
import type { Metrics } from '../metrics/metrics.js';
import { SbError } from '../core/errors.js';
import { assertChannel, assertEventName } from './names.js';
import type { ChannelRules } from './rules.js';

export type PublicationSource = 'client' | 'http' | 'grip';

export interface PublisherDeps {
  bus: Bus;
  rules: ChannelRules;
  metrics: Metrics;
  /** Largest publication `data` in JSON bytes (MAX_PUBLISH_BYTES). @default 65536 */
  maxPublishBytes: number;
}

export class Publisher {
  constructor(private readonly d: PublisherDeps) {}

  /** Checks a publication without publishing it (for callers that authorize in between). */
  validate(channel: unknown, event: unknown, data: unknown): { channel: string; event: string; data: unknown; json: string } {
    const c = assertChannel(channel);
    const e = assertEventName(event);
    const d = data === undefined ? null : data;
    let json: string;
    try {
      // Measured in the wire form (bytes as base64), as history and the bus keep it.
      json = stringifyData(d);
    } catch {
      // A RangeError from data nested thousands of levels deep (or a value JSON can't hold).
      throw new SbError('bad_request', 'data cannot be encoded as JSON (nested too deeply?)');
    }
    const size = Buffer.byteLength(json);
    if (size > this.d.maxPublishBytes) throw new SbError('too_large', `data is ${size} bytes; the limit is ${this.d.maxPublishBytes}`);
    // The encoded form goes along: a caller that publishes `data` untouched passes it on (publish's `json`).
    return { channel: c, event: e, data: d, json };
  }

  /**
   * Resolves with the id; `local: true` when only this node's subscribers could be reached; `duplicate: true`
   * when `once` had already published (the id is that publication's).
   */
  async publish(
    channel: string,
    event: string,
    data: unknown,
    source: PublicationSource,
    once?: { key: string; ttlSeconds: number },
    volatile = false,
    /** validate()'s `json` of this very `data` (not touched since): the bus reuses it instead of encoding again. */
    json?: string,
  ): Promise<{ id: string; local?: true; duplicate?: true }> {
    const rule = this.d.rules.for(channel);
    // Volatile publications keep no history (MAXLEN 0 still gives them an id in order).
    const history = { size: volatile ? 0 : rule.historySize, ttlMs: rule.historyTtlMs };
    let r: Awaited<ReturnType<Bus['publish']>>;
    try {
      r = await this.d.bus.publish({ channel, event, data, ts: Date.now(), history, once, volatile, dataJson: json });
    } catch (err) {
      if (err instanceof HistoryFull) this.d.metrics.rejections.inc({ reason: err.reason });
      throw err;
    }
    if (r.duplicate) return { id: r.id, duplicate: true };
    this.d.metrics.publicationCells.cell(source).n++;
    return r.localOnly ? { id: r.id, local: true } : { id: r.id };
  }
}
