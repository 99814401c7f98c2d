// A webhook call as the backend receives it: its request line, headers (Host, Basic credentials from BACKEND_URL,
// content type and length, user agent), a signature that verifies over the exact bytes, and a kept-alive connection.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Switchboard } from '../../src/index.js';
import { verify, SIGNATURE_HEADER } from '../../src/hooks/signature.js';
import { call, clientPool } from '../helpers/client.js';
import { startInProcess } from '../helpers/inprocess.js';

const SECRET = 'request-secret-0123456789abcdefghij';
/** MAX_HTTP_BODY_BYTES of the node: also the largest webhook answer it reads. */
const LIMIT = 4096;

interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: string;
  socket: unknown;
}

describe('a webhook call as the backend sees it', () => {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: req.rawHeaders,
        headers: req.headers,
        body,
        socket: req.socket,
      });
      const json = (v: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (req.url === '/hooks/connect') return json({ user: 'u1' });
      if (req.url === '/hooks/rpc/huge') {
        const text = JSON.stringify({ result: 'x'.repeat(LIMIT) });
        return res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
      }
      if (req.url === '/hooks/rpc/streamed') {
        // No content-length: the size shows only as the chunks come.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"result":"');
        for (let i = 0; i < 8; i++) res.write('y'.repeat(LIMIT / 4));
        return res.end('"}');
      }
      if (req.url === '/hooks/rpc/moved') return res.writeHead(302, { location: '/hooks/rpc/echo' }).end();
      if (req.url?.startsWith('/hooks/rpc/')) return json({ result: JSON.parse(body).params });
      json({});
    });
  });
  let sb: Switchboard;
  let url: string;
  let port = 0;
  const pool = clientPool();

  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    // Credentials with characters that are percent-encoded in a URL; a base path with a trailing slash.
    ({ sb, url } = await startInProcess({
      backendUrl: `http://hook%40user:p%3Ass@127.0.0.1:${port}/hooks/`,
      webhookSecret: SECRET,
      maxHttpBodyBytes: String(LIMIT),
    }));
  });
  after(async () => {
    pool.close();
    await sb?.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  test('request line, headers, signature over the exact body, and one kept-alive connection for calls in a row', async () => {
    const c = await pool.open(url);
    const params = { text: 'é "q"', n: [1, 2] };
    assert.deepEqual(await call(c, 'rpc', 'orders.list', params), { ok: true, result: params });
    assert.deepEqual(await call(c, 'rpc', 'orders.list', { again: true }), { ok: true, result: { again: true } });
    const rpcs = seen.filter((s) => s.url.startsWith('/hooks/rpc/'));
    assert.equal(rpcs.length, 2);
    for (const s of rpcs) {
      assert.equal(s.method, 'POST');
      assert.equal(s.url, '/hooks/rpc/orders.list');
      assert.equal(s.headers.host, `127.0.0.1:${port}`);
      assert.equal(s.headers.authorization, `Basic ${Buffer.from('hook@user:p:ss').toString('base64')}`);
      assert.equal(s.headers['content-type'], 'application/json');
      assert.equal(s.headers['content-length'], String(Buffer.byteLength(s.body)));
      assert.equal(s.headers['user-agent'], 'switchboard');
      assert.equal(s.headers.connection, 'keep-alive');
      assert.ok(verify(SECRET, { method: 'POST', path: s.url, body: s.body }, s.headers[SIGNATURE_HEADER] as string), 'signature verifies');
      // Each header once: nothing sent twice under two spellings.
      const names = s.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.deepEqual(names.length, new Set(names).size, `headers: ${names.join(', ')}`);
    }
    assert.deepEqual(JSON.parse(rpcs[0]!.body), { user: 'u1', params });
    assert.equal(rpcs[0]!.socket, rpcs[1]!.socket, "the second call reused the first one's connection");
  });

  test('an answer over the size limit (declared, or only as it streams) and a redirect fail the call as `unavailable`; the next call works', async () => {
    const c = await pool.open(url);
    const huge = await call(c, 'rpc', 'huge');
    assert.equal(huge.ok, false);
    assert.equal(huge.error.code, 'unavailable');
    assert.match(huge.error.message, new RegExp(`an answer of \\d+ bytes; at most ${LIMIT} are read`));
    const streamed = await call(c, 'rpc', 'streamed');
    assert.equal(streamed.error?.code, 'unavailable');
    assert.match(streamed.error.message, new RegExp(`an answer over ${LIMIT} bytes`));
    const moved = await call(c, 'rpc', 'moved');
    assert.equal(moved.error?.code, 'unavailable');
    assert.match(moved.error.message, /a redirect \(302\); BACKEND_URL must point at the webhooks themselves/);
    assert.equal(seen.filter((s) => s.url === '/hooks/rpc/echo').length, 0, 'the redirect was not followed');
    assert.deepEqual(await call(c, 'rpc', 'after', { fine: 1 }), { ok: true, result: { fine: 1 } });
  });
});
