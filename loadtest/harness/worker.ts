// A client worker process (forked by workers.ts): holds thousands of Socket.IO clients and SSE streams in named groups, offers load
// at a rate, records what arrives, and answers the parent's requests (messages.ts) over IPC.
import type { Peek, PublishTotals, Reply, Request, RpcTotals } from './messages.js';
import { startCalling, startPublishing, type Running } from './worker/load.js';
import { Recorder } from './worker/recorder.js';
import { connectStreams, reopenStreams, type SseStream } from './worker/sse.js';
import { Subscribers, type Sub } from './worker/subscribers.js';

interface Group {
  subs: Sub[];
  streams: SseStream[];
  publisher?: Running<PublishTotals>;
  rpc?: Running<RpcTotals>;
  stopChurn?: () => void;
}

const rec = new Recorder();
const subscribers = new Subscribers(rec);
const groups = new Map<string, Group>();

function group(name: string): Group {
  let g = groups.get(name);
  if (!g) {
    g = { subs: [], streams: [] };
    groups.set(name, g);
  }
  return g;
}

function connected(g: Group) {
  return g.subs.filter((s) => !s.down).map((s) => s.client);
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'connect':
      return subscribers.connect(group(req.group).subs, req);
    case 'subscribe':
      return subscribers.subscribe(group(req.group).subs, req.plan, req.offset, req.concurrency);
    case 'sseConnect':
      return connectStreams(group(req.group).streams, rec, req);
    case 'sseLive':
      return group(req.group).streams.filter((s) => s.live).length;
    case 'sseReopen':
      return reopenStreams(group(req.group).streams);
    case 'publishStart': {
      const g = group(req.group);
      if (g.publisher) throw new Error(`group ${req.group} is already publishing`);
      g.publisher = startPublishing(rec, { ...req, client: connected(g)[0] });
      return undefined;
    }
    case 'publishStop': {
      const g = group(req.group);
      if (!g.publisher) throw new Error(`group ${req.group} is not publishing`);
      const p = g.publisher;
      g.publisher = undefined;
      return p.stop();
    }
    case 'rpcStart': {
      const g = group(req.group);
      if (g.rpc) throw new Error(`group ${req.group} is already calling`);
      g.rpc = startCalling(rec, connected(g), req);
      return undefined;
    }
    case 'rpcStop': {
      const g = group(req.group);
      if (!g.rpc) throw new Error(`group ${req.group} is not calling`);
      const r = g.rpc;
      g.rpc = undefined;
      return r.stop();
    }
    case 'churnStart': {
      const g = group(req.group);
      g.stopChurn?.();
      g.stopChurn = subscribers.churn(g.subs, req.intervalMs, req.fraction, req.localAddress);
      return undefined;
    }
    case 'churnStop': {
      const g = group(req.group);
      g.stopChurn?.();
      g.stopChurn = undefined;
      return undefined;
    }
    case 'tail':
      return { lost: subscribers.tail(group(req.group).subs, req.finals) };
    case 'peek': {
      const out: Peek = { received: rec.received, pubAcked: 0, rpcOk: 0, connected: 0 };
      for (const g of groups.values()) {
        for (const s of g.subs) if (s.client.connected) out.connected++;
        for (const s of g.streams) if (s.connected) out.connected++;
        out.pubAcked += g.publisher?.totals.acked ?? 0;
        out.rpcOk += g.rpc?.totals.ok ?? 0;
      }
      return out;
    }
    case 'stats':
      return rec.stats(req.reset);
    case 'totals':
      return rec.totals(req.reset);
    case 'close': {
      const g = groups.get(req.group);
      if (!g) return { closed: 0 };
      groups.delete(req.group);
      g.stopChurn?.();
      await Promise.all([g.publisher?.stop(), g.rpc?.stop()]);
      for (const s of g.subs) s.client.close();
      for (const s of g.streams) s.close();
      return { closed: g.subs.length + g.streams.length };
    }
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
