// Webhook calls in process against a tiny node:http backend: directly through Webhooks, and through a
// Switchboard (memory bus, port 0) whose clients call RPC methods the backend answers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SbError, type Switchboard } from '../../src/index.js';
import { Webhooks, type WebhookOptions } from '../../src/hooks/webhooks.js';
import { SIGNATURE_HEADER, verify } from '../../src/hooks/signature.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/log/logger.js';
import { call, clientPool, metricValue } from '../helpers/client.js';
import { startInProcess } from '../helpers/inprocess.js';
import { readmeBlock, writeBlocks } from '../helpers/readme.js';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const SECRET = 'in-process-secret-0123456789abcdefgh';
const TIMEOUT_MS = 300;
/** Nesting of /rpc/deep's answer: JSON.parse takes it, a recursive walk over it overflows the stack. */
const DEEP = 100_000;

interface Hit {
  path: string;
  body: string;
  signature: string | undefined;
}

/** Lets everyone connect as ann, answers /rpc/echo with its params, and never answers /rpc/hang (until stop()). */
class Backend {
  readonly hits: Hit[] = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      this.hits.push({ path: req.url ?? '', body, signature: req.headers[SIGNATURE_HEADER] as string | undefined });
      if (req.url === '/rpc/hang') return; // the timeout answers for us
      if (req.url === '/connect') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ user: 'ann' }));
      if (req.url === '/rpc/deep')
        return res.writeHead(200, { 'content-type': 'application/json' }).end(`{"result":${'['.repeat(DEEP)}${']'.repeat(DEEP)}}`);
      if (req.url === '/rpc/echo')
        return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ result: JSON.parse(body).params }));
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'no such method' }));
    });
  });
  url = '';
  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }
  async stop() {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

describe('webhooks in process', () => {
  const backend = new Backend();
  let hooks: Webhooks;
  let sb: Switchboard;
  let url: string;
  let internalUrl: string;
  const pool = clientPool();
  const ctx = { user: 'ann', connectionId: 'c1', ip: '127.0.0.1' };

  before(async () => {
    await backend.start();
    const opts: WebhookOptions = {
      url: backend.url,
      secret: SECRET,
      timeoutMs: TIMEOUT_MS,
      concurrency: 8,
      breakerFailures: 100,
      breakerCooldownMs: 1000,
      disconnectRetries: 0,
      retryBackoffMs: 10,
      disconnectQueue: 10,
      maxAnswerBytes: 65536,
    };
    hooks = new Webhooks(opts, createMetrics('in-process'), createLogger('warn', 'in-process'));
    ({ sb, url, internalUrl } = await startInProcess({
      backendUrl: backend.url,
      webhookSecret: SECRET,
      webhookTimeoutMs: String(TIMEOUT_MS),
    }));
  });
  after(async () => {
    pool.close();
    await sb?.close();
    await hooks?.flush(0);
    await backend.stop();
  });

  test('a call is a signed POST: the backend verifies the signature over the exact body it got', async () => {
    assert.deepEqual(await hooks.rpc(ctx, 'echo', { n: 1 }), { n: 1 });
    const hit = backend.hits.findLast((h) => h.path === '/rpc/echo')!;
    assert.match(hit.signature ?? '', /^t=\d+,v1=[0-9a-f]{64}$/);
    assert.ok(verify(SECRET, { method: 'POST', path: hit.path, body: hit.body }, hit.signature), 'the signature matches the body');
    assert.ok(!verify('another-secret', { method: 'POST', path: hit.path, body: hit.body }, hit.signature));
    assert.deepEqual(JSON.parse(hit.body), { user: 'ann', params: { n: 1 } });
  });

  test('a backend that does not answer within the timeout: the call fails with code timeout', async () => {
    await assert.rejects(hooks.rpc(ctx, 'hang', {}), (err: unknown) => err instanceof SbError && err.code === 'timeout');
    // A refusal is not a timeout.
    await assert.rejects(hooks.rpc(ctx, 'missing', {}), (err: unknown) => err instanceof SbError && err.code === 'not_found');
  });

  test('through a Switchboard: a client RPC reaches the backend signed, and a hung backend answers the client timeout', async () => {
    const c = await pool.open(url);
    assert.deepEqual(await call(c, 'rpc', 'echo', { n: 2 }), { ok: true, result: { n: 2 } });
    const hit = backend.hits.findLast((h) => h.path === '/rpc/echo')!;
    assert.ok(verify(SECRET, { method: 'POST', path: hit.path, body: hit.body }, hit.signature));
    const hung = await call(c, 'rpc', 'hang', {});
    assert.equal(hung.ok, false);
    assert.equal(hung.error.code, 'timeout');
    assert.equal(await metricValue(internalUrl, 'switchboard_webhook_requests_total', { hook: 'rpc', outcome: 'timeout' }), 1);
  });

  test("the README's Node verification accepts a real call and refuses it replayed 852 s later or re-sent to another hook", async () => {
    const dir = writeBlocks({ 'verify-switchboard.mjs': readmeBlock('js', 'verify-switchboard.mjs') });
    const { verifySwitchboard } = (await import(pathToFileURL(join(dir, 'verify-switchboard.mjs')).href)) as {
      verifySwitchboard: (secret: string, header: string | undefined, method: string, path: string, raw: Buffer, nowS?: number) => boolean;
    };
    assert.deepEqual(await hooks.rpc(ctx, 'echo', { n: 3 }), { n: 3 });
    const hit = backend.hits.findLast((h) => h.path === '/rpc/echo')!;
    const raw = Buffer.from(hit.body);
    const t = Number(/^t=(\d+),/.exec(hit.signature ?? '')?.[1]);
    assert.ok(verifySwitchboard(SECRET, hit.signature, 'POST', hit.path, raw), 'the call as it came');
    assert.ok(verifySwitchboard(SECRET, hit.signature, 'POST', hit.path, raw, t + 300), 'inside the tolerance');
    assert.ok(!verifySwitchboard(SECRET, hit.signature, 'POST', hit.path, raw, t + 852), 'replayed 852 s later');
    for (const other of ['/subscribe', '/publish', '/rpc/other', '/rpc/'])
      assert.ok(!verifySwitchboard(SECRET, hit.signature, 'POST', other, raw), `re-sent to ${other}`);
    assert.ok(!verifySwitchboard(SECRET, hit.signature, 'POST', hit.path, Buffer.from(hit.body.replace('3', '4'))), 'another body');
    assert.ok(!verifySwitchboard('another-secret-0123456789abcdefghij', hit.signature, 'POST', hit.path, raw), 'another secret');
  });

  test('an RPC answer nested too deeply for the encoder reaches the client as `internal`, and the connection keeps working', async () => {
    const c = await pool.open(url);
    const deep = await call(c, 'rpc', 'deep', {});
    assert.equal(deep.ok, false);
    assert.equal(deep.error.code, 'internal');
    assert.match(deep.error.message, /nested more than 100 levels/);
    assert.deepEqual(await call(c, 'rpc', 'echo', [[[[1]]]]), { ok: true, result: [[[[1]]]] });
  });
});
