// Subscriber connections of a worker: connect in bounded parallel, subscribe by channel plan, account for every
// publication (latency, per-stream sequence), reconnect with `since` under churn, and report tail shortfalls.
import { SeqTracker, isBenchData, isMeta } from '../../k6/lib/protocol.js';
import { nowUs } from '../clock.js';
import { encode, newHistogram } from '../histogram.js';
import { channelsOf, type ChannelPlan, type ConnectResult, type SubscribeResult } from '../messages.js';
import { SioClient } from '../sio-client.js';
import { describe, noteError, type Recorder } from './recorder.js';

/** One logical client: survives its own reconnects, keeping its sequence bookkeeping. */
export interface Sub {
  client: SioClient;
  url: string;
  channels: string[];
  seq: SeqTracker;
  lastId: Map<string, string>;
  /** Channels whose stream was restarted by a resubscribe that did not recover. */
  resetChannels: Set<string>;
  down: boolean;
}

/** Runs fn(0..n-1) with at most `concurrency` in flight. */
export async function inPool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, async () => {
    while (next < n) await fn(next++);
  });
  await Promise.all(lanes);
}

export class Subscribers {
  constructor(private readonly rec: Recorder) {}

  private onPublication(sub: Sub, args: unknown[]): void {
    const data = args[0];
    const meta = args[1];
    if (!isBenchData(data) || !isMeta(meta)) {
      this.rec.win.malformed++;
      return;
    }
    this.rec.delivered(meta.channel, nowUs() - data.t);
    this.rec.sequenced(sub.seq, meta.channel, data);
    sub.lastId.set(meta.channel, meta.id);
  }

  private newClient(sub: Sub, url: string, localAddress: string): SioClient {
    return new SioClient(
      url,
      localAddress,
      (_c, _name, args) => this.onPublication(sub, args),
      () => {
        sub.down = true;
        this.rec.win.disconnects++;
      },
    );
  }

  /** Connects `count` clients into `into`; client i is number `offset + i` across all workers. */
  async connect(
    into: Sub[],
    o: { urls: string[]; offset: number; count: number; concurrency: number; localAddress: string; strictSeq: boolean },
  ): Promise<ConnectResult> {
    const hist = newHistogram();
    const res: ConnectResult = { ok: 0, failed: 0, handshake: '', t0: nowUs(), t1: 0, errors: [] };
    const base = into.length;
    await inPool(o.count, o.concurrency, async (i) => {
      const url = o.urls[(o.offset + i) % o.urls.length]!;
      const sub: Sub = {
        client: undefined as unknown as SioClient,
        url,
        channels: [],
        seq: new SeqTracker(o.strictSeq),
        lastId: new Map(),
        resetChannels: new Set(),
        down: true,
      };
      sub.client = this.newClient(sub, url, o.localAddress);
      into[base + i] = sub;
      try {
        hist.recordValue(await sub.client.connect());
        sub.down = false;
        res.ok++;
      } catch (err) {
        res.failed++;
        noteError(res.errors, (err as Error).message);
      }
    });
    res.t1 = nowUs();
    res.handshake = encode(hist);
    return res;
  }

  /** Subscribes every connected client to its channels under `plan` (client i is number `offset + i`). */
  async subscribe(subs: Sub[], plan: ChannelPlan, offset: number, concurrency: number): Promise<SubscribeResult> {
    const hist = newHistogram();
    const res: SubscribeResult = { ok: 0, failed: 0, byChannel: {}, ackLatency: '', errors: [] };
    const jobs: Array<{ sub: Sub; channel: string }> = [];
    subs.forEach((sub, i) => {
      if (sub.down) return;
      sub.channels = channelsOf(plan, offset + i);
      for (const channel of sub.channels) jobs.push({ sub, channel });
    });
    await inPool(jobs.length, concurrency, async (i) => {
      const { sub, channel } = jobs[i]!;
      const t0 = nowUs();
      try {
        const ack = (await sub.client.call('subscribe', [channel, {}])) as { ok?: boolean } | undefined;
        if (ack?.ok !== true) throw new Error(describe(ack));
        hist.recordValue(nowUs() - t0);
        res.ok++;
        res.byChannel[channel] = (res.byChannel[channel] ?? 0) + 1;
      } catch (err) {
        res.failed++;
        noteError(res.errors, `subscribe: ${(err as Error).message}`);
      }
    });
    res.ackLatency = encode(hist);
    return res;
  }

  /** Drops a client's connection, reconnects and resubscribes each channel with `since` = the last id it saw. */
  async reconnect(sub: Sub, localAddress: string): Promise<void> {
    const win = this.rec.win;
    sub.client.close(true);
    sub.down = true;
    sub.client = this.newClient(sub, sub.url, localAddress);
    try {
      await sub.client.connect();
    } catch (err) {
      win.reconnectFailures++;
      noteError(win.errors, `reconnect: ${(err as Error).message}`);
      return;
    }
    sub.down = false;
    win.reconnects++;
    for (const channel of sub.channels) {
      const since = sub.lastId.get(channel);
      // A publication can overtake the ack (joined, then acked): if the ack then says "not recovered", the gap that
      // publication showed is the restart the ack announces, not a loss. One channel per subscriber makes this exact.
      const lost0 = sub.seq.lost;
      const gaps0 = sub.seq.gaps;
      try {
        const ack = (await sub.client.call('subscribe', [channel, since ? { since } : {}])) as
          { ok?: boolean; recovered?: boolean; replayed?: number } | undefined;
        if (ack?.ok !== true) throw new Error(describe(ack));
        win.replayed += ack.replayed ?? 0;
        if (ack.recovered !== true) {
          if (sub.channels.length === 1) {
            win.seqLost -= sub.seq.lost - lost0;
            win.seqGaps -= sub.seq.gaps - gaps0;
          }
          win.unrecovered++;
          sub.seq.reset(channel);
          sub.resetChannels.add(channel);
        }
      } catch (err) {
        win.reconnectFailures++;
        noteError(win.errors, `resubscribe: ${(err as Error).message}`);
      }
    }
  }

  /** Every `intervalMs`, reconnects `fraction` of `subs` (the ones that are down first). Returns the stopper. */
  churn(subs: Sub[], intervalMs: number, fraction: number, localAddress: string): () => void {
    let next = 0;
    let busy = false;
    const timer = setInterval(() => {
      if (busy || subs.length === 0) return;
      busy = true;
      const n = Math.min(subs.length, Math.max(1, Math.round(subs.length * fraction)));
      const picked = new Set<Sub>(subs.filter((s) => s.down));
      while (picked.size < n) picked.add(subs[next++ % subs.length]!);
      void Promise.all([...picked].map((s) => this.reconnect(s, localAddress))).finally(() => (busy = false));
    }, intervalMs);
    return () => clearInterval(timer);
  }

  /** Sequence numbers published (per channel, per stream: `finals`) but never seen by these subscribers. */
  tail(subs: Sub[], finals: Record<string, Record<string, number>>): number {
    let lost = 0;
    for (const sub of subs) {
      for (const channel of sub.channels) {
        const f = finals[channel];
        if (!f) continue;
        const seen = sub.seq.highest(channel);
        for (const [stream, final] of Object.entries(f)) {
          const h = seen.get(stream);
          if (h === undefined) {
            if (!sub.resetChannels.has(channel)) lost += final;
          } else if (final > h) lost += final - h;
        }
      }
    }
    return lost;
  }
}
