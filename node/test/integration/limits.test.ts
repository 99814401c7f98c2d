// Abuse limits: the Origin allow-list on every kind of request, connections per address (cluster-wide, and
// released when a node is killed -9) and per user, handshakes per second, events per second, subscriptions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type TestNode, type StartNodeOptions } from '../helpers/node.js';
import { call, clientPool, connect, metricValue, refused } from '../helpers/client.js';
import { sleep, waitFor } from '../helpers/ports.js';

const GOOD = 'http://good.example';
const EVIL = 'http://evil.example';

/** A client "from" `ip`: the nodes trust X-Forwarded-For from 127.0.0.1, as they would from HAProxy. */
const from = (ip: string, extra: Record<string, unknown> = {}) => ({ extraHeaders: { 'x-forwarded-for': ip }, ...extra });

/**
 * A raw Engine.IO handshake from `ip`: per-address limits refuse it at the transport, before any session exists
 * (socket.io-client sees `xhr poll error` / `websocket error` and retries with backoff).
 */
async function handshake(url: string, ip: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers: { 'x-forwarded-for': ip } });
  const text = await res.text();
  return { status: res.status, body: res.status === 200 ? text : JSON.parse(text) };
}

/** Opens a raw WebSocket; resolves with 'open' or the HTTP status of the refused upgrade. */
function wsStatus(url: string, origin: string): Promise<number | 'open'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin });
    ws.on('open', () => {
      ws.close();
      resolve('open');
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('error', (err) => reject(err));
  });
}

describe('abuse limits', { timeout: 90_000 }, () => {
  let redis: TestRedis;
  let a: TestNode;
  let b: TestNode;
  const { clients, open, close: closeClients } = clientPool();
  const env = (): StartNodeOptions => ({
    env: {
      REDIS_URL: redis.url,
      ALLOWED_ORIGINS: `${GOOD},http://other.example`,
      TRUSTED_PROXIES: '127.0.0.1',
      CONNECTIONS_PER_IP: '3',
      CONNECTIONS_PER_USER: '2',
      HANDSHAKES_PER_SECOND_PER_IP: '5',
      EVENTS_PER_SECOND: '5',
      RATE_LIMIT_STRIKES: '2',
      MAX_SUBSCRIPTIONS: '3',
      CONNECTION_LIMITS_HEARTBEAT_MS: '200',
    },
  });

  before(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([startNode(env()), startNode(env())]);
  });
  after(async () => {
    closeClients();
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  test('a foreign Origin gets 403 on polling handshakes, polling with a session id, and WebSocket upgrades', async () => {
    const poll = (q: string, origin: string | undefined, init: RequestInit = {}) =>
      fetch(`${a.url}/socket.io/?EIO=4&transport=polling${q}`, { ...init, headers: origin ? { origin } : {} });
    const rejected = await metricValue(a.internalUrl, 'switchboard_rejections_total', { reason: 'origin' });

    assert.equal((await poll('', EVIL)).status, 403);
    assert.equal((await poll('', 'null')).status, 403);
    const ok = await poll('', GOOD);
    assert.equal(ok.status, 200);
    const sid = (JSON.parse((await ok.text()).slice(1)) as { sid: string }).sid;
    assert.equal((await poll('', undefined)).status, 200, 'no Origin (not a browser) passes');
    // The same session, from a foreign page: refused on GET and POST.
    assert.equal((await poll(`&sid=${sid}`, EVIL)).status, 403);
    assert.equal((await poll(`&sid=${sid}`, EVIL, { method: 'POST', body: '40' })).status, 403);

    const ws = `ws://127.0.0.1:${a.port}/socket.io/?EIO=4&transport=websocket`;
    assert.equal(await wsStatus(ws, EVIL), 403);
    assert.equal(await wsStatus(`${ws}&sid=${sid}`, EVIL), 403, 'an upgrade of an existing session');
    assert.equal(await wsStatus(ws, GOOD), 'open');

    // socket.io-client: the transport itself is refused, before any namespace connect.
    const c = await refused(a.url, { extraHeaders: { 'x-forwarded-for': '10.9.0.1', origin: EVIL } });
    assert.deepEqual(c, { code: 'none', message: 'xhr poll error' });
    const good = await open(a, { extraHeaders: { 'x-forwarded-for': '10.9.0.1', origin: GOOD } });
    assert.equal(good.connected, true);
    assert.ok((await metricValue(a.internalUrl, 'switchboard_rejections_total', { reason: 'origin' })) >= rejected + 6);
  });

  test('a foreign Origin gets 403 from the HTTP API and the GRIP endpoint', async () => {
    const post = (path: string, origin: string, body: unknown, extra: Record<string, string> = {}) =>
      fetch(`${a.url}${path}`, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/json', authorization: 'Bearer test-key-0123456789abcdef', ...extra },
        body: JSON.stringify(body),
      });
    const evil = await post('/api/publish', EVIL, { channel: 'demo:o', event: 'e', data: 1 });
    assert.equal(evil.status, 403);
    assert.deepEqual(await evil.json(), {
      error: { code: 'forbidden', message: 'origin http://evil.example is not allowed (ALLOWED_ORIGINS)' },
    });
    assert.equal((await post('/api/publish', GOOD, { channel: 'demo:o', event: 'e', data: 1 })).status, 200);
    // The page's own origin as the trusted proxy (this peer, 127.0.0.1) forwards it: allowed only because the node
    // reads the peer address of the request (read when a handler asks, not for every request).
    const viaProxy = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'rt.example' };
    assert.equal((await post('/api/publish', 'https://rt.example', { channel: 'demo:o', event: 'e', data: 1 }, viaProxy)).status, 200);
    assert.equal((await post('/api/publish', 'https://rt.example', { channel: 'demo:o', event: 'e', data: 1 })).status, 403);
    const grip = { items: [{ channel: 'demo:o', formats: { 'ws-message': { content: 'x' } } }] };
    assert.equal((await post('/publish/', EVIL, grip)).status, 403);
    assert.equal((await post('/publish/', GOOD, grip)).status, 200);
  });

  test('connections per address are limited cluster-wide; other addresses are unaffected; a slot frees on disconnect', async () => {
    const ip = '10.1.0.1';
    const c1 = await open(a, from(ip));
    await open(a, from(ip));
    await open(b, from(ip));
    const before = await metricValue(b.internalUrl, 'switchboard_rejections_total', { reason: 'connections_per_ip' });
    assert.deepEqual(await handshake(b.url, ip), {
      status: 429,
      body: { error: { code: 'rate_limited', message: 'at most 3 connections per address' } },
    });
    assert.deepEqual(await refused(a.url, from(ip)), { code: 'none', message: 'xhr poll error' });
    assert.equal(await metricValue(b.internalUrl, 'switchboard_rejections_total', { reason: 'connections_per_ip' }), before + 1);
    // Someone else is not affected.
    const other = await open(b, from('10.1.0.2'));
    assert.equal(other.connected, true);
    c1.disconnect();
    await waitFor(
      async () => {
        const c = await connect(b.url, from(ip)).catch(() => undefined);
        if (c) clients.push(c);
        return c;
      },
      { what: 'a freed slot', timeout: 5000 },
    );
  });

  test('a node killed with -9 does not leak its connection counts: the others release them', async () => {
    const c = await startNode(env());
    try {
      const ip = '10.2.0.1';
      for (let i = 0; i < 3; i++) await open(c, from(ip));
      assert.equal((await handshake(a.url, ip)).status, 429);
      c.kill('SIGKILL');
      await c.exited;
      // Presumed dead after 4 heartbeats (800 ms); one of the other nodes releases its share.
      await waitFor(
        async () => {
          const x = await connect(a.url, from(ip)).catch(() => undefined);
          if (x) clients.push(x);
          return x;
        },
        { what: "the dead node's counts released", timeout: 10_000, interval: 200 },
      );
      await open(a, from(ip));
      await open(b, from(ip));
      assert.equal((await handshake(b.url, ip)).status, 429, 'the limit still holds afterwards');
    } finally {
      await c.stop();
    }
  });

  test('connections per user are limited', async () => {
    await open(a, from('10.3.0.1', { auth: { user: 'u-limited' } }));
    await open(b, from('10.3.0.2', { auth: { user: 'u-limited' } }));
    assert.deepEqual(await refused(a.url, from('10.3.0.3', { auth: { user: 'u-limited' } })), {
      code: 'rate_limited',
      message: 'at most 2 connections per user',
    });
    assert.ok((await metricValue(a.internalUrl, 'switchboard_rejections_total', { reason: 'connections_per_user' })) >= 1);
  });

  test('two CONNECTs on one Engine.IO session hold two user slots, and both are given back when the session ends', async () => {
    const user = 'u-twice';
    const ws = new WebSocket(`${a.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, {
      origin: GOOD,
      headers: { 'x-forwarded-for': '10.3.1.1' },
    });
    const connected: string[] = [];
    ws.on('message', (m: Buffer) => {
      const text = m.toString();
      if (text === '2') ws.send('3');
      else if (text.startsWith('0')) {
        // Both CONNECTs in one TCP write, so the node reads them together: Socket.IO accepts a second CONNECT to a
        // namespace only while the first is still being admitted, and closes the session as being in an invalid
        // state once it is in (a loaded machine sending the frames apart made this test time out).
        const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
        socket.cork();
        for (let i = 0; i < 2; i++) ws.send(`40${JSON.stringify({ user })}`);
        socket.uncork();
      } else if (text.startsWith('40')) connected.push(text);
    });
    await waitFor(() => connected.length === 2, { what: 'two sockets connected on one session' });
    // Both slots are taken: a third connection of the user is refused.
    assert.deepEqual(await refused(b.url, from('10.3.1.2', { auth: { user } })), {
      code: 'rate_limited',
      message: 'at most 2 connections per user',
    });
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.close();
    await closed;
    // Both come back (cluster-wide counts follow within a heartbeat): two new connections of the user are accepted.
    const first = await waitFor(() => connect(a.url, from('10.3.1.3', { auth: { user } })), {
      what: 'a new connection of the user accepted',
      interval: 250,
    });
    clients.push(first);
    assert.equal((await open(b, from('10.3.1.4', { auth: { user } }))).connected, true);
  });

  test('handshakes per second per address are limited', async () => {
    const ip = '10.4.0.1';
    const outcomes: string[] = [];
    // Raw Engine.IO handshakes, in parallel: the limit counts from the first request of a session.
    for (const r of await Promise.all(Array.from({ length: 8 }, () => handshake(a.url, ip))))
      outcomes.push(r.status === 200 ? 'ok' : `${r.status} ${r.body.error.message}`);
    assert.ok(outcomes.filter((o) => o === 'ok').length <= 5, outcomes.join(', '));
    assert.ok(outcomes.includes('429 more than 5 connections per second from this address'), outcomes.join(', '));
    assert.ok((await metricValue(a.internalUrl, 'switchboard_rejections_total', { reason: 'handshake_rate' })) >= 1);
    // Another address connects meanwhile.
    assert.equal((await open(a, from('10.4.0.2'))).connected, true);
  });

  test('events per second: `rate_limited` acks, then a close after RATE_LIMIT_STRIKES seconds; others unaffected', async () => {
    const flooder = await open(a, from('10.5.0.1'));
    const bystander = await open(a, from('10.5.0.2'));
    const closing: unknown[] = [];
    flooder.on('switchboard:closing', (m: unknown) => closing.push(m));
    let reason: string | undefined;
    flooder.on('disconnect', (r) => (reason = r));

    const burst = await Promise.all(Array.from({ length: 10 }, () => call(flooder, 'unsubscribe', 'demo:x')));
    assert.equal(burst.filter((r) => r.ok).length, 5);
    assert.deepEqual(
      burst.find((r) => !r.ok),
      { ok: false, error: { code: 'rate_limited', message: 'more than 5 events per second' } },
    );

    // A steady 20 events/s (over the limit of 5) from the flooder, a call now and then from the bystander.
    let stop = false;
    const flood = (async () => {
      while (!stop && flooder.connected) {
        flooder.emit('unsubscribe', 'demo:x', () => {});
        await sleep(50);
      }
    })();
    const checks = (async () => {
      while (!stop) {
        assert.equal((await call(bystander, 'unsubscribe', 'demo:x')).ok, true, 'the bystander is never limited');
        await sleep(300);
      }
    })();
    try {
      await waitFor(() => reason, { what: 'the flooder disconnected after RATE_LIMIT_STRIKES seconds', timeout: 10_000 });
    } finally {
      stop = true;
      await Promise.all([flood, checks]);
    }
    assert.equal(reason, 'io server disconnect');
    assert.deepEqual(closing, [{ reason: 'rate_limited' }]);
    assert.equal(bystander.connected, true);
    assert.ok((await metricValue(a.internalUrl, 'switchboard_rejections_total', { reason: 'rate_limited' })) >= 5);
    assert.ok((await metricValue(a.internalUrl, 'switchboard_disconnects_total', { reason: 'rate_limited' })) >= 1);
  });

  test('subscriptions per connection are limited', async () => {
    const c = await open(b, from('10.6.0.1'));
    for (const ch of ['demo:s1', 'demo:s2', 'demo:s3']) assert.equal((await call(c, 'subscribe', ch)).ok, true);
    assert.deepEqual(await call(c, 'subscribe', 'demo:s4'), {
      ok: false,
      error: { code: 'rate_limited', message: 'at most 3 subscriptions per connection' },
    });
    assert.equal((await call(c, 'subscribe', 'demo:s1')).ok, true, 're-subscribing to a channel held is fine');
  });
});
