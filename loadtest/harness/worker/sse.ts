// SSE subscribers of a worker: one HTTP stream per client (`GET <url>?channel=…`, its own socket from a chosen
// source address), parsed as it arrives; publications carrying bench data `{ p, s, t }` are recorded like Socket.IO
// deliveries, and fence events (`{ fence }`) mark a stream as live (the harness publishes them before measuring).
import http from 'node:http';
import { isBenchData, SeqTracker } from '../../k6/lib/protocol.js';
import { nowUs } from '../clock.js';
import { encode, newHistogram } from '../histogram.js';
import { channelsOf, type ChannelPlan, type SseConnectResult } from '../messages.js';
import { noteError, type Recorder } from './recorder.js';
import { inPool } from './subscribers.js';

export class SseStream {
  private req: http.ClientRequest | undefined;
  connected = false;
  /** A fence event has arrived: the subscription is live. */
  live = false;
  closing = false;
  private buf = '';
  /** Per publisher: a repeated or out-of-order arrival counts as late (seqLate), a skipped one as lost. */
  private readonly seq = new SeqTracker();

  constructor(
    readonly url: string,
    readonly channel: string,
    private readonly rec: Recorder,
    private readonly localAddress: string,
  ) {}

  /** A new, unopened stream like this one (same server, channel, source address). */
  again(): SseStream {
    return new SseStream(this.url, this.channel, this.rec, this.localAddress);
  }

  /** Opens the stream; resolves with µs to the response headers. */
  open(timeoutMs = 15_000): Promise<number> {
    const t0 = nowUs();
    return new Promise((resolve, reject) => {
      const u = new URL(this.url);
      u.searchParams.append('channel', this.channel);
      const req = http.get(
        u,
        { agent: false, localAddress: this.localAddress, headers: { accept: 'text/event-stream' }, timeout: timeoutMs },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            req.destroy();
            return reject(new Error(`SSE ${res.statusCode}`));
          }
          req.setTimeout(0);
          this.connected = true;
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => this.onData(chunk));
          res.on('close', () => {
            if (this.connected && !this.closing) this.rec.win.disconnects++;
            this.connected = false;
          });
          resolve(nowUs() - t0);
        },
      );
      this.req = req;
      req.on('timeout', () => req.destroy(new Error(`SSE connect timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
    });
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let end: number;
    while ((end = this.buf.indexOf('\n\n')) >= 0) {
      const event = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      let data = '';
      for (const line of event.split('\n')) if (line.startsWith('data:')) data += line.slice(line[5] === ' ' ? 6 : 5);
      if (!data) continue; // comments, retry, keep-alives
      let v: unknown;
      try {
        v = JSON.parse(data);
      } catch {
        this.rec.win.malformed++;
        continue;
      }
      if (isBenchData(v)) {
        this.rec.delivered(this.channel, nowUs() - v.t);
        this.rec.sequenced(this.seq, this.channel, v);
      } else if ((v as { fence?: unknown } | null)?.fence !== undefined) this.live = true;
      else this.rec.win.malformed++;
    }
  }

  close(): void {
    this.closing = true;
    this.req?.destroy();
  }
}

/** Opens `count` streams (client i is number `offset + i`, channels by `plan`), at most `concurrency` at once. */
export async function connectStreams(
  into: SseStream[],
  rec: Recorder,
  o: { urls: string[]; plan: ChannelPlan; offset: number; count: number; concurrency: number; localAddress: string },
): Promise<SseConnectResult> {
  const hist = newHistogram();
  const res: SseConnectResult = { ok: 0, failed: 0, handshake: '', t0: nowUs(), t1: 0, errors: [], byChannel: {} };
  await inPool(o.count, o.concurrency, async (i) => {
    const g = o.offset + i;
    const channel = channelsOf(o.plan, g)[0]!;
    const s = new SseStream(o.urls[g % o.urls.length]!, channel, rec, o.localAddress);
    into.push(s);
    try {
      hist.recordValue(await s.open());
      res.ok++;
      res.byChannel[channel] = (res.byChannel[channel] ?? 0) + 1;
    } catch (err) {
      res.failed++;
      noteError(res.errors, (err as Error).message);
    }
  });
  res.t1 = nowUs();
  res.handshake = encode(hist);
  return res;
}

/**
 * Opens again, in place, every stream that has seen no fence yet (its subscription never became live on the server;
 * seen with Pushpin under load); returns how many. A stream that fails to open stays closed and not live.
 */
export async function reopenStreams(streams: SseStream[]): Promise<number> {
  const stale = streams.map((s, i) => [s, i] as const).filter(([s]) => !s.live);
  await Promise.all(
    stale.map(async ([s, i]) => {
      s.close();
      const fresh = s.again();
      streams[i] = fresh;
      await fresh.open().catch(() => undefined);
    }),
  );
  return stale.length;
}
