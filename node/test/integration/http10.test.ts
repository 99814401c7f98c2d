// HTTP/1.0 clients (monitoring probes, old tools, Pushpin's pushpin-publish): answered on the internal port
// directly, on the public port through the shipped HAProxy, and pushpin-publish reaches subscribers through
// the keyless GRIP endpoint of the internal port (INTERNAL_GRIP_PUBLISH).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { startNode, type TestNode } from '../helpers/node.js';
import { startHaproxy, TEST_HAPROXY_ENV, type TestHaproxy } from '../helpers/haproxy.js';
import { call, collect, connect, type Client } from '../helpers/client.js';
import { requireOptional } from '../helpers/prereq.js';
import { waitFor } from '../helpers/ports.js';
import { openSse, type SseStream } from '../helpers/sse.js';

/** Sends raw bytes and resolves with everything the server sent before it closed the connection. */
function rawRequest(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), hostname, () => s.write(request));
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d) => (out += d));
    s.on('error', reject);
    // HTTP/1.0 without keep-alive: the server ends the answer by closing; a server that never answers is
    // caught by the suite's per-file timeout, never by a wall-clock bound here.
    s.on('close', () => resolve(out));
  });
}

function status(answer: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);
}

let node: TestNode;
let plain: TestNode;
let haproxy: TestHaproxy;
const clients: Client[] = [];
const streams: SseStream[] = [];

before(async () => {
  node = await startNode({ env: { INTERNAL_GRIP_PUBLISH: 'true' } });
  plain = await startNode();
  haproxy = await startHaproxy({ servers: [{ id: 'n1', port: node.port, internalPort: node.internalPort }], env: TEST_HAPROXY_ENV });
});
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of streams) s.close();
  await haproxy?.stop();
  await node?.stop();
  await plain?.stop();
});

test('HTTP/1.0 requests on the internal port are answered directly', async () => {
  for (const req of ['GET /healthz HTTP/1.0\r\n\r\n', 'GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n', 'GET /metrics HTTP/1.0\r\n\r\n']) {
    const answer = await rawRequest(node.internalUrl, req);
    assert.equal(status(answer), 200, `${JSON.stringify(req)} → ${answer.slice(0, 200)}`);
  }
  assert.match(await rawRequest(node.internalUrl, 'GET /metrics HTTP/1.0\r\n\r\n'), /switchboard_ready\{[^}]*\} 1/);
});

test('HTTP/1.0 requests on the public port are answered through HAProxy (GET, and a publish with a body)', async () => {
  for (const req of ['GET /api/node HTTP/1.0\r\n\r\n', 'GET /api/node HTTP/1.0\r\nHost: rt.example.com\r\n\r\n']) {
    const answer = await rawRequest(haproxy.httpUrl, req);
    assert.equal(status(answer), 200, answer.slice(0, 300));
    assert.match(answer, /"id":"[^"]+"/);
  }
  const s = await connect(haproxy.httpUrl, { transports: ['websocket'] });
  clients.push(s);
  const got = collect(s);
  await call(s, 'subscribe', 'demo:h10');
  const body = JSON.stringify({ channel: 'demo:h10', event: 'note', data: { via: 'http/1.0' } });
  const answer = await rawRequest(
    haproxy.httpUrl,
    `POST /api/publish HTTP/1.0\r\nAuthorization: Bearer test-key-0123456789abcdef\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  assert.equal(status(answer), 200, answer.slice(0, 300));
  await waitFor(() => got.length === 1, { what: 'the HTTP/1.0 publication' });
  assert.deepEqual(got[0]!.data, { via: 'http/1.0' });
});

function pushpinPublish(spec: string, channel: string, text: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('pushpin-publish', ['--spec', spec, channel, text], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
}

test('pushpin-publish publishes to Socket.IO and SSE subscribers through the internal port, without a key', async (t) => {
  if (!requireOptional(t, 'pushpin')) return;
  const s = await connect(node.url);
  clients.push(s);
  const got = collect(s);
  await call(s, 'subscribe', 'demo:pushpin');
  const sse = await openSse(`${node.url}/sse?channel=demo:pushpin`);
  streams.push(sse);
  await sse.waitComment((c) => c.includes('connected'));
  const r = await pushpinPublish(`${node.internalUrl}/`, 'demo:pushpin', 'hello from pushpin');
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Published/);
  await waitFor(() => got.length === 1, { what: 'the pushpin-publish message' });
  assert.equal(got[0]!.event, 'message');
  assert.equal(got[0]!.data, 'hello from pushpin');
  const [e] = await sse.waitEvents(1);
  assert.equal(e!.event, 'message');
  assert.equal(JSON.parse(e!.data), 'hello from pushpin');
});

test('without INTERNAL_GRIP_PUBLISH the internal port publishes nothing; a key in a public URL is refused', async (t) => {
  if (!requireOptional(t, 'pushpin')) return;
  const r = await pushpinPublish(`${plain.internalUrl}/`, 'demo:pushpin', 'nope');
  assert.notEqual(r.code, 0, r.out);
  const res = await fetch(`${node.url}/publish/?key=test-key-0123456789abcdef`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer test-key-0123456789abcdef' },
    body: JSON.stringify({ items: [{ channel: 'demo:pushpin', formats: { 'ws-message': { content: 'x' } } }] }),
  });
  assert.equal(res.status, 401);
  assert.match(((await res.json()) as any).error.message, /key in the URL is never accepted/);
});
