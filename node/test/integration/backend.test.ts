// Backends speak plain HTTP: webhooks to a real node:http backend (connect by cookie, subscribe, publish, rpc,
// disconnect, signatures, timeouts, circuit breaker, malformed answers), HTTP publishing with Idempotency-Key
// across nodes, GRIP publishers (Bearer key and JWT) and @socket.io/redis-emitter reaching every node.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { verify } from '../../src/hooks/signature.js';
import http from 'node:http';
import { Publisher, WebSocketMessageFormat } from '@fanoutio/grip';
import { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { apiPublish, call, clientPool, collect, metricValue, refused } from '../helpers/client.js';
import { freePort, waitFor } from '../helpers/ports.js';

const SECRET = 'webhook-secret-for-tests-0123456789';
const RULES = JSON.stringify([
  { prefix: '', subscribe: 'authorized', publish: 'authorized' },
  { prefix: 'open:', subscribe: 'anyone', publish: 'nobody' },
]);

interface Hit {
  path: string;
  body: any;
  signed: boolean;
}

/** A backend in the shape the README documents, recording every call and checking every signature. */
class TestBackend {
  readonly hits: Hit[] = [];
  /** Behaviour of the `/flaky` backend used by the circuit-breaker node. */
  flaky: 'ok' | 'hang' = 'ok';
  flakyDisconnectFailures = 0;
  private readonly hung: http.ServerResponse[] = [];
  private server!: http.Server;
  port = 0;

  async start() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, Buffer.concat(chunks), res));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
  hitsTo(path: string) {
    return this.hits.filter((h) => h.path === path);
  }
  /** Requests held unanswered by the `/flaky` backend in 'hang' mode. */
  get hanging() {
    return this.hung.length;
  }
  release() {
    for (const r of this.hung.splice(0)) r.destroy();
  }
  async stop() {
    this.release();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private handle(req: http.IncomingMessage, raw: Buffer, res: http.ServerResponse) {
    // What a backend does: recompute the HMAC over timestamp, method, path and raw body, within the tolerance.
    const path = req.url ?? '';
    const signed = verify(
      SECRET,
      { method: req.method ?? '', path: path.split('?')[0]!, body: raw },
      req.headers['x-switchboard-signature'] as string | undefined,
    );
    const body = JSON.parse(raw.toString() || 'null');
    this.hits.push({ path, body, signed });
    const json = (status: number, v: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
    if (!signed) return json(401, { error: 'bad signature' });
    if (path.startsWith('/flaky/')) return this.flakyHandle(path.slice(6), body, res, json);
    switch (path) {
      case '/connect': {
        const cookie = body.headers.cookie ?? '';
        if (cookie.includes('session=good-alice')) return json(200, { user: 'alice', channels: ['auto:alice'], data: { role: 'admin' } });
        if (cookie.includes('session=good-bob')) return json(200, { user: 'bob' });
        if (cookie.includes('session=numeric')) return json(200, { user: 42 });
        if (cookie.includes('session=banned')) return json(403, { error: 'banned' });
        if (cookie.includes('session=badjson')) return res.writeHead(200, { 'content-type': 'text/html' }).end('<html>oops</html>');
        if (cookie.includes('session=badshape')) return json(200, { usr: 'x' });
        return json(401, { error: 'no session' });
      }
      case '/subscribe':
        return body.channel.startsWith('private:') && body.user !== 'alice' ? json(403, { error: 'not yours' }) : json(200, {});
      case '/publish':
        return body.user === 'alice' ? res.writeHead(204).end() : json(403, {});
      case '/rpc/add':
        return json(200, { result: body.params.a + body.params.b });
      case '/rpc/whoami':
        return json(200, { result: body.user });
      case '/rpc/admin':
        return json(403, { error: { code: 'forbidden', message: 'admins only' } });
      case '/rpc/bad':
        return json(400, { error: 'b must be a number' });
      case '/rpc/limited':
        return json(429, { error: 'slow down' });
      case '/rpc/crash':
        return json(500, { error: 'stack trace' });
      case '/rpc/badjson':
        return res.writeHead(200).end('{"result": ');
      case '/rpc/badshape':
        return json(200, [1, 2, 3]);
      case '/disconnect':
        return json(200, {});
      default:
        return json(404, { error: 'no such hook' });
    }
  }

  private flakyHandle(path: string, body: any, res: http.ServerResponse, json: (s: number, v: unknown) => void) {
    if (path === '/disconnect' && this.flakyDisconnectFailures > 0) {
      this.flakyDisconnectFailures--;
      return json(503, {});
    }
    if (this.flaky === 'hang') return void this.hung.push(res);
    if (path === '/connect') return json(200, { user: 'flaky-user' });
    if (path === '/rpc/echo') return json(200, { result: body.params });
    return json(200, {});
  }
}

describe('backends speak plain HTTP', { timeout: 90_000 }, () => {
  const backend = new TestBackend();
  let redis: TestRedis;
  let a: TestNode;
  let b: TestNode;
  let flaky: TestNode;
  let down: TestNode;
  const { open, close: closeClients } = clientPool();
  const as = (node: TestNode, session: string) => open(node, { extraHeaders: { cookie: `theme=dark; session=${session}` } });

  before(async () => {
    await backend.start();
    redis = await startRedis();
    const common = { BACKEND_URL: backend.url, WEBHOOK_SECRET: SECRET, CHANNEL_RULES: RULES };
    [a, b, flaky, down] = await Promise.all([
      startNode({ env: { ...common, REDIS_URL: redis.url, WEBHOOK_TIMEOUT_MS: '2000' } }),
      startNode({ env: { ...common, REDIS_URL: redis.url, WEBHOOK_TIMEOUT_MS: '2000' } }),
      startNode({
        env: {
          ...common,
          BACKEND_URL: `${backend.url}/flaky/`,
          WEBHOOK_TIMEOUT_MS: '300',
          WEBHOOK_CONCURRENCY: '2',
          WEBHOOK_BREAKER_FAILURES: '3',
          WEBHOOK_BREAKER_COOLDOWN_MS: '1000',
          WEBHOOK_RETRY_BACKOFF_MS: '100',
        },
      }),
      startNode({ env: { ...common, BACKEND_URL: `http://127.0.0.1:${await freePort()}`, WEBHOOK_TIMEOUT_MS: '2000' } }),
    ]);
  });
  after(async () => {
    closeClients();
    await Promise.all([a?.stop(), b?.stop(), flaky?.stop(), down?.stop()]);
    await redis?.stop();
    await backend.stop();
  });

  test("/connect: a session cookie lets one client in and refuses others with the backend's code and message", async () => {
    const alice = await as(a, 'good-alice');
    const connects = backend.hitsTo('/connect');
    const hit = connects[connects.length - 1]!;
    assert.equal(hit.body.headers.cookie, 'theme=dark; session=good-alice');
    assert.equal(hit.body.ip, '127.0.0.1');
    assert.deepEqual(hit.body.auth, {});
    assert.equal((await call(alice, 'rpc', 'whoami', null)).result, 'alice');
    assert.deepEqual(await refused(a.url, { extraHeaders: { cookie: 'session=banned' } }), { code: 'forbidden', message: 'banned' });
    assert.deepEqual(await refused(a.url, {}), { code: 'unauthorized', message: 'no session' });
    // A numeric user id from the backend is taken as a string.
    const n = await as(b, 'numeric');
    assert.equal((await call(n, 'rpc', 'whoami', null)).result, '42');
  });

  test('/connect channels are subscribed server-side; publications reach the client from the other node', async () => {
    const alice = await as(a, 'good-alice');
    const got = collect(alice);
    await waitFor(
      async () => {
        const r = await fetch(`${b.url}/api/channels/auto:alice`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } });
        return ((await r.json()) as { subscribers: number }).subscribers >= 1;
      },
      { what: 'the auto-subscription' },
    );
    await apiPublish(b.url, { channel: 'auto:alice', event: 'note', data: 'for alice' });
    await waitFor(() => got.some((g) => g.data === 'for alice'), { what: 'delivery to the auto-subscribed channel' });
  });

  test('/subscribe and /publish: 200 allows, 403 refuses with forbidden', async () => {
    const alice = await as(a, 'good-alice');
    const bob = await as(b, 'good-bob');
    assert.equal((await call(alice, 'subscribe', 'private:alice')).ok, true);
    const no = await call(bob, 'subscribe', 'private:alice');
    assert.equal(no.error.code, 'forbidden');
    const sub = backend.hitsTo('/subscribe').find((h) => h.body.user === 'bob');
    assert.deepEqual(sub?.body, { user: 'bob', channel: 'private:alice' });
    assert.equal((await call(bob, 'subscribe', 'room:1')).ok, true);
    const got = collect(bob);
    assert.equal((await call(alice, 'publish', 'room:1', 'chat', { text: 'hi' })).ok, true);
    await waitFor(() => got.length === 1, { what: "bob receives alice's publication" });
    assert.equal((await call(bob, 'publish', 'room:1', 'chat', { text: 'no' })).error.code, 'forbidden');
    assert.deepEqual(backend.hitsTo('/publish').find((h) => h.body.user === 'alice')?.body, {
      user: 'alice',
      channel: 'room:1',
      event: 'chat',
      data: { text: 'hi' },
    });
  });

  test("/rpc/{method}: the result, and 4xx errors mapped to our codes with the backend's message", async () => {
    const alice = await as(a, 'good-alice');
    assert.deepEqual(await call(alice, 'rpc', 'add', { a: 2, b: 3 }), { ok: true, result: 5 });
    assert.deepEqual(backend.hitsTo('/rpc/add').at(-1)!.body, { user: 'alice', params: { a: 2, b: 3 } });
    assert.deepEqual(await call(alice, 'rpc', 'admin', {}), { ok: false, error: { code: 'forbidden', message: 'admins only' } });
    assert.deepEqual(await call(alice, 'rpc', 'bad', {}), { ok: false, error: { code: 'bad_request', message: 'b must be a number' } });
    assert.deepEqual(await call(alice, 'rpc', 'limited', {}), { ok: false, error: { code: 'rate_limited', message: 'slow down' } });
    assert.deepEqual(await call(alice, 'rpc', 'nope', {}), { ok: false, error: { code: 'not_found', message: 'no such hook' } });
    const crash = await call(alice, 'rpc', 'crash', {});
    assert.deepEqual(crash.error, { code: 'unavailable', message: 'the backend answered /rpc/crash with 500' });
    assert.ok((await metricValue(a.internalUrl, 'switchboard_webhook_requests_total', { hook: 'rpc', outcome: 'ok' })) >= 1);
    assert.ok((await metricValue(a.internalUrl, 'switchboard_webhook_requests_total', { hook: 'rpc', outcome: 'refused' })) >= 4);
    const text = await (await fetch(`${a.internalUrl}/metrics`)).text();
    assert.match(text, /switchboard_webhook_duration_seconds_count\{[^}]*hook="rpc"/);
    assert.doesNotMatch(text, /hook="(add|admin|crash)"/, 'the RPC method is never a label');
  });

  test('malformed backend answers are `unavailable` errors that say what was wrong', async () => {
    const alice = await as(a, 'good-alice');
    const badJson = await call(alice, 'rpc', 'badjson', {});
    assert.equal(badJson.error.code, 'unavailable');
    assert.match(badJson.error.message, /^the backend answered \/rpc\/badjson with invalid JSON: /);
    const badShape = await call(alice, 'rpc', 'badshape', {});
    assert.match(badShape.error.message, /^the backend answered \/rpc\/badshape with an unexpected shape/);
    const c1 = await refused(a.url, { extraHeaders: { cookie: 'session=badjson' } });
    assert.equal(c1.code, 'unavailable');
    assert.match(c1.message, /^the backend answered \/connect with invalid JSON: /);
    const c2 = await refused(a.url, { extraHeaders: { cookie: 'session=badshape' } });
    assert.match(c2.message, /^the backend answered \/connect with an unexpected shape: user: /);
    assert.ok(
      (await metricValue(a.internalUrl, 'switchboard_webhook_requests_total', { hook: 'connect', outcome: 'invalid_answer' })) >= 2,
    );
  });

  test('/disconnect {user, reason} is delivered after the client leaves', async () => {
    const bob = await as(a, 'good-bob');
    const before = backend.hitsTo('/disconnect').length;
    bob.disconnect();
    await waitFor(() => backend.hitsTo('/disconnect').length > before, { what: '/disconnect' });
    assert.deepEqual(backend.hitsTo('/disconnect').at(-1)!.body, { user: 'bob', reason: 'client_namespace_disconnect' });
  });

  test('every webhook call carried a valid X-Switchboard-Signature', () => {
    assert.ok(backend.hits.length > 10);
    assert.deepEqual(
      backend.hits.filter((h) => !h.signed),
      [],
    );
  });

  test('a backend that is down: connect_error `unavailable`', async () => {
    const err = await refused(down.url, {});
    assert.equal(err.code, 'unavailable');
    assert.match(err.message, /^the backend is unreachable: ECONNREFUSED/);
  });

  test('a hanging backend: `timeout`, the concurrency bound, the circuit opens (fast `unavailable`) and recovers', async () => {
    backend.flaky = 'ok';
    const c = await open(flaky);
    assert.deepEqual(await call(c, 'rpc', 'echo', 1), { ok: true, result: 1 });

    backend.flaky = 'hang';
    // WEBHOOK_CONCURRENCY=2: a third call while two hang is refused at once.
    const hung = backend.hanging;
    const two = [call(c, 'rpc', 'echo', 2), call(c, 'rpc', 'echo', 3)];
    await waitFor(() => backend.hanging === hung + 2, { what: 'two calls hanging at the backend' });
    const three = await Promise.all([...two, call(c, 'rpc', 'echo', 4)]);
    assert.deepEqual(
      three.map((r) => r.error.code),
      ['timeout', 'timeout', 'unavailable'],
    );
    assert.match(three[2].error.message, /more than 2 backend calls in flight/);
    assert.equal(three[0].error.message, 'the backend did not answer /rpc/echo within 300 ms');
    backend.release();

    // A success resets the failure count; then three timeouts in a row open the circuit.
    backend.flaky = 'ok';
    assert.equal((await call(c, 'rpc', 'echo', 5)).ok, true);
    backend.flaky = 'hang';
    for (let i = 0; i < 3; i++) assert.equal((await call(c, 'rpc', 'echo', i)).error.code, 'timeout');
    const reachedBackend = backend.hitsTo('/flaky/rpc/echo').length;
    const open1 = await call(c, 'rpc', 'echo', 9);
    assert.equal(open1.error.code, 'unavailable');
    assert.match(open1.error.message, /circuit open/);

    backend.release();
    backend.flaky = 'ok';
    // Calls answer `unavailable` without reaching the backend until the cool-down (1 s) lets the probe through.
    const back = await waitFor(
      async () => {
        const r = await call(c, 'rpc', 'echo', 'back');
        if (!r.ok) assert.match(r.error.message, /circuit open/);
        return r.ok ? r : undefined;
      },
      { what: 'the probe after the cool-down', interval: 100 },
    );
    assert.deepEqual(back, { ok: true, result: 'back' });
    assert.deepEqual(await call(c, 'rpc', 'echo', 'again'), { ok: true, result: 'again' });
    assert.equal(
      backend.hitsTo('/flaky/rpc/echo').length,
      reachedBackend + 2,
      'the open circuit sent nothing; the probe and the next call did',
    );
    assert.ok((await metricValue(flaky.internalUrl, 'switchboard_webhook_requests_total', { hook: 'rpc', outcome: 'circuit_open' })) >= 1);
    assert.ok((await metricValue(flaky.internalUrl, 'switchboard_webhook_requests_total', { hook: 'rpc', outcome: 'timeout' })) >= 5);
    assert.ok((await metricValue(flaky.internalUrl, 'switchboard_webhook_requests_total', { hook: 'rpc', outcome: 'overloaded' })) >= 1);
  });

  test('/disconnect is retried with backoff while the backend fails', async () => {
    backend.flaky = 'ok';
    const c = await open(flaky);
    backend.flakyDisconnectFailures = 2;
    const before = backend.hitsTo('/flaky/disconnect').length;
    c.disconnect();
    await waitFor(() => backend.hitsTo('/flaky/disconnect').length === before + 3 && backend.flakyDisconnectFailures === 0, {
      what: 'three /disconnect attempts',
    });
    assert.ok(
      (await metricValue(flaky.internalUrl, 'switchboard_webhook_requests_total', { hook: 'disconnect', outcome: 'server_error' })) >= 2,
    );
    await waitFor(
      async () => (await metricValue(flaky.internalUrl, 'switchboard_webhook_requests_total', { hook: 'disconnect', outcome: 'ok' })) >= 1,
      { what: 'the final success' },
    );
  });

  test('HTTP publish: several channels at once, the size limits (413), and Idempotency-Key across two nodes', async () => {
    const s = await as(b, 'good-bob');
    const got = collect(s);
    await call(s, 'subscribe', 'open:c1');
    await call(s, 'subscribe', 'open:c2');
    const many = await apiPublish(a.url, { channels: ['open:c1', 'open:c2'], event: 'multi', data: 1 });
    assert.equal(many.status, 200);
    assert.equal(many.body.ids.length, 2);
    await waitFor(() => got.length === 2, { what: 'both channels' });
    assert.deepEqual(got.map((g) => g.meta.channel).sort(), ['open:c1', 'open:c2']);

    const big = await apiPublish(a.url, { channel: 'open:c1', event: 'big', data: 'x'.repeat(70_000) });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'too_large');
    const huge = await apiPublish(a.url, { channel: 'open:c1', event: 'big', data: 'x'.repeat(1_100_000) });
    assert.equal(huge.status, 413);

    const key = { 'idempotency-key': `order-${Date.now()}` };
    const body = { channel: 'open:c1', event: 'once', data: { n: 1 } };
    const [r1, r2] = await Promise.all([
      apiPublish(a.url, body, 'test-key-0123456789abcdef', key),
      apiPublish(b.url, body, 'test-key-0123456789abcdef', key),
    ]);
    assert.deepEqual([r1.status, r2.status], [200, 200]);
    assert.equal([r1.body, r2.body].filter((x) => x.duplicate === true).length, 1);
    assert.equal(r1.body.id, r2.body.id, 'the duplicate answers with the first publication id');
    // Fence: a later publication on the channel arrives after anything published before it.
    assert.equal((await apiPublish(b.url, { channel: 'open:c1', event: 'fence', data: null })).status, 200);
    await waitFor(() => got.some((g) => g.event === 'fence'), { what: 'the fence publication' });
    assert.equal(got.filter((g) => g.event === 'once').length, 1);
  });

  test('GRIP: @fanoutio/grip Publishers (Bearer key on one node, JWT on the other) reach subscribers on both nodes', async () => {
    const s1 = await as(a, 'good-bob');
    const s2 = await as(b, 'good-bob');
    const got1 = collect(s1);
    const got2 = collect(s2);
    await call(s1, 'subscribe', 'open:grip');
    await call(s2, 'subscribe', 'open:grip');
    const bearer = new Publisher({ control_uri: a.url, key: 'test-key-0123456789abcdef' });
    const jwt = new Publisher({ control_uri: b.url, control_iss: 'my-backend', key: 'test-key-0123456789abcdef' });
    await bearer.publishFormats('open:grip', new WebSocketMessageFormat('via bearer'));
    await jwt.publishFormats('open:grip', new WebSocketMessageFormat('via jwt'));
    await jwt.publishHttpStream('open:grip', 'stream content');
    for (const got of [got1, got2]) {
      await waitFor(() => got.length === 3, { what: 'three GRIP publications' });
      assert.deepEqual(
        got.map((g) => [g.event, g.data]),
        [
          ['message', 'via bearer'],
          ['message', 'via jwt'],
          ['message', 'stream content'],
        ],
      );
    }
    const wrong = new Publisher({ control_uri: a.url, control_iss: 'x', key: 'not-a-key' });
    await assert.rejects(
      wrong.publishFormats('open:grip', new WebSocketMessageFormat('no')),
      (e: { context?: { statusCode: number } }) => e.context?.statusCode === 401,
    );
    assert.ok((await metricValue(a.internalUrl, 'switchboard_publications_total', { source: 'grip' })) >= 1);
  });

  test("GRIP raw: Pushpin's answer, items with ids published once, a bad item publishes nothing", async () => {
    const s = await as(a, 'good-bob');
    const got = collect(s);
    await call(s, 'subscribe', 'open:raw');
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${b.url}/publish/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer test-key-0123456789abcdef', ...headers },
        body: JSON.stringify(body),
      });
    const item = { channel: 'open:raw', id: 'evt-1', formats: { 'ws-message': { content: 'one' }, 'http-stream': { content: 'one\n' } } };
    const r = await post({ items: [item] });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'Published\n');
    assert.equal((await post({ items: [item] })).status, 200, 'a retried item is accepted…');
    const bad = await post({
      items: [
        { channel: 'open:raw', formats: { 'ws-message': { content: 'two' } } },
        { channel: 'bad channel!', formats: { 'ws-message': { content: 'x' } } },
      ],
    });
    assert.equal(bad.status, 400);
    assert.equal((await post({ items: [item] }, { authorization: 'Bearer nope' })).status, 401);
    // Fence: a later publication on the channel arrives after anything published before it.
    assert.equal((await apiPublish(b.url, { channel: 'open:raw', event: 'fence', data: null })).status, 200);
    await waitFor(() => got.some((g) => g.event === 'fence'), { what: 'the fence publication' });
    assert.deepEqual(
      got.filter((g) => g.event !== 'fence').map((g) => g.data),
      ['one'],
      '…but published once; the bad request published nothing',
    );
  });

  test('@socket.io/redis-emitter (key prefix socket.io) reaches subscribers on every node', async () => {
    const s1 = await as(a, 'good-bob');
    const s2 = await as(b, 'good-bob');
    await call(s1, 'subscribe', 'open:emit');
    await call(s2, 'subscribe', 'open:emit');
    const got: unknown[][] = [[], []];
    s1.on('update', (d: unknown) => got[0]!.push(d));
    s2.on('update', (d: unknown) => got[1]!.push(d));
    const client = new Redis(redis.url);
    try {
      new Emitter(client).to('open:emit').emit('update', { n: 1 });
      await waitFor(() => got[0]!.length === 1 && got[1]!.length === 1, { what: 'emitter delivery on both nodes' });
      assert.deepEqual(got, [[{ n: 1 }], [{ n: 1 }]]);
    } finally {
      client.disconnect();
    }
  });
});
