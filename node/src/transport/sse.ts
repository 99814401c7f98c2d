// Server-Sent Events: GET /sse?channel=a&channel=b. Same auth, channel rules and limits as Socket.IO;
// Last-Event-ID replays from history; keep-alive comments; slow readers are closed, never buffered forever.
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import type { Publication } from '../bus/bus.js';
import type { Authorizer } from '../channels/authorize.js';
import type { Delivery, DeliverySink } from '../channels/delivery.js';
import { compareIds } from '../core/ids.js';
import { assertChannel } from '../channels/names.js';
import { stringifyData } from '../core/codec.js';
import type { OriginPolicy } from '../limits/origin.js';
import type { Handshake, Identity } from '../protocol/handshake.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ClientContext } from '../core/app.js';
import { SbError } from '../core/errors.js';
import { preflight, route, type Reply } from './http.js';

const LINE_BREAK = /[\r\n]/;
const LINE_BREAKS = /[\r\n]/g;
import { decodeLastEventId, encodePositions, listHash, mergeById, type Position } from './sse-resume.js';

export interface SseOptions {
  /** Bytes a stream may have waiting in uWS before it is closed as a slow consumer (MAX_BACKPRESSURE_BYTES). @default 1048576 */
  maxBackpressureBytes: number;
  /** Channels one connection may subscribe to (MAX_SUBSCRIPTIONS). @default 100 */
  maxSubscriptions: number;
  /** Channels one SSE stream may name, which bounds its event ids (SSE_MAX_CHANNELS). @default 32 */
  sseMaxChannels: number;
  /** Interval of keep-alive comments (SSE_KEEPALIVE_MS). @default 15000 */
  sseKeepaliveMs: number;
}

export interface SseDeps {
  options: SseOptions;
  delivery: Delivery;
  authorizer: Authorizer;
  /** The handshake Socket.IO uses too: address limits, authentication, per-user slot, expiry. */
  handshake: Handshake;
  origins: OriginPolicy;
  isDraining(): boolean;
  /** The bus watermark (newest id seen from any channel). */
  watermark(): string;
  /** The channel's newest publication id in history, if any: where a fresh channel of a stream stands. */
  lastId(channel: string): Promise<string | undefined>;
  metrics: Metrics;
  log: Logger;
}

class SseClient {
  /** Bytes handed to uWS while it reported backpressure; back to 0 once it has written everything. */
  pending = 0;
  closed = false;
  release: () => void = () => {};
  stopTimers: () => void = () => {};
  /** While history is replayed, live publications wait here so the stream stays in one order. */
  queue: Publication[] | undefined = [];
  /** Per channel, the last publication this stream delivered (for `sb1.` event ids of multi-channel streams). */
  readonly positions: Position[];
  readonly index = new Map<string, number>();
  readonly hash: string;
  constructor(
    readonly reply: Reply,
    readonly ctx: ClientContext,
    readonly channels: string[],
  ) {
    channels.forEach((c, i) => this.index.set(c, i));
    this.positions = channels.map(() => ({ id: '0-0', watermark: true }));
    this.hash = channels.length > 1 ? listHash(channels) : '';
  }
}

export class SseHub implements DeliverySink {
  private readonly byChannel = new Map<string, Set<SseClient>>();
  private readonly clients = new Set<SseClient>();
  private counter = 0;
  private readonly log: Logger;

  constructor(private readonly d: SseDeps) {
    this.log = d.log.child({ module: 'sse' });
    d.delivery.addSink(this);
  }

  subscribers(channel: string): number {
    return this.byChannel.get(channel)?.size ?? 0;
  }

  has(channel: string): boolean {
    return this.byChannel.has(channel);
  }

  notice(channel: string, data: { channel: string; recovered: false }) {
    const frame = `event: switchboard:resync\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of this.byChannel.get(channel) ?? []) this.write(c, frame);
  }

  /** Channel subscriptions held by SSE streams (for switchboard_subscriptions). */
  subscriptionCount(): number {
    let n = 0;
    for (const set of this.byChannel.values()) n += set.size;
    return n;
  }

  count(): number {
    return this.clients.size;
  }

  /** For the drain: every open stream. */
  all(): { end(): void }[] {
    return [...this.clients].map((c) => ({ end: () => this.close(c, 'draining') }));
  }

  deliver(p: Publication): number {
    const set = this.byChannel.get(p.channel);
    if (!set) return 0;
    let body: string | undefined;
    let single: string | undefined;
    let n = 0;
    for (const c of set) {
      if (c.queue) {
        c.queue.push(p);
        n++;
        continue;
      }
      if (p.volatile && c.pending > 0) {
        this.d.metrics.dropped.inc({ reason: 'volatile' });
        continue;
      }
      body ??= this.body(p);
      if (c.channels.length === 1) this.write(c, (single ??= this.idLine(c, p) + body));
      else this.write(c, this.idLine(c, p) + body);
      n++;
    }
    this.d.metrics.deliveryCells.cell('sse').n += n;
    return n;
  }

  private body(p: Publication): string {
    // One `data:` line: JSON never contains a raw newline. Event names with a line break are refused at publish;
    // one from elsewhere (an older node on the bus) still never adds a line. The bus's text of the data is sent as it
    // came (it is JSON.stringify's), unless it holds a line break JSON.stringify would never write.
    const json = p.json !== undefined && !LINE_BREAK.test(p.json) ? p.json : stringifyData(p.data);
    return `event: ${LINE_BREAK.test(p.event) ? p.event.replace(LINE_BREAKS, '') : p.event}\ndata: ${json}\n\n`;
  }

  /**
   * The `id:` line, after moving the stream's position. Volatile and node-local publications are not in
   * history, so they get no id: EventSource keeps the previous one, which history can still resume from.
   */
  private idLine(c: SseClient, p: Publication): string {
    if (p.volatile || p.localOnly) return '';
    const i = c.index.get(p.channel)!;
    c.positions[i] = { id: p.id, watermark: false };
    return `id: ${c.channels.length === 1 ? p.id : encodePositions(c.channels, c.positions, c.hash)}\n`;
  }

  private write(c: SseClient, chunk: string) {
    if (c.closed) return;
    if (c.reply.write(chunk)) {
      c.pending = 0; // uWS writes what it buffered before a new chunk: true means nothing is left
      return;
    }
    c.pending += chunk.length;
    if (c.pending > this.d.options.maxBackpressureBytes) {
      this.d.metrics.dropped.inc({ reason: 'slow_consumer' });
      this.close(c, 'slow_consumer');
    }
  }

  private close(c: SseClient, reason: string) {
    if (c.closed) return;
    // A reader that is behind would never take a polite end: hang up, freeing the buffer and the TCP connection.
    const hangUp = reason === 'slow_consumer' || c.pending > 0;
    if (!hangUp) c.reply.write(`event: switchboard:closing\ndata: ${JSON.stringify({ reason })}\n\n`);
    this.forget(c, reason); // first: a hang-up reports the abort at once, which would count as client_gone
    if (hangUp) c.reply.destroy();
    else c.reply.end();
  }

  /** Every way a stream ends comes here once: the slots, the timers and the gauges are released. */
  private forget(c: SseClient, reason: string) {
    if (c.closed) return;
    c.closed = true;
    c.release();
    c.stopTimers();
    for (const [ch, set] of this.byChannel) {
      if (set.delete(c) && set.size === 0) {
        this.byChannel.delete(ch);
        this.d.delivery.untrack(ch);
      }
    }
    // A request gone before its stream started was never counted as a connection.
    if (!this.clients.delete(c)) return;
    this.d.metrics.connections.dec({ transport: 'sse' });
    this.d.metrics.disconnects.inc({ reason });
  }

  mount(app: TemplatedApp) {
    const d = this.d;
    app.options('/sse', preflight(this.log, d.origins, d.metrics));
    app.get(
      '/sse',
      route(this.log, async (req, reply) => {
        if (!d.origins.allows(req.headers, req.remoteAddress)) {
          d.metrics.rejections.inc({ reason: 'origin' });
          throw new SbError('forbidden', `origin ${req.headers.origin} is not allowed (ALLOWED_ORIGINS)`);
        }
        reply.headers = d.origins.corsHeaders(req.headers);
        if (d.isDraining()) throw new SbError('unavailable', 'this node is draining; retry');
        const channels = [...new Set(req.query.getAll('channel'))].map(assertChannel);
        if (channels.length === 0) throw new SbError('bad_request', 'give at least one ?channel=');
        const max = Math.min(d.options.maxSubscriptions, d.options.sseMaxChannels);
        if (channels.length > max) throw new SbError('rate_limited', `at most ${max} channels per stream (SSE_MAX_CHANNELS)`);
        const lastEventId = req.headers['last-event-id'] || req.query.get('lastEventId') || undefined;
        const resume = lastEventId === undefined ? undefined : decodeLastEventId(lastEventId, channels);
        // The same handshake as Socket.IO: address rate and slot, identity and user slot, counted the same way.
        const hs = d.handshake;
        const adm = await hs.admit(hs.clientIp(req.remoteAddress, req.headers['x-forwarded-for']));
        let release = () => adm.release();
        let id: Identity;
        try {
          id = await hs.identify({
            ip: adm.ip,
            connectionId: `sse:${++this.counter}`,
            headers: req.headers,
            auth: {},
            token: req.query.get('token') ?? undefined,
          });
          release = () => {
            id.slot.release();
            adm.release();
          };
          try {
            for (const ch of channels) await d.authorizer.subscribe(id.ctx, ch);
          } catch (err) {
            throw hs.refused(err);
          }
        } catch (err) {
          release();
          throw err;
        }
        const client = new SseClient(reply, id.ctx, channels);
        client.release = release;
        reply.onAbort(() => this.forget(client, 'client_gone'));
        if (
          !reply.startStream(200, {
            'content-type': 'text/event-stream; charset=utf-8',
            'cache-control': 'no-store',
            'x-accel-buffering': 'no',
          })
        )
          return release();
        this.clients.add(client);
        d.metrics.connections.inc({ transport: 'sse' });
        hs.accepted();
        // When uWS can write again, flushing with a comment tells whether its buffer is empty (pending back to 0).
        reply.onWritable(() => {
          const ok = reply.write(':\n');
          if (ok) client.pending = 0;
          return ok;
        });
        reply.write(`retry: 2000\n: connected to switchboard\n\n`);
        const keepalive = setInterval(() => this.write(client, ': keepalive\n\n'), d.options.sseKeepaliveMs);
        const expiry = hs.expiry(id.tokenExp, () => this.close(client, 'token_expired'));
        client.stopTimers = () => {
          clearInterval(keepalive);
          expiry.stop();
        };
        try {
          await this.join(client, resume);
        } catch (err) {
          // The stream has started: the status line is gone, so the error goes as an event, then a close.
          this.log.warn({ err: { message: (err as Error).message } }, 'SSE replay failed');
          client.reply.write(`event: switchboard:error\ndata: ${JSON.stringify({ message: (err as Error).message })}\n\n`);
          this.close(client, 'error');
        }
      }),
    );
  }

  /**
   * Joins every channel of the stream, replaying from history where the client resumes: each channel from
   * its own position, all of them merged into one order by id, then what arrived live meanwhile — each
   * publication once. A position no longer in history is announced with `switchboard:resync`.
   */
  private async join(client: SseClient, resume: ReturnType<typeof decodeLastEventId> | undefined) {
    const d = this.d;
    const watermark = d.watermark();
    const starts: (Position | undefined)[] = client.channels.map((_, i) => {
      if (!resume) return undefined;
      // A plain id names a publication of one of the channels (from a one-channel stream or an older client):
      // every channel resumes after it, as ids are ordered by Redis time across channels.
      if ('plain' in resume) return { id: resume.plain, watermark: false };
      return resume.positions[i];
    });
    const replays: Publication[][] = client.channels.map(() => []);
    const found = await Promise.all(
      client.channels.map(async (ch, i) => {
        // A fresh channel of a multi-channel stream needs an exact position too, for a cut before its first
        // event: its newest publication now, or with empty history the very beginning (whatever history holds
        // later came after this read — no clock involved, which matters with one Redis clock per shard). The
        // join then replays what lands between this read and the join, so nothing falls in between.
        if (!starts[i] && client.channels.length > 1) starts[i] = { id: (await d.lastId(ch)) ?? '0-0', watermark: true };
        const start = starts[i];
        client.positions[i] = start ?? { id: watermark, watermark: true };
        const r = await d.delivery.joinWithHistory(
          ch,
          start?.id,
          (p) => replays[i]!.push(p),
          () => {
            let set = this.byChannel.get(ch);
            if (!set) this.byChannel.set(ch, (set = new Set()));
            set.add(client);
          },
          () => !client.closed,
        );
        return r.recovered;
      }),
    );
    if (client.closed) return;
    const lost: string[] = [];
    if (resume && 'plain' in resume && client.channels.length > 1) {
      // The plain id is in at most one channel's history; found in none, nothing can be vouched for.
      if (!(await Promise.all(client.channels.map((ch) => d.delivery.inHistory(ch, resume.plain)))).some(Boolean))
        lost.push(...client.channels);
    } else if (resume) client.channels.forEach((ch, i) => !starts[i]!.watermark && !found[i] && lost.push(ch));
    for (const ch of lost) this.write(client, `event: switchboard:resync\ndata: ${JSON.stringify({ channel: ch, recovered: false })}\n\n`);
    const queued = client.queue ?? [];
    client.queue = undefined;
    let n = 0;
    for (const p of [...mergeById(replays), ...queued]) {
      const i = client.index.get(p.channel)!;
      const at = client.positions[i]!;
      // Replayed and queued lists overlap (a publication may be in history and in flight): positions de-duplicate.
      // Channels joined without a resume point replayed nothing, so everything queued for them is new.
      if (starts[i] && !p.localOnly && compareIds(p.id, at.id) <= 0) continue;
      this.write(client, this.idLine(client, p) + this.body(p));
      n++;
    }
    if (resume) this.write(client, `: resumed, ${n} replayed\n\n`);
  }
}
