// The connection edge against an attacker: safe SSE frames, ack-less floods, Engine.IO sessions that never
// CONNECT, SSE expiry/slot release/backpressure accounting, GRIP key before body, refresh and subscription caps.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventSource } from 'eventsource';
import { SignJWT } from 'jose';
import { startNode, type TestNode } from '../helpers/node.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { apiPublish, call, collect, connect, metricValue, type Client } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';

const KEY = 'test-key-0123456789abcdef';
const SECRET = 'hardening-test-secret-0123456789abcdef';
const now = () => Math.floor(Date.now() / 1000);
const hs256 = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
const from = (ip: string) => ({ extraHeaders: { 'x-forwarded-for': ip } });

/** An SSE stream over a raw socket, so a test can stop reading (a slow consumer) and see the TCP close. */
function rawSse(port: number, path: string, ip: string) {
  const sock = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => (text += d));
  sock.on('close', () => (closed = true));
  sock.on('error', () => {});
  sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: ${ip}\r\nAccept: text/event-stream\r\n\r\n`);
  return {
    sock,
    text: () => text,
    closed: () => closed,
    status: () => Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0),
  };
}

describe('hardening: the connection edge', { timeout: 120_000 }, () => {
  let open: TestNode; // memory mode, small limits
  let slow: TestNode; // SSE backpressure
  let jwt: TestNode; // tokens, over Redis
  let redis: TestRedis;
  const clients: Client[] = [];
  const sources: EventSource[] = [];
  const sockets: net.Socket[] = [];
  const client = async (n: TestNode, opts: Parameters<typeof connect>[1] = {}) => {
    const c = await connect(n.url, opts);
    clients.push(c);
    return c;
  };

  before(async () => {
    redis = await startRedis();
    [open, slow, jwt] = await Promise.all([
      startNode({
        env: {
          TRUSTED_PROXIES: '127.0.0.1',
          EVENTS_PER_SECOND: '20',
          RATE_LIMIT_STRIKES: '2',
          CONNECTIONS_PER_IP: '20',
          HANDSHAKES_PER_SECOND_PER_IP: '100000',
          MAX_SUBSCRIPTIONS: '3',
          LOG_LEVEL: 'warn',
        },
      }),
      startNode({
        env: {
          TRUSTED_PROXIES: '127.0.0.1',
          CONNECTIONS_PER_IP: '1',
          MAX_BACKPRESSURE_BYTES: String(4 << 20),
          MAX_PUBLISH_BYTES: String(200_000),
          LOG_LEVEL: 'warn',
        },
      }),
      startNode({
        env: {
          JWT_SECRET: SECRET,
          REDIS_URL: redis.url,
          MAX_SUBSCRIPTIONS: '3',
          TOKEN_REFRESH_GRACE_MS: '100',
          CHANNEL_RULES: JSON.stringify([{ prefix: '', subscribe: 'authorized', publish: 'nobody' }]),
          LOG_LEVEL: 'warn',
        },
      }),
    ]);
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    for (const s of sources) s.close();
    for (const s of sockets) s.destroy();
    await Promise.all([open?.stop(), slow?.stop(), jwt?.stop()]);
    await redis?.stop();
  });

  test('event names with CR/LF are refused everywhere, and an SSE parser sees exactly the published events', async () => {
    const channel = 'demo:inject';
    const seen: { type: string; id: string; data: string }[] = [];
    const es = new EventSource(`${open.url}/sse?channel=${channel}`);
    sources.push(es);
    for (const type of ['ok1', 'ok2', 'forged', 'message', 'switchboard:closing', 'switchboard:resync'])
      es.addEventListener(type, (e) => seen.push({ type, id: e.lastEventId, data: e.data }));
    await new Promise<void>((resolve, reject) => {
      es.onopen = () => resolve();
      es.onerror = (e) => reject(new Error(`EventSource: ${e.message}`));
    });
    const c = await client(open, from('10.20.0.1'));
    const forged = await call(c, 'publish', channel, 'x\nevent: forged\ndata: 1\nid: 99999999999999-0\nretry: 1', {});
    assert.equal(forged.ok, false, 'a client publish with a line break in the event name is refused');
    assert.equal(forged.error.code, 'bad_request');
    const viaApi = await apiPublish(open.url, { channel, event: 'y\r\nevent: forged', data: 1 }, KEY);
    assert.equal(viaApi.status, 400, 'the HTTP API refuses it too');
    const tab = await apiPublish(open.url, { channel, event: 'z\u0000\u0085', data: 1 }, KEY);
    assert.equal(tab.status, 400, 'other control characters are refused');

    const a = await call(c, 'publish', channel, 'ok1', { text: 'line1\nline2\r\nevent: forged' });
    assert.equal(a.ok, true);
    const b = await apiPublish(open.url, { channel, event: 'ok2', data: 'data: forged\n\nevent: forged\n' }, KEY);
    assert.equal(b.status, 200);
    await waitFor(() => seen.some((s) => s.type === 'ok2'), { what: 'ok2 over SSE' });
    assert.deepEqual(seen, [
      { type: 'ok1', id: a.id, data: JSON.stringify({ text: 'line1\nline2\r\nevent: forged' }) },
      { type: 'ok2', id: b.body.id, data: JSON.stringify('data: forged\n\nevent: forged\n') },
    ]);
  });

  test('ack-less events do their work, failures come back as switchboard:error, and an ack-less flood is closed while another client keeps being served', async () => {
    const channel = 'demo:flood';
    const good = await client(open, from('10.21.0.1'));
    const got = collect(good);
    const errors: unknown[] = [];
    good.on('switchboard:error', (e) => errors.push(e));
    good.emit('subscribe', channel); // no ack: still subscribes
    good.emit('subscribe', 'not a channel!');
    await waitFor(() => errors.length > 0, { what: 'switchboard:error for the bad subscribe' });
    assert.deepEqual(errors[0], {
      event: 'subscribe',
      error: { code: 'invalid_channel', message: errors[0] && (errors[0] as any).error.message },
    });
    assert.equal((await apiPublish(open.url, { channel, event: 'before', data: 1 }, KEY)).status, 200);
    await waitFor(() => got.some((g) => g.event === 'before'), { what: 'delivery after an ack-less subscribe' });

    const flooder = await client(open, from('10.21.0.2'));
    let closing: unknown;
    flooder.on('switchboard:closing', (r) => (closing = r));
    const gone = new Promise<string>((resolve) => flooder.on('disconnect', (reason) => resolve(reason)));
    let disconnected = false;
    void gone.then(() => (disconnected = true));
    const rejectedBefore = await metricValue(open.internalUrl, 'switchboard_rejections_total', { reason: 'rate_limited' });
    let sent = 0;
    // Bounded: on a node without the limit this loop ends with the flooder still connected.
    for (let round = 0; round < 400 && !disconnected; round++) {
      for (let i = 0; i < 50; i++) flooder.emit('presence', 'demo:elsewhere');
      sent += 50;
      await new Promise((r) => setTimeout(r, 25));
      if (round % 20 === 0) assert.equal((await call(good, 'presence', channel)).ok, true, 'the other client is answered during the flood');
    }
    assert.ok(disconnected, `the flooder was closed (sent ${sent} ack-less events)`);
    assert.deepEqual(closing, { reason: 'rate_limited' });
    assert.ok((await metricValue(open.internalUrl, 'switchboard_rejections_total', { reason: 'rate_limited' })) > rejectedBefore);
    assert.equal((await apiPublish(open.url, { channel, event: 'after', data: 2 }, KEY)).status, 200);
    await waitFor(() => got.some((g) => g.event === 'after'), { what: 'delivery after the flood' });
    assert.equal(good.connected, true);
  });

  test('1,000 Engine.IO sessions without CONNECT from one address are limited and visible in metrics', async () => {
    const refusedBefore = await metricValue(open.internalUrl, 'switchboard_rejections_total', { reason: 'connections_per_ip' });
    let accepted = 0;
    let refused = 0;
    const one = async () => {
      const res = await fetch(`${open.url}/socket.io/?EIO=4&transport=polling`, { headers: { 'x-forwarded-for': '10.22.0.1' } });
      await res.arrayBuffer();
      if (res.status === 200) accepted++;
      else refused++;
    };
    for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, one));
    assert.equal(accepted + refused, 1000);
    assert.ok(accepted <= 20, `at most CONNECTIONS_PER_IP sessions opened (got ${accepted})`);
    assert.ok(
      (await metricValue(open.internalUrl, 'switchboard_rejections_total', { reason: 'connections_per_ip' })) >= refusedBefore + 980,
    );
    assert.ok((await metricValue(open.internalUrl, 'switchboard_pending_sessions')) >= accepted, 'sessions without CONNECT are counted');
    const other = await client(open, from('10.22.0.2'));
    assert.equal(other.connected, true, 'another address still connects');
  });

  test('concurrent subscribe(since) calls cannot exceed MAX_SUBSCRIPTIONS', async () => {
    const c = await client(jwt, { auth: { token: await hs256({ sub: 'carol', channels: ['cap:*'], exp: now() + 60 }) } });
    const acks = await Promise.all(Array.from({ length: 10 }, (_, i) => call(c, 'subscribe', `cap:${i}`, { since: '1-0' })));
    const ok = acks.filter((a) => a.ok).length;
    assert.equal(ok, 3, `3 of 10 concurrent subscriptions accepted (got ${ok})`);
    assert.ok(acks.filter((a) => !a.ok).every((a) => a.error.code === 'rate_limited'));
  });

  test('POST /publish/ without a key is refused before its body is read', async () => {
    const sock = net.connect(open.port, '127.0.0.1');
    sockets.push(sock);
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (text += d));
    sock.on('error', () => {});
    // The headers promise a 1 MB body that never comes: only an answer that doesn't wait for it arrives.
    let closed = false;
    sock.on('close', () => (closed = true));
    sock.write('POST /publish/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"items":');
    await waitFor(() => /^HTTP\/1\.1 \d+/.test(text), { timeout: 5000, what: 'an answer before the body' });
    assert.match(text, /^HTTP\/1\.1 401/);
    // Nothing of the body is read or kept: the node hangs up rather than take in a megabyte nobody will use.
    await waitFor(() => closed, { timeout: 5000, what: 'the connection closed after the 401' });
    const bad = net.connect(open.port, '127.0.0.1');
    sockets.push(bad);
    let t2 = '';
    bad.setEncoding('utf8');
    bad.on('data', (d: string) => (t2 += d));
    bad.write(
      'POST /publish/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.AAAA\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n',
    );
    await waitFor(() => /^HTTP\/1\.1 \d+/.test(t2), { timeout: 5000, what: 'an answer to a bad GRIP JWT before the body' });
    assert.match(t2, /^HTTP\/1\.1 401/);
  });

  test('SSE: a slow-consumer close releases the per-address slot and closes the TCP connection', async () => {
    const ip = '10.24.0.1';
    const channel = 'demo:slowclose';
    const s = rawSse(slow.port, `/sse?channel=${channel}`, ip);
    sockets.push(s.sock);
    await waitFor(() => s.status() === 200, { what: 'SSE stream open' });
    const second = await fetch(`${slow.url}/sse?channel=${channel}`, { headers: { 'x-forwarded-for': ip } });
    assert.equal(second.status, 429, 'CONNECTIONS_PER_IP=1 holds while the stream is open');
    await second.body?.cancel();
    s.sock.pause();
    const closedBefore = await metricValue(slow.internalUrl, 'switchboard_disconnects_total', { reason: 'slow_consumer' });
    const big = 'x'.repeat(150_000);
    for (let i = 0; i < 400; i++) {
      await apiPublish(slow.url, { channel, event: 'big', data: big }, KEY);
      if ((await metricValue(slow.internalUrl, 'switchboard_disconnects_total', { reason: 'slow_consumer' })) > closedBefore) break;
    }
    assert.ok(
      (await metricValue(slow.internalUrl, 'switchboard_disconnects_total', { reason: 'slow_consumer' })) > closedBefore,
      'closed as a slow consumer',
    );
    const again = await fetch(`${slow.url}/sse?channel=${channel}`, { headers: { 'x-forwarded-for': ip } });
    assert.equal(again.status, 200, 'the address has its slot back');
    await again.body?.cancel();
    s.sock.resume();
    await waitFor(() => s.closed(), { what: 'the slow stream’s TCP connection closed by the node' });
  });

  test('SSE: volatile publications are delivered again once a slow spell is over', async () => {
    const ip = '10.25.0.1';
    const channel = 'demo:volatile';
    const s = rawSse(slow.port, `/sse?channel=${channel}`, ip);
    sockets.push(s.sock);
    await waitFor(() => s.status() === 200, { what: 'SSE stream open' });
    s.sock.pause();
    const droppedBefore = await metricValue(slow.internalUrl, 'switchboard_dropped_messages_total', { reason: 'volatile' });
    const chunk = 'y'.repeat(100_000);
    let last = '';
    for (let i = 0; i < 200; i++) {
      last = (await apiPublish(slow.url, { channel, event: 'fill', data: chunk }, KEY)).body.id;
      await apiPublish(slow.url, { channel, event: 'probe', data: i, volatile: true }, KEY);
      if ((await metricValue(slow.internalUrl, 'switchboard_dropped_messages_total', { reason: 'volatile' })) > droppedBefore) break;
    }
    assert.ok(
      (await metricValue(slow.internalUrl, 'switchboard_dropped_messages_total', { reason: 'volatile' })) > droppedBefore,
      'a volatile publication was skipped while the reader was slow',
    );
    s.sock.resume();
    await waitFor(() => s.text().includes(`id: ${last}\n`), { what: 'the reader caught up' });
    // The node learns that the reader drained when uWS can write again; volatile probes until one arrives.
    let delivered = false;
    for (let i = 0; i < 100 && !delivered; i++) {
      await apiPublish(slow.url, { channel, event: 'after', data: i, volatile: true }, KEY);
      delivered = await waitFor(() => s.text().includes('event: after\n'), { timeout: 100, what: 'volatile' }).then(
        () => true,
        () => false,
      );
    }
    assert.ok(delivered, 'a volatile publication is delivered after the slow spell');
    assert.equal(s.closed(), false);
  });

  test('SSE: a stream closes at its token’s expiry, like token_expired on Socket.IO', async () => {
    const token = await hs256({ sub: 'eve', channels: ['news:*'], exp: now() + 2 });
    const closing: string[] = [];
    const es = new EventSource(`${jwt.url}/sse?channel=news:1&token=${token}`);
    sources.push(es);
    es.addEventListener('switchboard:closing', (e) => {
      closing.push(e.data);
      es.close();
    });
    await waitFor(() => closing.length > 0, { timeout: 15_000, what: 'switchboard:closing on the SSE stream' });
    assert.deepEqual(JSON.parse(closing[0]!), { reason: 'token_expired' });
    await waitFor(async () => (await metricValue(jwt.internalUrl, 'switchboard_disconnects_total', { reason: 'token_expired' })) >= 1, {
      what: 'counted',
    });
  });

  test('auth:refresh with narrower channels drops the subscriptions the new token no longer allows', async () => {
    const c = await client(jwt, { auth: { token: await hs256({ sub: 'alice', channels: ['a:*', 'b:*'], exp: now() + 60 }) } });
    const got = collect(c);
    assert.equal((await call(c, 'subscribe', 'a:1')).ok, true);
    assert.equal((await call(c, 'subscribe', 'b:1')).ok, true);
    const r = await call(c, 'auth:refresh', await hs256({ sub: 'alice', channels: ['b:*'], exp: now() + 60 }));
    assert.deepEqual(r, { ok: true, dropped: ['a:1'] });
    await apiPublish(jwt.url, { channel: 'a:1', event: 'secret', data: 1 }, KEY);
    await apiPublish(jwt.url, { channel: 'b:1', event: 'fence', data: 2 }, KEY);
    await waitFor(() => got.some((g) => g.event === 'fence'), { what: 'the fence on b:1' });
    assert.deepEqual(
      got.map((g) => g.event),
      ['fence'],
    );
    assert.equal((await call(c, 'subscribe', 'a:2')).ok, false, 'and new ones are refused');
  });
});
