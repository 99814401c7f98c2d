// Cross-origin browsers (Chromium): a page on an allowed second origin receives over polling-only Socket.IO,
// EventSource and fetch (CORS); a page on another origin is refused; and by default (no ALLOWED_ORIGINS) a
// foreign page carrying the victim's session cookie cannot connect as the victim.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startNode, type TestNode } from '../helpers/node.js';
import { freePort } from '../helpers/ports.js';
import { hasBinary } from '../helpers/prereq.js';
import { launchChromium } from '../helpers/browser.js';

const KEY = 'test-key-0123456789abcdef';

/** A web server standing for a site: an empty page that loads the Socket.IO client from `node`. */
async function site(nodeUrl: string): Promise<{ url: string; close(): Promise<void> }> {
  const port = await freePort();
  const srv = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><script src="${nodeUrl}/socket.io/socket.io.js"></script></head><body>site</body></html>`);
  });
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

describe('cross-origin browsers', { timeout: 120_000 }, () => {
  let allowed: TestNode; // ALLOWED_ORIGINS names the app's page
  let strict: TestNode; // default policy, cookie-authenticated backend
  let app: Awaited<ReturnType<typeof site>>;
  let evil: Awaited<ReturnType<typeof site>>;
  let backend: http.Server;
  const connects: string[] = [];

  before(async () => {
    if (!hasBinary('chromium')) return;
    const backendPort = await freePort();
    // The README's PHP pattern: /connect answers from the session cookie the browser sent.
    backend = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const cookie = (JSON.parse(body || '{}') as { headers?: { cookie?: string } }).headers?.cookie ?? '';
        connects.push(cookie);
        res.setHeader('content-type', 'application/json');
        if (req.url?.endsWith('/connect') && /session=victim/.test(cookie))
          return res.end(JSON.stringify({ user: 'victim', channels: ['user:victim'] }));
        res.statusCode = req.url?.endsWith('/connect') ? 401 : 200;
        res.end('{}');
      });
    });
    await new Promise<void>((r) => backend.listen(backendPort, '127.0.0.1', () => r()));
    const appPort = await freePort();
    const appOrigin = `http://127.0.0.1:${appPort}`;
    [allowed, strict] = await Promise.all([
      startNode({ env: { ALLOWED_ORIGINS: appOrigin, LOG_LEVEL: 'warn' } }),
      startNode({
        env: { BACKEND_URL: `http://127.0.0.1:${backendPort}`, WEBHOOK_SECRET: 'cors-test-webhook-secret-0123456789', LOG_LEVEL: 'warn' },
      }),
    ]);
    const srv = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html><head><script src="${allowed.url}/socket.io/socket.io.js"></script></head><body>app</body></html>`);
    });
    await new Promise<void>((r) => srv.listen(appPort, '127.0.0.1', () => r()));
    app = { url: appOrigin, close: () => new Promise((r) => srv.close(() => r())) };
    evil = await site(allowed.url);
  });
  after(async () => {
    await Promise.all([allowed?.stop(), strict?.stop(), app?.close(), evil?.close()]);
    await new Promise((r) => (backend ? backend.close(() => r(undefined)) : r(undefined)));
  });

  test('an allowed second origin receives over polling-only Socket.IO, EventSource and fetch; another origin is refused; a foreign page with the victim’s cookie is refused by default', async (t) => {
    const browser = await launchChromium(t);
    if (!browser) return;
    try {
      const ctx = await browser.newContext();
      // The victim is logged in to the site whose backend authenticates sockets by cookie (any port of this host).
      await ctx.addCookies([{ name: 'session', value: 'victim', domain: '127.0.0.1', path: '/' }]);
      const page = await ctx.newPage();

      await page.goto(app.url);
      const ok = await page.evaluate(
        async ({ node, key }) => {
          const w = globalThis as unknown as { io: (url: string, o: unknown) => any };
          const socket = w.io(node, { transports: ['polling'], reconnection: false });
          await new Promise<void>((resolve, reject) => {
            socket.once('connect', () => resolve());
            socket.once('connect_error', (e: Error) => reject(new Error(`socket.io: ${e.message}`)));
          });
          const sub = await socket.timeout(5000).emitWithAck('subscribe', 'demo:cors', {});
          const viaSocket = new Promise((resolve) => socket.once('hello', (data: unknown) => resolve(data)));
          const es = new EventSource(`${node}/sse?channel=demo:cors`);
          const viaSse = new Promise((resolve) => es.addEventListener('hello', (e) => resolve(JSON.parse((e as MessageEvent).data))));
          await new Promise<void>((resolve, reject) => {
            es.onopen = () => resolve();
            es.onerror = () => reject(new Error('EventSource refused'));
          });
          const res = await fetch(`${node}/api/publish`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ channel: 'demo:cors', event: 'hello', data: { from: 'fetch' } }),
          });
          const published = (await res.json()) as { ok?: boolean };
          const out = { sub, published, transport: socket.io.engine.transport.name, socket: await viaSocket, sse: await viaSse };
          es.close();
          socket.close();
          return out;
        },
        { node: allowed.url, key: KEY },
      );
      assert.equal(ok.sub.ok, true);
      assert.equal(ok.published.ok, true, 'fetch read the answer (CORS)');
      assert.equal(ok.transport, 'polling');
      assert.deepEqual(ok.socket, { from: 'fetch' });
      assert.deepEqual(ok.sse, { from: 'fetch' });

      await page.goto(evil.url);
      const refused = await page.evaluate(
        async ({ node, key }) => {
          const w = globalThis as unknown as { io: (url: string, o: unknown) => any };
          const polling = await new Promise<string>((resolve) => {
            const s = w.io(node, { transports: ['polling'], reconnection: false });
            s.once('connect', () => resolve('connected'));
            s.once('connect_error', () => resolve('refused'));
          });
          const sse = await new Promise<string>((resolve) => {
            const es = new EventSource(`${node}/sse?channel=demo:cors`);
            es.onopen = () => resolve('open');
            es.onerror = () => {
              es.close();
              resolve('refused');
            };
          });
          const api = await fetch(`${node}/api/publish`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: '{}',
          }).then(
            () => 'answered',
            () => 'refused',
          );
          return { polling, sse, api };
        },
        { node: allowed.url, key: KEY },
      );
      assert.deepEqual(refused, { polling: 'refused', sse: 'refused', api: 'refused' });

      // Default policy (no ALLOWED_ORIGINS): the foreign page's WebSocket carries the victim's cookie, and is refused
      // before the backend is even asked who it is.
      await page.goto(`${evil.url}/?strict`);
      await page.addScriptTag({ url: `${strict.url}/socket.io/socket.io.js` });
      const hijack = await page.evaluate(async (node) => {
        const w = globalThis as unknown as { io: (url: string, o: unknown) => any };
        return new Promise<string>((resolve) => {
          const s = w.io(node, { transports: ['websocket'], reconnection: false });
          s.once('connect', async () => {
            const r = await s
              .timeout(3000)
              .emitWithAck('subscribe', 'user:victim', {})
              .catch(() => ({ ok: false }));
            resolve(r.ok ? 'connected as the victim' : 'connected');
          });
          s.once('connect_error', () => resolve('refused'));
        });
      }, strict.url);
      assert.equal(hijack, 'refused');
      assert.ok(!connects.some((c) => /session=victim/.test(c)), 'the backend never saw the victim’s cookie');
      await ctx.close();
    } finally {
      await browser.close();
    }
  });
});
