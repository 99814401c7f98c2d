// Webhook bulkheads: one client's RPC method that hangs or fails takes neither the node's /connect budget nor its
// breaker, nor another method's breaker; one connection's RPCs in flight are capped (issue 11 item 4).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Switchboard } from '../../src/index.js';
import { call, clientPool, metricValue } from '../helpers/client.js';
import { startInProcess } from '../helpers/inprocess.js';
import { waitFor } from '../helpers/ports.js';

const SECRET = 'bulkhead-secret-0123456789abcdefghij';

/** Lets everyone in under their `auth.name`; /rpc/hang is held until release(), /rpc/fail answers 500. */
class Backend {
  readonly paths: string[] = [];
  private readonly held: http.ServerResponse[] = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString() || 'null');
      this.paths.push(req.url ?? '');
      const json = (status: number, v: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (req.url === '/connect') return json(200, { user: String(body.auth?.name ?? 'anon') });
      if (req.url === '/rpc/hang') return void this.held.push(res);
      if (req.url === '/rpc/fail') return json(500, { error: 'broken' });
      if (req.url === '/rpc/echo') return json(200, { result: body.params });
      json(200, {});
    });
  });
  url = '';
  get holding() {
    return this.held.length;
  }
  count(path: string) {
    return this.paths.filter((p) => p === path).length;
  }
  release() {
    for (const r of this.held.splice(0)) r.destroy();
  }
  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }
  async stop() {
    this.release();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

describe('webhook bulkheads', () => {
  const backend = new Backend();
  let sb: Switchboard;
  let url: string;
  let internalUrl: string;
  const pool = clientPool();
  const as = (name: string) => pool.open(url, { auth: { name } });

  before(async () => {
    await backend.start();
    ({ sb, url, internalUrl } = await startInProcess({
      backendUrl: backend.url,
      webhookSecret: SECRET,
      webhookConcurrency: '4',
      rpcInFlightPerConnection: '2',
      webhookBreakerFailures: '3',
      // Long enough that no circuit this test opens closes again while it runs.
      webhookBreakerCooldownMs: '600000',
      webhookTimeoutMs: '30000',
    }));
  });
  after(async () => {
    pool.close();
    await sb?.close();
    await backend.stop();
  });

  test('hung RPCs: one connection gets at most RPC_INFLIGHT_PER_CONNECTION, the /rpc budget fills, and users still connect', async () => {
    const mallory = await as('mallory');
    const trudy = await as('trudy');
    const hung = [call(mallory, 'rpc', 'hang', 1), call(mallory, 'rpc', 'hang', 2)];
    await waitFor(() => backend.holding === 2, { what: "mallory's two calls held at the backend" });
    const third = await call(mallory, 'rpc', 'hang', 3);
    assert.equal(third.error?.code, 'rate_limited');
    assert.equal(third.error.message, 'at most 2 RPC calls in flight per connection');
    assert.equal(await metricValue(internalUrl, 'switchboard_rejections_total', { reason: 'rpc_in_flight' }), 1);

    hung.push(call(trudy, 'rpc', 'hang', 4), call(trudy, 'rpc', 'hang', 5));
    await waitFor(() => backend.holding === 4, { what: 'the whole /rpc budget (4) held' });
    const alice = await as('alice');
    const full = await call(alice, 'rpc', 'echo', 'x');
    assert.equal(full.error?.code, 'unavailable');
    assert.match(full.error.message, /more than 4 backend calls in flight to \/rpc/);
    // /connect has a budget of its own: while /rpc's is full, five users connect.
    const before = backend.count('/connect');
    for (let i = 0; i < 5; i++) await as(`user-${i}`);
    assert.equal(backend.count('/connect'), before + 5);

    backend.release();
    const answers = await Promise.all(hung);
    assert.deepEqual(
      answers.map((a) => a.error?.code),
      ['unavailable', 'unavailable', 'unavailable', 'unavailable'],
    );
  });

  test('a failing method opens its own circuit only: other methods answer and 20 other users connect', async () => {
    const mallory = await as('mallory-2');
    for (let i = 0; i < 3; i++) {
      const r = await call(mallory, 'rpc', 'fail', i);
      assert.equal(r.error?.code, 'unavailable');
      assert.equal(r.error.message, 'the backend answered /rpc/fail with 500');
    }
    const sent = backend.count('/rpc/fail');
    const open = await call(mallory, 'rpc', 'fail', 'again');
    assert.equal(open.error?.code, 'unavailable');
    assert.match(open.error.message, /failing \/rpc\/fail; calls are paused .* \(circuit open\)/);
    assert.equal(backend.count('/rpc/fail'), sent, 'the open circuit did not call the backend');
    // The `hang` method's four failures of the last test opened its circuit too; echo has its own.
    assert.match((await call(mallory, 'rpc', 'hang', 0)).error.message, /failing \/rpc\/hang;.*circuit open/);
    assert.deepEqual(await call(mallory, 'rpc', 'echo', 'still here'), { ok: true, result: 'still here' });

    // One after another: /connect's own budget is 4 here.
    const users = [];
    for (let i = 0; i < 20; i++) users.push(await as(`other-${i}`));
    assert.deepEqual(await call(users[19]!, 'rpc', 'echo', 19), { ok: true, result: 19 });
    assert.equal(await metricValue(internalUrl, 'switchboard_webhook_requests_total', { hook: 'connect', outcome: 'circuit_open' }), 0);
    assert.equal(await metricValue(internalUrl, 'switchboard_webhook_requests_total', { hook: 'connect', outcome: 'overloaded' }), 0);
    assert.ok((await metricValue(internalUrl, 'switchboard_webhook_requests_total', { hook: 'rpc', outcome: 'circuit_open' })) >= 2);
  });
});
