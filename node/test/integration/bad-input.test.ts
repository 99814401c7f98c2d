// Bad input on raw WebSockets and HTTP: each gets the contract's error or a close, the node keeps serving
// everyone else, and a metric counts it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startNode, type TestNode } from '../helpers/node.js';
import { call, collect, connect, metricValue, type Client } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';

/** Opens a raw Engine.IO v4 WebSocket and completes the Socket.IO namespace connect. */
async function rawSocket(node: TestNode): Promise<{ ws: WebSocket; frames: string[]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/socket.io/?EIO=4&transport=websocket`);
  const frames: string[] = [];
  ws.on('message', (d) => {
    const s = d.toString();
    if (s === '2') ws.send('3');
    frames.push(s);
  });
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.on('close', (code, reason) => r({ code, reason: reason.toString() })),
  );
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('error', j);
  });
  await waitFor(() => frames.some((f) => f.startsWith('0{')));
  ws.send('40');
  await waitFor(() => frames.some((f) => f.startsWith('40')));
  return { ws, frames, closed };
}

describe('bad input', () => {
  let node: TestNode;
  let bystander: Client;
  let got: ReturnType<typeof collect>;

  before(async () => {
    node = await startNode({ env: { MAX_PAYLOAD_BYTES: '4096', MAX_HTTP_BODY_BYTES: '2048' } });
    bystander = await connect(node.url);
    got = collect(bystander);
    await call(bystander, 'subscribe', 'demo:bystander');
  });
  after(async () => {
    bystander?.disconnect();
    await node?.stop();
  });

  /** After each case: the node still serves a healthy client end to end. */
  async function stillServing() {
    const n = got.length;
    const p = await connect(node.url);
    const ack = await call(p, 'publish', 'demo:bystander', 'tick', { n });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    p.disconnect();
    await waitFor(() => got.length === n + 1, { what: 'the bystander still receives' });
    assert.ok(bystander.connected);
  }

  test('malformed Socket.IO packets close that connection only, counted', async () => {
    for (const bad of ['42[', '4x', '42{"not":"array"}', '9', '42[1,2,3]', '45-garbage']) {
      const { closed } = await rawSocket(node);
      const r = await rawSocket(node);
      r.ws.send(bad);
      const { code } = await Promise.race([r.closed, new Promise<{ code: number }>((res) => setTimeout(() => res({ code: -1 }), 3000))]);
      // Either the connection is closed (parse error) or the packet is answered/ignored; never a crash.
      assert.ok(code !== -1 || bad === '42[1,2,3]', `"${bad}" should close the connection (got none)`);
      r.ws.terminate();
      void closed;
    }
    await stillServing();
    assert.ok((await metricValue(node.internalUrl, 'switchboard_disconnects_total', { reason: 'parse_error' })) >= 1);
  });

  test('unknown events are answered, with an ack or as switchboard:error without one', async () => {
    const r = await rawSocket(node);
    r.ws.send('421["no-such-event",{}]');
    await waitFor(() => r.frames.some((f) => f.startsWith('431[')), { what: 'ack for the unknown event' });
    const ack = JSON.parse(r.frames.find((f) => f.startsWith('431['))!.slice(3))[0];
    assert.deepEqual(ack.error.code, 'not_found');
    r.ws.send('42["no-such-event",{}]');
    await waitFor(() => r.frames.some((f) => f.startsWith('42["switchboard:error"')), {
      what: 'switchboard:error for the ack-less unknown event',
    });
    const [, report] = JSON.parse(r.frames.find((f) => f.startsWith('42["switchboard:error"'))!.slice(2));
    assert.deepEqual(report, { event: 'no-such-event', error: { code: 'not_found', message: 'unknown event "no-such-event"' } });
    r.ws.close();
    await stillServing();
  });

  test('an oversized frame closes that connection with 1009, counted as too_large', async () => {
    const r = await rawSocket(node);
    r.ws.send(`42["publish","demo:x","e","${'x'.repeat(5000)}"]`);
    const { code } = await r.closed;
    assert.ok(code === 1009 || code === 1006, `closed with ${code}`);
    await waitFor(async () => (await metricValue(node.internalUrl, 'switchboard_rejections_total', { reason: 'too_large' })) >= 1, {
      what: 'too_large counted',
    });
    await stillServing();
  });

  test('garbage on the polling transport and unknown session ids are refused with 400', async () => {
    const res = await fetch(`${node.url}/socket.io/?EIO=4&transport=polling&sid=doesnotexist`);
    assert.equal(res.status, 400);
    const res2 = await fetch(`${node.url}/socket.io/?EIO=4&transport=carrier-pigeon`);
    assert.equal(res2.status, 400);
    assert.ok((await metricValue(node.internalUrl, 'switchboard_rejections_total', { reason: 'unknown_sid' })) >= 1);
    await stillServing();
  });

  test('HTTP API: non-JSON, invalid and oversized bodies get 400/413 with a clear message', async () => {
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${node.url}/api/publish`, {
        method: 'POST',
        headers: { authorization: 'Bearer test-key-0123456789abcdef', 'content-type': 'application/json', ...headers },
        body,
      });
    let res = await post('{not json');
    assert.equal(res.status, 400);
    let body = (await res.json()) as any;
    assert.equal(body.error.code, 'bad_request');
    assert.match(body.error.message, /JSON/);
    res = await post(JSON.stringify({ channel: 'a b', event: 'e' }));
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as any).error.code, 'invalid_channel');
    res = await post(JSON.stringify({ event: 'e' }));
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as any).error.message, /channel/);
    res = await post(JSON.stringify({ channel: 'a', event: 'e', data: 'x'.repeat(3000) }));
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as any).error.code, 'too_large');
    res = await fetch(`${node.url}/api/publish`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 401);
    res = await fetch(`${node.url}/api/nowhere`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } });
    assert.equal(res.status, 404);
    assert.ok((await metricValue(node.internalUrl, 'switchboard_bad_input_total', { kind: 'http_400' })) >= 3);
    assert.ok((await metricValue(node.internalUrl, 'switchboard_bad_input_total', { kind: 'http_413' })) >= 1);
    await stillServing();
  });

  test('without API_KEYS the API answers 401 naming API_KEYS', async () => {
    const bare = await startNode({ env: { API_KEYS: undefined } });
    try {
      const res = await fetch(`${bare.url}/api/stats`, { headers: { authorization: 'Bearer anything' } });
      assert.equal(res.status, 401);
      assert.match(((await res.json()) as any).error.message, /API_KEYS/);
    } finally {
      await bare.stop();
    }
  });
});
