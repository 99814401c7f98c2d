// A client worker process (forked by workers.ts): holds thousands of Socket.IO clients, publishes and calls at a
// rate, records end-to-end latency in an HDR histogram, and answers the parent's requests over IPC.
import http from 'node:http';
import { SeqTracker, isBenchData, isMeta, pad } from '../k6/lib/protocol.js';
import { nowUs } from './clock.js';
import { encode, newHistogram } from './histogram.js';
import { channelsOf, type ConnectResult, type Peek, type PublishTotals, type Reply, type Request, type RpcTotals, type SubscribeResult, type Totals, type WindowStats } from './messages.js';
import { SioClient } from './sio-client.js';

const MAX_SOCKET_IN_FLIGHT = 5000;
const MAX_HTTP_IN_FLIGHT = 256;
const MAX_ERRORS = 5;

interface Sub {
  client: SioClient;
  url: string;
  g: number;
  channels: string[];
  seq: SeqTracker;
  lastId: Map<string, string>;
  /** Channels whose stream was reset by a resubscribe that did not recover. */
  resetChannels: Set<string>;
  down: boolean;
}

interface Loop {
  stop(): void;
}

interface Group {
  subs: Sub[];
  publisher?: { loop: Loop; totals: PublishTotals; inFlight: () => number };
  rpc?: { loop: Loop; totals: RpcTotals; inFlight: () => number };
  churn?: NodeJS.Timeout;
}

const groups = new Map<string, Group>();

// Window counters (reset by `stats` with reset).
let win = freshWindow();
let latency = newHistogram();
let ackLatency = newHistogram();
let cpu0 = process.cpuUsage();
let win0 = nowUs();
// Session totals (reset by `totals` with reset): what subscribers received, per channel.
let received = 0;
let byChannel = new Map<string, number>();

function freshWindow(): Omit<WindowStats, 'latency' | 'ackLatency' | 'cpuUs' | 'windowUs'> {
  return {
    received: 0,
    pubSent: 0,
    pubAcked: 0,
    pubFailed: 0,
    pubBehind: 0,
    rpcOk: 0,
    rpcFailed: 0,
    rpcBehind: 0,
    seqLost: 0,
    seqGaps: 0,
    seqLate: 0,
    malformed: 0,
    disconnects: 0,
    reconnects: 0,
    reconnectFailures: 0,
    unrecovered: 0,
    replayed: 0,
    errors: [],
  };
}

function noteError(list: string[], msg: string): void {
  if (list.length < MAX_ERRORS && !list.includes(msg)) list.push(msg);
}

function describe(res: unknown): string {
  const e = (res as { error?: { code?: string; message?: string } } | undefined)?.error;
  return e ? `${e.code}: ${e.message}` : JSON.stringify(res)?.slice(0, 200) ?? String(res);
}

function onPublication(sub: Sub, _name: string, args: unknown[]): void {
  const data = args[0];
  const meta = args[1];
  if (!isBenchData(data) || !isMeta(meta)) {
    win.malformed++;
    return;
  }
  const lat = nowUs() - data.t;
  latency.recordValue(lat > 0 ? lat : 0);
  win.received++;
  received++;
  byChannel.set(meta.channel, (byChannel.get(meta.channel) ?? 0) + 1);
  const before = sub.seq.lost;
  const gapsBefore = sub.seq.gaps;
  const lateBefore = sub.seq.late;
  sub.seq.see(meta.channel, data.p, data.s);
  win.seqLost += sub.seq.lost - before;
  win.seqGaps += sub.seq.gaps - gapsBefore;
  win.seqLate += sub.seq.late - lateBefore;
  sub.lastId.set(meta.channel, meta.id);
}

function onLost(sub: Sub): void {
  sub.down = true;
  win.disconnects++;
}

function newClient(sub: Sub, url: string, localAddress: string): SioClient {
  return new SioClient(url, localAddress, (_c, name, args) => onPublication(sub, name, args), () => onLost(sub));
}

/** Runs fn(0..n-1) with at most `concurrency` in flight. */
async function inPool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, async () => {
    while (next < n) await fn(next++);
  });
  await Promise.all(lanes);
}

function group(name: string): Group {
  let g = groups.get(name);
  if (!g) {
    g = { subs: [] };
    groups.set(name, g);
  }
  return g;
}

async function connect(req: Extract<Request, { op: 'connect' }>): Promise<ConnectResult> {
  const g = group(req.group);
  const hist = newHistogram();
  const res: ConnectResult = { ok: 0, failed: 0, handshake: '', t0: nowUs(), t1: 0, errors: [] };
  const base = g.subs.length;
  await inPool(req.count, req.concurrency, async (i) => {
    const gi = req.offset + i;
    const url = req.urls[gi % req.urls.length]!;
    const sub: Sub = {
      client: undefined as unknown as SioClient,
      url,
      g: gi,
      channels: [],
      seq: new SeqTracker(req.strictSeq),
      lastId: new Map(),
      resetChannels: new Set(),
      down: true,
    };
    sub.client = newClient(sub, url, req.localAddress);
    g.subs[base + i] = sub;
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

async function subscribe(req: Extract<Request, { op: 'subscribe' }>): Promise<SubscribeResult> {
  const g = group(req.group);
  const hist = newHistogram();
  const res: SubscribeResult = { ok: 0, failed: 0, byChannel: {}, ackLatency: '', errors: [] };
  const jobs: Array<{ sub: Sub; channel: string }> = [];
  g.subs.forEach((sub, i) => {
    if (sub.down) return;
    sub.channels = channelsOf(req.plan, req.offset + i);
    for (const channel of sub.channels) jobs.push({ sub, channel });
  });
  await inPool(jobs.length, req.concurrency, async (i) => {
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

/** Calls `fire` `rate` times a second, catching up after short stalls; skips (and counts) what falls too far behind. */
function rateLoop(rate: number, fire: () => void, onBehind: (n: number) => void): Loop {
  const start = performance.now();
  let done = 0;
  const maxBurst = Math.max(5, Math.ceil(rate * 0.5));
  const timer = setInterval(
    () => {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      let n = due - done;
      if (n > maxBurst) {
        onBehind(n - maxBurst);
        n = maxBurst;
        done = due - n;
      }
      for (let i = 0; i < n; i++) fire();
      done += n;
    },
    rate >= 200 ? 2 : 5,
  );
  return { stop: () => clearInterval(timer) };
}

function httpPoster(url: string, apiKey: string, localAddress: string) {
  const target = new URL('/api/publish', url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, localAddress });
  return {
    post(body: string): Promise<{ status: number; body: string }> {
      return new Promise((resolve, reject) => {
        const req = http.request(
          target,
          { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}`, 'content-length': Buffer.byteLength(body) }, timeout: 10_000 },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error('HTTP publish timed out')));
        req.on('error', reject);
        req.end(body);
      });
    },
    close: () => agent.destroy(),
  };
}

function publishStart(req: Extract<Request, { op: 'publishStart' }>): void {
  const g = group(req.group);
  if (g.publisher) throw new Error(`group ${req.group} is already publishing`);
  const totals: PublishTotals = { sent: 0, acked: 0, failed: 0, ackedByChannel: {}, finalSeq: {}, stream: req.stream, errors: [] };
  const padding = pad(req.payloadBytes);
  const client = g.subs.find((s) => !s.down)?.client;
  if (req.via === 'socket' && !client) throw new Error(`group ${req.group} has no connected client to publish from`);
  const poster = req.via === 'http' ? httpPoster(req.httpUrl, req.apiKey, req.localAddress) : undefined;
  let rr = 0;
  let inFlight = 0;
  const fire = () => {
    if (inFlight >= (poster ? MAX_HTTP_IN_FLIGHT : MAX_SOCKET_IN_FLIGHT)) {
      win.pubBehind++;
      return;
    }
    const channel = req.channels[rr++ % req.channels.length]!;
    const s = (totals.finalSeq[channel] ?? 0) + 1;
    totals.finalSeq[channel] = s;
    const t = nowUs();
    const data = { p: req.stream, s, t, pad: padding };
    totals.sent++;
    win.pubSent++;
    inFlight++;
    const done = (ok: boolean, why?: string) => {
      inFlight--;
      if (ok) {
        totals.acked++;
        win.pubAcked++;
        totals.ackedByChannel[channel] = (totals.ackedByChannel[channel] ?? 0) + 1;
        ackLatency.recordValue(nowUs() - t);
      } else {
        totals.failed++;
        win.pubFailed++;
        noteError(totals.errors, `publish: ${why}`);
      }
    };
    if (poster) {
      poster.post(JSON.stringify({ channel, event: req.event, data })).then(
        (r) => done(r.status === 200, `HTTP ${r.status} ${r.body.slice(0, 200)}`),
        (err: Error) => done(false, err.message),
      );
    } else {
      client!.call('publish', [channel, req.event, data]).then(
        (ack) => done((ack as { ok?: boolean } | undefined)?.ok === true, describe(ack)),
        (err: Error) => done(false, err.message),
      );
    }
  };
  const loop = rateLoop(req.rate, fire, (n) => (win.pubBehind += n));
  g.publisher = {
    loop: { stop: () => (loop.stop(), poster && setTimeout(() => poster.close(), 15_000).unref()) },
    totals,
    inFlight: () => inFlight,
  };
}

/** Stops publishing, waits (bounded) for the acks still in flight, and returns the publisher's totals. */
async function publishStop(req: Extract<Request, { op: 'publishStop' }>): Promise<PublishTotals> {
  const g = group(req.group);
  const p = g.publisher;
  if (!p) throw new Error(`group ${req.group} is not publishing`);
  p.loop.stop();
  const deadline = Date.now() + 12_000;
  while (p.inFlight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  g.publisher = undefined;
  return p.totals;
}

function rpcStart(req: Extract<Request, { op: 'rpcStart' }>): void {
  const g = group(req.group);
  const clients = g.subs.filter((s) => !s.down).map((s) => s.client);
  if (clients.length === 0) throw new Error(`group ${req.group} has no connected client`);
  const totals: RpcTotals = { calls: 0, ok: 0, failed: 0, errors: [] };
  const padding = pad(req.payloadBytes);
  let rr = 0;
  let inFlight = 0;
  const fire = () => {
    if (inFlight >= MAX_SOCKET_IN_FLIGHT) {
      win.rpcBehind++;
      return;
    }
    const client = clients[rr++ % clients.length]!;
    const t = nowUs();
    const params = { n: totals.calls, pad: padding };
    totals.calls++;
    inFlight++;
    client.call('rpc', [req.method, params]).then(
      (ack) => {
        inFlight--;
        const a = ack as { ok?: boolean; result?: { n?: number } } | undefined;
        if (a?.ok === true && a.result?.n === params.n) {
          totals.ok++;
          win.rpcOk++;
          ackLatency.recordValue(nowUs() - t);
        } else {
          totals.failed++;
          win.rpcFailed++;
          noteError(totals.errors, `rpc: ${describe(ack)}`);
        }
      },
      (err: Error) => {
        inFlight--;
        totals.failed++;
        win.rpcFailed++;
        noteError(totals.errors, `rpc: ${err.message}`);
      },
    );
  };
  g.rpc = { loop: rateLoop(req.rate, fire, (n) => (win.rpcBehind += n)), totals, inFlight: () => inFlight };
}

async function rpcStop(req: Extract<Request, { op: 'rpcStop' }>): Promise<RpcTotals> {
  const g = group(req.group);
  const r = g.rpc;
  if (!r) throw new Error(`group ${req.group} is not calling`);
  r.loop.stop();
  const deadline = Date.now() + 12_000;
  while (r.inFlight() > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  g.rpc = undefined;
  return r.totals;
}

/** Drops a subscriber's connection, reconnects and resubscribes each channel with `since` = the last id it saw. */
async function reconnect(sub: Sub, localAddress: string): Promise<void> {
  sub.client.close(true);
  sub.down = true;
  sub.client = newClient(sub, sub.url, localAddress);
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
    try {
      const ack = (await sub.client.call('subscribe', [channel, since ? { since } : {}])) as { ok?: boolean; recovered?: boolean; replayed?: number } | undefined;
      if (ack?.ok !== true) throw new Error(describe(ack));
      win.replayed += ack.replayed ?? 0;
      if (ack.recovered !== true) {
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

function churnStart(req: Extract<Request, { op: 'churnStart' }>): void {
  const g = group(req.group);
  let next = 0;
  let busy = false;
  g.churn = setInterval(() => {
    if (busy || g.subs.length === 0) return;
    busy = true;
    const n = Math.max(1, Math.round(g.subs.length * req.fraction));
    const picked = new Set<Sub>(g.subs.filter((s) => s.down));
    while (picked.size < Math.min(n, g.subs.length)) picked.add(g.subs[next++ % g.subs.length]!);
    void Promise.all([...picked].map((s) => reconnect(s, req.localAddress))).finally(() => (busy = false));
  }, req.intervalMs);
}

/** Shortfall at the end: sequence numbers published but never seen, per subscribed stream. */
function tail(req: Extract<Request, { op: 'tail' }>): { lost: number } {
  let lost = 0;
  for (const sub of group(req.group).subs) {
    for (const channel of sub.channels) {
      const finals = req.finals[channel];
      if (!finals) continue;
      const seen = sub.seq.highest(channel);
      for (const [stream, final] of Object.entries(finals)) {
        const h = seen.get(stream);
        if (h === undefined) {
          if (!sub.resetChannels.has(channel)) lost += final;
        } else if (final > h) lost += final - h;
      }
    }
  }
  return { lost };
}

async function close(req: Extract<Request, { op: 'close' }>): Promise<{ closed: number }> {
  const g = groups.get(req.group);
  if (!g) return { closed: 0 };
  if (g.churn) clearInterval(g.churn);
  g.publisher?.loop.stop();
  g.rpc?.loop.stop();
  for (const s of g.subs) s.client.close();
  groups.delete(req.group);
  return { closed: g.subs.length };
}

function stats(reset: boolean): WindowStats {
  const cpu = process.cpuUsage(cpu0);
  const out: WindowStats = {
    ...win,
    latency: encode(latency),
    ackLatency: encode(ackLatency),
    cpuUs: cpu.user + cpu.system,
    windowUs: nowUs() - win0,
  };
  if (reset) {
    win = freshWindow();
    latency = newHistogram();
    ackLatency = newHistogram();
    cpu0 = process.cpuUsage();
    win0 = nowUs();
  }
  return out;
}

function peek(): Peek {
  let connected = 0;
  for (const g of groups.values()) for (const s of g.subs) if (s.client.connected) connected++;
  let pubAcked = 0;
  let rpcOk = 0;
  for (const g of groups.values()) {
    pubAcked += g.publisher?.totals.acked ?? 0;
    rpcOk += g.rpc?.totals.ok ?? 0;
  }
  return { received, pubAcked, rpcOk, connected };
}

function totals(reset: boolean): Totals {
  const out = { received, byChannel: Object.fromEntries(byChannel) };
  if (reset) {
    received = 0;
    byChannel = new Map();
  }
  return out;
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'connect':
      return connect(req);
    case 'subscribe':
      return subscribe(req);
    case 'publishStart':
      return publishStart(req);
    case 'publishStop':
      return publishStop(req);
    case 'rpcStart':
      return rpcStart(req);
    case 'rpcStop':
      return rpcStop(req);
    case 'churnStart':
      return churnStart(req);
    case 'churnStop': {
      const g = group(req.group);
      if (g.churn) clearInterval(g.churn);
      g.churn = undefined;
      return undefined;
    }
    case 'tail':
      return tail(req);
    case 'peek':
      return peek();
    case 'stats':
      return stats(req.reset);
    case 'totals':
      return totals(req.reset);
    case 'close':
      return close(req);
    case 'exit':
      setImmediate(() => process.exit(0));
      return undefined;
  }
}

// Ack deadlines: one sweep over every client instead of a timer per call.
setInterval(() => {
  const now = Date.now();
  for (const g of groups.values()) for (const s of g.subs) if (s.client.inFlight > 0) s.client.sweep(now);
}, 500).unref();

process.on('message', (msg: Request & { id: number }) => {
  handle(msg).then(
    (result) => process.send!({ id: msg.id, ok: true, result } satisfies Reply),
    (err: Error) => process.send!({ id: msg.id, ok: false, error: err.stack ?? err.message } satisfies Reply),
  );
});
// The harness went away (even by kill -9): nothing here may outlive it.
process.on('disconnect', () => process.exit(0));
