// Churn: thousands of short-lived clients against two nodes sharing a real Redis — connects over WebSocket,
// long-polling and polling-then-upgrade, subscribes to a mix of presence (`demo:`) and plain channels, presence
// queries, publishes, re-subscribes with `since`, a channel subscribed twice at once, and every way of leaving
// (clean disconnect, a dropped TCP connection, leaving mid-handshake, leaving with requests in flight, a polling
// client that just vanishes).
// Then the end state must be clean: no connections, no subscribers or members on any channel used, the
// subscription and connection gauges at 0, Redis' connection counts released, and the heap back near its start.
// The heap is compared after a full GC, forced from outside through the inspector protocol (each node runs with
// --inspect on a free loopback port): without it, an idle node's heap swings by 15 MB between collections.
//
//   CHURN_SEED=<n>     the seed of the per-cycle choices (default: from the clock; printed at start)
//   CHURN_CYCLES=<n>   connection cycles after the warm-up (default 3000), in batches of CHURN_BATCH (100)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { metricValue } from '../helpers/client.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { Rng, seedFrom } from '../helpers/rng.js';

const SEED = seedFrom('CHURN_SEED');
const CYCLES = Number(process.env.CHURN_CYCLES ?? 3000);
const BATCH = Number(process.env.CHURN_BATCH ?? 100);
const WARMUP = 300;
const HEAP_SLACK = 10 * 1024 * 1024;
const CALL_MS = 8000;

const PRESENCE = Array.from({ length: 8 }, (_, i) => `demo:room-${i}`);
const PLAIN = Array.from({ length: 8 }, (_, i) => `feed:${i}`);
const ALL_CHANNELS = [...PRESENCE, ...PLAIN];
// `demo:` tracks presence and takes client publications; everything else is subscribe-only without presence.
const RULES = JSON.stringify([
  { prefix: '', subscribe: 'anyone', publish: 'nobody', presence: false },
  { prefix: 'demo:', subscribe: 'anyone', publish: 'anyone', presence: true, history: { size: 100 } },
]);
const AUTH = { authorization: 'Bearer test-key-0123456789abcdef' };

type Transport = 'websocket' | 'polling' | 'upgrade';
type Ack = { ok: boolean; error?: { code: string; message: string }; [k: string]: unknown };

async function api<T>(node: TestNode, path: string): Promise<T> {
  const res = await fetch(`${node.url}${path}`, { headers: AUTH, signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as T;
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

/** Runs a full garbage collection in the node through its inspector (HeapProfiler.collectGarbage). */
async function forceGc(node: TestNode): Promise<void> {
  const url = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/\S+)/.exec(node.output())?.[1];
  if (!url) throw new Error(`no inspector URL in the output of ${node.id}`);
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const pending = new Map<number, () => void>();
    ws.on('message', (d) => {
      const id = (JSON.parse(d.toString()) as { id?: number }).id;
      if (id !== undefined) pending.get(id)?.();
    });
    const send = (id: number, method: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${method} not answered by ${node.id}'s inspector`)), 10_000);
        pending.set(id, () => {
          clearTimeout(timer);
          resolve();
        });
        ws.send(JSON.stringify({ id, method }));
      });
    await send(1, 'HeapProfiler.enable');
    await send(2, 'HeapProfiler.collectGarbage');
    await send(3, 'HeapProfiler.disable');
  } finally {
    ws.close();
  }
}

/** `nodejs_heap_size_used_bytes` right after a forced full GC (the lowest of a few scrapes). */
async function settledHeap(node: TestNode): Promise<number> {
  await sleep(500);
  await forceGc(node);
  let min = Infinity;
  for (let i = 0; i < 3; i++) {
    min = Math.min(min, await metricValue(node.internalUrl, 'nodejs_heap_size_used_bytes'));
    await sleep(100);
  }
  return min;
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

describe(`churn (CHURN_SEED=${SEED})`, { timeout: 240_000 }, () => {
  let redis: TestRedis;
  let nodes: TestNode[] = [];
  let redisClient: Redis | undefined;
  const live = new Set<Socket>();
  const errors: string[] = [];
  const counts: Record<string, number> = {};
  const heapBefore: number[] = [];

  const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  const fail = (k: number, msg: string) => {
    errors.push(`cycle ${k}: ${msg}`);
    if (errors.length <= 10) console.error(`[churn] cycle ${k}: ${msg} (CHURN_SEED=${SEED})`);
  };

  before(async () => {
    console.log(`[churn] CHURN_SEED=${SEED} cycles=${CYCLES} batch=${BATCH}`);
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      CHANNEL_RULES: RULES,
      EVENTS_PER_SECOND: '10000',
      HANDSHAKES_PER_SECOND_PER_IP: '100000',
      CONNECTIONS_PER_IP: '100000',
      CONNECTIONS_PER_USER: '100000',
      // A polling client that vanishes is closed after ping interval + timeout. The timeout leaves a busy test
      // process (100 clients at once on a loaded machine) time to answer a ping: at 1.5 s, polling POSTs were
      // answered 400 under load (`xhr post error`, "Session ID unknown": the session already closed).
      PING_INTERVAL_MS: '1500',
      PING_TIMEOUT_MS: '5000',
      LOG_LEVEL: 'warn',
    };
    // --inspect on a free loopback port: only so that the heap test can force a GC.
    const nodeArgs = ['--inspect=127.0.0.1:0'];
    nodes = [await startNode({ env, nodeArgs }), await startNode({ env, nodeArgs })];
    redisClient = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redisClient.connect();
  });

  after(async () => {
    for (const s of live) s.disconnect();
    redisClient?.disconnect();
    for (const n of nodes) await n.stop();
    await redis?.stop();
  });

  function client(node: TestNode, transport: Transport, user: string | undefined): Socket {
    const s = io(node.url, {
      forceNew: true,
      reconnection: false,
      timeout: CALL_MS,
      transports: transport === 'upgrade' ? ['polling', 'websocket'] : [transport],
      auth: user === undefined ? {} : { user },
    });
    live.add(s);
    s.on('disconnect', () => live.delete(s));
    return s;
  }

  function connected(s: Socket): Promise<void> {
    return new Promise((resolve, reject) => {
      if (s.connected) return resolve();
      s.once('connect', () => resolve());
      s.once('connect_error', (err) =>
        reject(new Error(`connect_error: ${err.message} ${JSON.stringify((err as { data?: unknown }).data ?? '')}`)),
      );
      // The Engine.IO session can end before the namespace CONNECT is answered (the server's connect timeout, a
      // ping timeout): socket.io-client then says 'disconnect' and never 'connect_error'.
      s.once('disconnect', (reason, description) =>
        reject(new Error(`disconnected before the CONNECT answer: ${reason} ${String((description as Error | undefined)?.message ?? '')}`)),
      );
    });
  }

  const call = async (s: Socket, ...args: unknown[]): Promise<Ack> =>
    (await s.timeout(CALL_MS).emitWithAck(args[0] as string, ...args.slice(1))) as Ack;

  /** Drops the TCP connection under a WebSocket client without a close frame; false if not on WebSocket yet. */
  function dropTcp(s: Socket): boolean {
    const t = (s.io.engine as unknown as { transport?: { name: string; ws?: { terminate?: () => void } } }).transport;
    if (t?.name !== 'websocket' || typeof t.ws?.terminate !== 'function') return false;
    t.ws.terminate();
    return true;
  }

  /** A raw long-polling client that subscribes and then stops polling: the node closes it at the ping timeout. */
  async function vanish(k: number, node: TestNode, channel: string) {
    const base = `${node.url}/socket.io/?EIO=4&transport=polling`;
    const signal = () => AbortSignal.timeout(CALL_MS);
    const hs = await (await fetch(base, { signal: signal() })).text();
    const sid = (JSON.parse(hs.slice(1)) as { sid: string }).sid;
    const url = `${base}&sid=${sid}`;
    const post = async (body: string) => {
      const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' }, signal: signal() });
      await res.text();
      if (res.status !== 200) throw new Error(`polling POST answered ${res.status}`);
    };
    await post('40');
    let got = await (await fetch(url, { signal: signal() })).text();
    // One poll may carry several packets (\x1e between them): a ping may come before the CONNECT answer.
    if (!got.split('\x1e').some((p) => p.startsWith('40'))) throw new Error(`polling namespace connect answered ${got.slice(0, 80)}`);
    await post(`421["subscribe","${channel}"]`);
    got = await (await fetch(url, { signal: signal() })).text();
    if (!got.includes('431[{"ok":true')) fail(k, `vanishing client's subscribe answered ${got.slice(0, 120)}`);
    // …and never polls again.
  }

  async function cycle(k: number, stage: (what: string) => void) {
    const r = new Rng((SEED ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0);
    const node = r.pick(nodes);
    const transport = r.pick<Transport>(['websocket', 'websocket', 'polling', 'upgrade']);
    const user = r.chance(0.8) ? `user-${r.int(60)}` : undefined;
    const kind = r.pick(['full', 'full', 'full', 'full', 'full', 'full', 'full', 'early', 'inflight', 'vanish'] as const);
    count(`kind:${kind}`);
    stage(`${kind} ${transport} session of ${user ?? 'anonymous'} on ${node.id}: connecting`);
    if (kind === 'vanish') return vanish(k, node, r.pick(PRESENCE));

    const s = client(node, transport, user);
    const at = (what: string) => stage(`${kind} ${transport} session ${s.id ?? ''} of ${user ?? 'anonymous'} on ${node.id}: ${what}`);
    if (kind === 'early') {
      // Gone while the handshake runs (or just after).
      await sleep(r.int(15));
      s.disconnect();
      return;
    }
    await connected(s);
    at('connected');
    if (kind === 'inflight') {
      // Requests in flight when the client leaves. Over polling, whatever is emitted while a POST is out goes
      // in the next POST together with the disconnect packet.
      if (r.chance(0.5)) s.emit(r.pick(['presence', 'unsubscribe']), r.pick(PRESENCE), () => {});
      s.emit('subscribe', r.pick(ALL_CHANNELS), () => {});
      if (r.chance(0.3)) s.emit('presence', r.pick(PRESENCE), () => {});
      s.disconnect();
      return;
    }

    // A full session.
    const chosen = [...new Set(Array.from({ length: 1 + r.int(3) }, () => (r.chance(0.6) ? r.pick(PRESENCE) : r.pick(PLAIN))))];
    // Sometimes a channel twice at once (two parts of an app subscribing to the same thing).
    const requested = r.chance(0.05) ? [...chosen, chosen[chosen.length - 1]!] : chosen;
    at(`subscribing to ${requested.join(', ')}`);
    const subs = await Promise.all(requested.map((c) => call(s, 'subscribe', c)));
    subs.forEach((a, i) => a.ok || fail(k, `subscribe ${requested[i]} answered ${JSON.stringify(a)}`));
    if (requested.length > chosen.length) count('double-subscribe');
    const presenceChannel = chosen.find((c) => c.startsWith('demo:'));
    if (presenceChannel) {
      at(`presence of ${presenceChannel}`);
      const p = (await call(s, 'presence', presenceChannel)) as Ack & { count?: number; members?: { user: string; connections: number }[] };
      const me = user ?? 'anonymous';
      if (!p.ok) fail(k, `presence ${presenceChannel} answered ${JSON.stringify(p)}`);
      else if (!(p.count! >= 1) || !p.members?.some((m) => m.user === me && m.connections >= 1))
        fail(k, `presence ${presenceChannel} does not list ${me}: ${JSON.stringify(p)}`);
      count('presence');
    }
    if (r.chance(0.1)) {
      at('presence of a plain channel');
      const p = await call(s, 'presence', r.pick(PLAIN));
      if (p.ok || p.error?.code !== 'forbidden') fail(k, `presence on a plain channel answered ${JSON.stringify(p)}`);
    }
    let lastId: string | undefined;
    if (r.chance(0.3)) {
      at('publishing');
      const pub = await call(s, 'publish', r.pick(PRESENCE), 'churn', { k });
      if (!pub.ok) fail(k, `publish answered ${JSON.stringify(pub)}`);
      lastId = pub.id as string | undefined;
      count('publish');
    }
    if (r.chance(0.15)) {
      // What the project's client does after a reconnect or a resync notice: subscribe again with its last id.
      const c = r.pick(chosen);
      at(`re-subscribing to ${c}`);
      const a = await call(s, 'subscribe', c, { since: lastId ?? `${Date.now() - 5000}-0` });
      if (!a.ok) fail(k, `re-subscribe ${c} with since answered ${JSON.stringify(a)}`);
      count('resubscribe');
    }
    if (r.chance(0.2)) {
      const c = r.pick(chosen);
      at(`unsubscribing from ${c}`);
      const a = await call(s, 'unsubscribe', c);
      if (!a.ok) fail(k, `unsubscribe ${c} answered ${JSON.stringify(a)}`);
      count('unsubscribe');
    }
    const leave = r.pick(['clean', 'clean', 'clean', 'drop', 'drop']);
    if (leave === 'drop' && dropTcp(s)) {
      count('leave:drop');
      at('waiting to see the dropped connection');
      await waitFor(() => !s.connected, { timeout: CALL_MS, interval: 10, what: 'the client to see its dropped connection' });
    } else {
      count('leave:clean');
      s.disconnect();
    }
  }

  async function round(from: number, to: number) {
    for (let b = from; b < to; b += BATCH) {
      const ks = Array.from({ length: Math.min(BATCH, to - b) }, (_, i) => b + i);
      await Promise.all(
        ks.map(async (k) => {
          let timer: NodeJS.Timeout | undefined;
          // Where the cycle is, for the message when it does not finish.
          let where = 'starting';
          try {
            await Promise.race([
              cycle(k, (what) => (where = what)),
              new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`cycle did not finish within 20 s (${where})`)), 20_000);
              }),
            ]);
          } catch (err) {
            fail(k, (err as Error).message);
          } finally {
            clearTimeout(timer);
          }
        }),
      );
      for (const n of nodes) assert.equal(n.proc.exitCode, null, `node ${n.id} exited during the churn:\n${n.output().slice(-3000)}`);
    }
  }

  /** The end of each node's log (LOG_LEVEL=warn: what went wrong on the server side), for a failure's message. */
  const nodeLogs = () => nodes.map((n) => `\n--- ${n.id}, last lines:\n${n.output().slice(-2000)}`).join('');

  /** Waits until no node counts a connection (gauges by transport and /api/stats); returns the last snapshot. */
  async function settled(what: string): Promise<Record<string, number>> {
    let snap: Record<string, number> = {};
    try {
      await waitFor(
        async () => {
          snap = {};
          for (const [i, n] of nodes.entries()) {
            for (const t of ['websocket', 'polling', 'sse'])
              snap[`node${i}.switchboard_connections{${t}}`] = await metricValue(n.internalUrl, 'switchboard_connections', {
                transport: t,
              });
            snap[`node${i}./api/stats.connections`] = (await api<{ connections: number }>(n, '/api/stats')).connections;
          }
          return Object.values(snap).every((v) => v === 0);
        },
        { timeout: 20_000, interval: 250, what },
      );
    } catch {
      assert.fail(`${what}: connections not back to zero within 20 s; last seen ${JSON.stringify(snap)} (CHURN_SEED=${SEED})`);
    }
    return snap;
  }

  test(`warm-up: ${WARMUP} connection cycles, then the heap baseline`, async () => {
    const t0 = Date.now();
    await round(0, WARMUP);
    await settled('connections after the warm-up');
    for (const n of nodes) heapBefore.push(await settledHeap(n));
    console.log(`[churn] warm-up: ${WARMUP} cycles in ${Date.now() - t0} ms; heap baseline ${heapBefore.map(mb).join(', ')}`);
    assert.deepEqual(errors, [], `errors in the warm-up (CHURN_SEED=${SEED}):\n${errors.slice(0, 20).join('\n')}${nodeLogs()}`);
  });

  test(`${CYCLES} connection cycles in batches of ${BATCH}: every request answered as the contract says`, async () => {
    const t0 = Date.now();
    await round(WARMUP, WARMUP + CYCLES);
    console.log(`[churn] ${CYCLES} cycles in ${Date.now() - t0} ms: ${JSON.stringify(counts)}`);
    assert.deepEqual(
      errors,
      [],
      `${errors.length} cycle(s) went wrong (CHURN_SEED=${SEED}):\n${errors.slice(0, 20).join('\n')}${nodeLogs()}`,
    );
  });

  test('afterwards: no connections, no subscriptions, no subscribers or members, limits released in Redis', async () => {
    await settled('connections after the churn');
    const problems: string[] = [];
    let subscribers = 0;
    for (const [i, n] of nodes.entries()) {
      const stats = await api<{ connections: number; nodes: { id: string; connections: number }[] }>(n, '/api/stats');
      if (stats.nodes.length !== nodes.length) problems.push(`/api/stats on node${i} lists ${JSON.stringify(stats.nodes)}`);
      for (const c of ALL_CHANNELS) {
        const info = await api<{ subscribers: number; members?: unknown[] }>(n, `/api/channels/${c}`);
        subscribers += info.subscribers;
        if (info.subscribers !== 0) problems.push(`GET /api/channels/${c} on node${i}: ${JSON.stringify(info)}`);
        if (c.startsWith('demo:') ? JSON.stringify(info.members) !== '[]' : info.members !== undefined)
          problems.push(`members of ${c} on node${i}: ${JSON.stringify(info)}`);
      }
    }
    // The gauge settles at once: subscriptions end with their connection, and every connection has ended.
    for (const [i, n] of nodes.entries()) {
      const g = await metricValue(n.internalUrl, 'switchboard_subscriptions');
      if (g !== 0)
        problems.push(
          `switchboard_subscriptions on node${i} is ${g}${subscribers === 0 ? ' while no channel has a subscriber: the gauge (or the adapter rooms it counts) leaks' : ''}`,
        );
    }
    // Cluster-wide connection counts: every per-address and per-user counter released, every node ledger empty.
    // (All limit keys share the hash tag {switchboard:lim}, so they live in one Redis Cluster slot.)
    const lim = 'switchboard:{switchboard:lim}:';
    const keys = await redisClient!.keys('switchboard:{switchboard:lim}:*');
    for (const k of keys.filter((x) => x.startsWith(`${lim}ip:`) || x.startsWith(`${lim}user:`)))
      problems.push(`Redis ${k} = ${await redisClient!.get(k)}`);
    for (const k of keys.filter((x) => x.startsWith(`${lim}node:`))) {
      const held = await redisClient!.hgetall(k);
      if (Object.keys(held).length) problems.push(`Redis ledger ${k} still holds ${JSON.stringify(held)}`);
    }
    assert.deepEqual(problems, [], `the end state is not clean (CHURN_SEED=${SEED}):\n  ${problems.join('\n  ')}`);
  });

  test('afterwards: presence still works across the nodes, and clears', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const sa = client(a, 'websocket', 'after-a');
    const sb = client(b, 'polling', 'after-b');
    await Promise.all([connected(sa), connected(sb)]);
    assert.equal((await call(sa, 'subscribe', 'demo:room-0')).ok, true);
    assert.equal((await call(sb, 'subscribe', 'demo:room-0')).ok, true);
    const p = (await call(sa, 'presence', 'demo:room-0')) as Ack & { count: number; members: { user: string }[] };
    assert.equal(p.count, 2, JSON.stringify(p));
    assert.deepEqual(p.members.map((m) => m.user).sort(), ['after-a', 'after-b']);
    sa.disconnect();
    sb.disconnect();
    await waitFor(async () => (await api<{ subscribers: number }>(b, '/api/channels/demo:room-0')).subscribers === 0, {
      what: 'demo:room-0 empty again',
    });
  });

  test(`afterwards: the heap is back within ${mb(HEAP_SLACK)} of the warm-up baseline`, async () => {
    const heapAfter: number[] = [];
    for (const n of nodes) heapAfter.push(await settledHeap(n));
    for (const [i, n] of nodes.entries())
      console.log(
        `[churn] ${n.id}: heap before ${mb(heapBefore[i]!)}, after ${mb(heapAfter[i]!)} (${heapAfter[i]! >= heapBefore[i]! ? '+' : ''}${mb(heapAfter[i]! - heapBefore[i]!)})`,
      );
    for (const [i, n] of nodes.entries())
      assert.ok(heapAfter[i]! < heapBefore[i]! + HEAP_SLACK, `${n.id}: heap ${mb(heapAfter[i]!)} after vs ${mb(heapBefore[i]!)} before`);
  });
});
