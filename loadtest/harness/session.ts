// The building blocks every scenario runner uses: the run context, window-stat merging, and a publish/subscribe
// session (subscribers on chosen nodes, publishers on one node, phases at a given rate with exact loss accounting).
import type { Processes } from './proc.js';
import { engineUrl } from '../k6/lib/protocol.js';
import { nowUs, sleep } from './clock.js';
import type { Cluster, Clusters } from './cluster.js';
import { mergeEncoded } from './histogram.js';
import { mergeWindows, type MergedWindow, type PhaseResult } from './aggregate.js';
import {
  channelName,
  publishBody,
  type ChannelPlan,
  type SseConnectResult,
  type ConnectResult,
  type Peek,
  type PublishTotals,
  type PublishVia,
  type SubscribeResult,
  type Totals,
  type WindowStats,
} from './messages.js';
import type { Progress } from './progress.js';
import { split, type Addresses, type WorkerPool } from './workers.js';

export interface Ctx {
  pool: WorkerPool;
  clusters: Clusters;
  /** Every process the run started (scenarios that start their own, like bus-capacity, register them here). */
  registry: Processes;
  addresses: Addresses;
  progress: Progress;
  signal: AbortSignal;
  apiKey: string;
  /** Short id that makes this run's channel names unique. */
  runId: string;
  smoke: boolean;
}

/** Systems in round `r`: as given on even rounds, reversed on odd ones (ABC, CBA, …) to cancel drift. */
export function roundOrder<T>(systems: readonly T[], r: number): T[] {
  return r % 2 === 0 ? [...systems] : [...systems].reverse();
}

let uid = 0;
export const nextId = (prefix: string) => `${prefix}${++uid}`;

/** Received-so-far rate for the progress line. */
export function rateSampler(ctx: Ctx): () => Promise<string> {
  let last = { t: Date.now(), received: 0, pub: 0, rpc: 0 };
  let first = true;
  return async () => {
    const peeks = await ctx.pool.all<Peek>(() => ({ op: 'peek' }));
    const now = { t: Date.now(), received: 0, pub: 0, rpc: 0 };
    let connected = 0;
    for (const p of peeks) {
      now.received += p.received;
      now.pub += p.pubAcked;
      now.rpc += p.rpcOk;
      connected += p.connected;
    }
    const dt = (now.t - last.t) / 1000;
    const fmt = (n: number) => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));
    const text = first
      ? `${connected} connected`
      : `${connected} connected · ${fmt((now.received - last.received) / dt)} deliveries/s · ${fmt((now.pub - last.pub) / dt)} pub/s${now.rpc ? ` · ${fmt((now.rpc - last.rpc) / dt)} rpc/s` : ''}`;
    first = false;
    last = now;
    return text;
  };
}

/** Connects `total` clients spread over the workers (client g → urls[g % urls.length]). */
export async function connectClients(
  ctx: Ctx,
  group: string,
  total: number,
  urls: string[],
  concurrency: number,
  strictSeq = false,
): Promise<ConnectResult[]> {
  const parts = split(total, ctx.pool.size);
  const per = Math.max(1, Math.ceil(concurrency / ctx.pool.size));
  return ctx.pool.all<ConnectResult>((i) => {
    const [count, offset] = parts[i]!;
    if (count === 0) return undefined;
    return { op: 'connect', group, urls, offset, count, concurrency: per, localAddress: ctx.addresses.next(), strictSeq };
  });
}

export function sumConnect(rs: readonly ConnectResult[]) {
  const hist = mergeEncoded(rs.map((r) => r.handshake));
  return {
    ok: rs.reduce((a, r) => a + r.ok, 0),
    failed: rs.reduce((a, r) => a + r.failed, 0),
    hist,
    seconds: rs.length ? (Math.max(...rs.map((r) => r.t1)) - Math.min(...rs.map((r) => r.t0))) / 1e6 : 0,
    errors: [...new Set(rs.flatMap((r) => r.errors))].slice(0, 5),
  };
}

export async function closeGroup(ctx: Ctx, group: string): Promise<void> {
  await ctx.pool.all(() => ({ op: 'close', group }));
}

export interface PubSubSetup {
  label: string;
  cluster: Cluster;
  subscribers: number;
  /** Node indexes the subscribers spread over. */
  subscriberNodes: number[];
  plan: ChannelPlan;
  publisherNode: number;
  publishVia: PublishVia;
  /** `sio` (default): Socket.IO clients that subscribe; `sse`: one SSE stream per subscriber. */
  transport?: 'sio' | 'sse';
  event: string;
  payloadBytes: number;
  /** Every stream must start at 1 at every subscriber (soak: seq-based loss with churn). */
  strictSeq: boolean;
}

export interface PhaseOptions {
  /** Publications per second over all publishers. */
  rate: number;
  warmupSeconds: number;
  measureSeconds: number;
  churn?: { intervalSeconds: number; fraction: number };
  /** Sample RSS of every node this often during the measured window. */
  rssSampleSeconds?: number;
  status: string;
}

/** Subscribers and publishers held open across one or more phases (rate steps reuse one session). */
export class PubSubSession {
  private subsGroup = nextId('sub');
  private pubGroup = nextId('pub');
  private phaseNo = 0;
  /** Successful subscriptions per channel (exact expected deliveries). */
  subsByChannel: Record<string, number> = {};
  connectErrors = 0;
  subscribeErrors = 0;
  errors: string[] = [];
  channels: string[];

  constructor(
    private readonly ctx: Ctx,
    readonly setup: PubSubSetup,
  ) {
    this.channels = Array.from({ length: setup.plan.channels }, (_, i) => channelName(setup.plan.prefix, i));
  }

  /** Mean subscribers per channel: deliveries per publication. */
  get fanout(): number {
    const counts = Object.values(this.subsByChannel);
    return counts.length ? counts.reduce((a, b) => a + b, 0) / this.channels.length : 0;
  }

  async open(): Promise<void> {
    if (this.setup.transport === 'sse') return this.openStreams();
    const { ctx, setup } = this;
    const urls = setup.subscriberNodes.map((n) => engineUrl(setup.cluster.nodes[n]!.url));
    ctx.progress.status(`connecting ${setup.subscribers} subscribers`);
    const conn = sumConnect(await connectClients(ctx, this.subsGroup, setup.subscribers, urls, ctx.smoke ? 50 : 400, setup.strictSeq));
    this.connectErrors += conn.failed;
    this.errors.push(...conn.errors);
    ctx.progress.status(`subscribing ${conn.ok} × ${setup.plan.perClient}`);
    const parts = split(setup.subscribers, ctx.pool.size);
    const subs = await ctx.pool.all<SubscribeResult>((i) => {
      const [count, offset] = parts[i]!;
      return count ? { op: 'subscribe', group: this.subsGroup, plan: setup.plan, offset, concurrency: 200 } : undefined;
    });
    for (const s of subs) {
      this.subscribeErrors += s.failed;
      for (const [ch, n] of Object.entries(s.byChannel)) this.subsByChannel[ch] = (this.subsByChannel[ch] ?? 0) + n;
      this.errors.push(...s.errors);
    }
    if (setup.publishVia === 'socket') {
      const pubUrl = engineUrl(setup.cluster.nodes[setup.publisherNode]!.url);
      const rs = await ctx.pool.all<ConnectResult>(() => ({
        op: 'connect',
        group: this.pubGroup,
        urls: [pubUrl],
        offset: 0,
        count: 1,
        concurrency: 1,
        localAddress: ctx.addresses.next(),
        strictSeq: false,
      }));
      const pc = sumConnect(rs);
      this.connectErrors += pc.failed;
      this.errors.push(...pc.errors);
      if (pc.ok === 0) throw new Error(`no publisher could connect: ${pc.errors.join('; ')}`);
    }
    this.errors = [...new Set(this.errors)].slice(0, 10);
  }

  /** Where publications go: the publisher node's publish URL (Pushpin's publish port) or its public URL. */
  private get publishUrl(): string {
    const n = this.setup.cluster.nodes[this.setup.publisherNode]!;
    return n.publishUrl ?? n.url;
  }

  /**
   * SSE: one stream per subscriber (`GET /sse?channel=…`). A stream answers before its subscription is live (both
   * Switchboard and Pushpin subscribe after the response starts), so fence publications go to every channel until
   * every stream has seen one: only then can a phase count exact loss.
   */
  private async openStreams(): Promise<void> {
    const { ctx, setup } = this;
    const urls = setup.subscriberNodes.map((n) => `${setup.cluster.nodes[n]!.url}/sse`);
    ctx.progress.status(`opening ${setup.subscribers} SSE streams`);
    const parts = split(setup.subscribers, ctx.pool.size);
    const rs = await ctx.pool.all<SseConnectResult>((i) => {
      const [count, offset] = parts[i]!;
      const concurrency = Math.max(1, Math.ceil((ctx.smoke ? 50 : 400) / ctx.pool.size));
      return count
        ? {
            op: 'sseConnect',
            group: this.subsGroup,
            urls,
            plan: setup.plan,
            offset,
            count,
            concurrency,
            localAddress: ctx.addresses.next(),
          }
        : undefined;
    });
    for (const r of rs) {
      this.connectErrors += r.failed;
      for (const [ch, n] of Object.entries(r.byChannel)) this.subsByChannel[ch] = (this.subsByChannel[ch] ?? 0) + n;
      this.errors.push(...r.errors);
    }
    const opened = rs.reduce((a, r) => a + r.ok, 0);
    ctx.progress.status(`waiting for ${opened} streams to go live`);
    const start = Date.now();
    const deadline = start + 30_000;
    let reopenAt = start + 10_000;
    let reopened = 0;
    for (let n = 1; ; n++) {
      await Promise.all(this.channels.map((ch) => publishOnce(setup.publishVia, this.publishUrl, ctx.apiKey, ch, 'fence', { fence: n })));
      await sleep(100, ctx.signal);
      const live = (await ctx.pool.all<number>(() => ({ op: 'sseLive', group: this.subsGroup }))).reduce((a, b) => a + b, 0);
      if (live >= opened) break;
      if (Date.now() > deadline)
        throw new Error(`only ${live} of ${opened} SSE streams went live within 30 s (${reopened} opened again on the way)`);
      // A stream the server answered but never subscribed (Pushpin 1.36 on a loaded machine, a few in a thousand)
      // gets one more chance every 10 s, like a browser's EventSource reconnecting.
      if (Date.now() > reopenAt) {
        const n = (await ctx.pool.all<number>(() => ({ op: 'sseReopen', group: this.subsGroup }))).reduce((a, b) => a + b, 0);
        reopened += n;
        ctx.progress.log(`  ${n} of ${opened} SSE streams not live after ${Math.round((Date.now() - start) / 1000)} s: opened again`);
        reopenAt = Date.now() + 10_000;
      }
    }
    this.errors = [...new Set(this.errors)].slice(0, 10);
  }

  /** One phase at `rate`: warm up, measure, stop, drain, account for every publication. */
  async phase(o: PhaseOptions): Promise<PhaseResult> {
    const { ctx, setup } = this;
    const phase = ++this.phaseNo;
    const cluster = setup.cluster;
    await ctx.pool.all(() => ({ op: 'totals', reset: true }));
    await ctx.pool.all(() => ({ op: 'stats', reset: true })); // nothing from before this phase counts
    const pubRate = o.rate / ctx.pool.size;
    const pubUrl = this.publishUrl;
    await ctx.pool.all(
      (i) =>
        ({
          op: 'publishStart',
          group: this.pubGroup,
          via: setup.publishVia,
          rate: pubRate,
          channels: this.channels,
          event: setup.event,
          payloadBytes: setup.payloadBytes,
          stream: `${setup.label}.${phase}.${i}`,
          httpUrl: pubUrl,
          apiKey: ctx.apiKey,
          localAddress: ctx.addresses.next(),
        }) as const,
    );
    if (o.churn) {
      const churn = o.churn;
      await ctx.pool.all(() => ({
        op: 'churnStart',
        group: this.subsGroup,
        intervalMs: churn.intervalSeconds * 1000,
        fraction: churn.fraction,
        localAddress: ctx.addresses.next(),
      }));
    }
    const sampler = rateSampler(ctx);
    const windows: MergedWindow[] = [];
    const collect = async () => windows.push(mergeWindows(await ctx.pool.all<WindowStats>(() => ({ op: 'stats', reset: true }))));
    if (o.warmupSeconds > 0) {
      ctx.progress.phase(`${o.status} · warm-up`);
      await ctx.progress.wait(o.warmupSeconds, ctx.signal, sampler);
    }
    await collect();
    const cpu0 = cluster.cpu();
    const t0 = nowUs();
    ctx.progress.phase(`${o.status} · measuring`);
    const rssSamples: PhaseResult['rssSamples'] = [];
    const sampleRss = () => rssSamples.push({ t: (nowUs() - t0) / 1e6, kib: cluster.nodes.map((_, i) => cluster.rss(i)) });
    if (o.rssSampleSeconds) {
      sampleRss();
      const end = Date.now() + o.measureSeconds * 1000;
      while (Date.now() < end) {
        await ctx.progress.wait(Math.min(o.rssSampleSeconds, (end - Date.now()) / 1000), ctx.signal, sampler);
        sampleRss();
      }
    } else {
      await ctx.progress.wait(o.measureSeconds, ctx.signal, sampler);
    }
    await collect();
    const cpu1 = cluster.cpu();
    const t1 = nowUs();
    const seconds = (t1 - t0) / 1e6;
    if (o.churn) await ctx.pool.all(() => ({ op: 'churnStop', group: this.subsGroup }));
    ctx.progress.status('stopping publishers, draining');
    const pubs = await ctx.pool.all<PublishTotals>(() => ({ op: 'publishStop', group: this.pubGroup }));
    const ackedByChannel: Record<string, number> = {};
    const finals: Record<string, Record<string, number>> = {};
    for (const p of pubs) {
      for (const [ch, n] of Object.entries(p.ackedByChannel)) ackedByChannel[ch] = (ackedByChannel[ch] ?? 0) + n;
      for (const [ch, s] of Object.entries(p.finalSeq)) (finals[ch] ??= {})[p.stream] = s;
    }
    const expected = o.churn ? 0 : Object.entries(ackedByChannel).reduce((a, [ch, n]) => a + n * (this.subsByChannel[ch] ?? 0), 0);
    // Exact accounting waits until everything acknowledged has arrived (bounded); with churn there is no exact
    // expectation, so give in-flight deliveries and replays a fixed moment.
    const received = async () => (await ctx.pool.all<Totals>(() => ({ op: 'totals', reset: false }))).reduce((a, t) => a + t.received, 0);
    let receivedTotal = 0;
    const tailLost = async () =>
      (await ctx.pool.all<{ lost: number }>(() => ({ op: 'tail', group: this.subsGroup, finals }))).reduce((a, t) => a + t.lost, 0);
    if (o.churn) {
      // No exact count with churn: wait until every stream's tail has arrived (resubscribes replay late), or the
      // shortfall stops shrinking for a while, bounded like the exact case.
      const cap = Date.now() + 60_000;
      let lastProgress = Date.now();
      let best = Infinity;
      for (let short = await tailLost(); short > 0 && Date.now() < cap; short = await tailLost()) {
        if (short < best) {
          best = short;
          lastProgress = Date.now();
        } else if (Date.now() - lastProgress > (ctx.smoke ? 1000 : 3000)) break;
        await sleep(50, ctx.signal);
      }
      receivedTotal = await received();
    } else {
      // Until everything arrived, or arrivals stop for a while (the rest is lost), bounded: an overloaded step can
      // leave seconds of backlog in the clients, and the next phase must not start on top of it.
      const cap = Date.now() + 60_000;
      let lastProgress = Date.now();
      let last = -1;
      while ((receivedTotal = await received()) < expected && Date.now() < cap) {
        if (receivedTotal > last) {
          last = receivedTotal;
          lastProgress = Date.now();
        } else if (Date.now() - lastProgress > (ctx.smoke ? 1000 : 3000)) break;
        await sleep(50, ctx.signal);
      }
    }
    await collect();
    let lost: number;
    let extra = 0;
    if (setup.strictSeq) {
      lost = windows.reduce((a, w) => a + w.seqLost, 0) + (await tailLost());
    } else {
      lost = Math.max(0, expected - receivedTotal);
      extra = Math.max(0, receivedTotal - expected);
    }
    const measured = windows[1]!;
    // Sequence and reconnect counts cover the whole phase; latency and rates only the measured window.
    for (const w of [windows[0]!, windows[2]!]) {
      measured.seqGaps += w.seqGaps;
      measured.seqLate += w.seqLate;
      measured.seqLost += w.seqLost;
      measured.reconnects += w.reconnects;
      measured.reconnectFailures += w.reconnectFailures;
      measured.unrecovered += w.unrecovered;
      measured.replayed += w.replayed;
      measured.disconnects += w.disconnects;
      measured.pubFailed += w.pubFailed;
    }
    const published = {
      sent: pubs.reduce((a, p) => a + p.sent, 0),
      acked: pubs.reduce((a, p) => a + p.acked, 0),
      failed: pubs.reduce((a, p) => a + p.failed, 0),
    };
    const errors = [...new Set([...pubs.flatMap((p) => p.errors), ...windows.flatMap((w) => w.errors)])].slice(0, 10);
    return {
      window: measured,
      seconds,
      window0Us: t0,
      window1Us: t1,
      cpu: {
        nodes: cpu1.nodes - cpu0.nodes,
        perNode: cpu1.perNode.map((c, i) => c - (cpu0.perNode[i] ?? 0)),
        redis: cpu1.redis - cpu0.redis,
      },
      expected,
      receivedTotal,
      lost,
      extra,
      published,
      rssSamples,
      errors,
    };
  }

  async close(): Promise<void> {
    await closeGroup(this.ctx, this.subsGroup);
    await closeGroup(this.ctx, this.pubGroup);
  }
}

/** One publication from the harness itself (fences), by the system's publish path. */
export async function publishOnce(
  via: PublishVia,
  baseUrl: string,
  apiKey: string,
  channel: string,
  event: string,
  data: unknown,
): Promise<void> {
  if (via === 'socket') throw new Error('publishOnce speaks HTTP only');
  const res = await fetch(new URL(via === 'grip' ? '/publish/' : '/api/publish', baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify(publishBody(via, channel, event, data)),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`fence publish: HTTP ${res.status} ${text.slice(0, 200)}`);
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
