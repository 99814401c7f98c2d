// Binary publications end to end: Buffer in, Buffer out across two nodes (Redis bus), through `since`
// replay from history, and in the documented JSON form over SSE and the HTTP API.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { apiPublish, call, collect, connect, type Client } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';

let redis: TestRedis;
let a: TestNode;
let b: TestNode;
const clients: Client[] = [];
const open = async (node: TestNode, transport: 'websocket' | 'polling' = 'websocket') => {
  const c = await connect(node.url, { transports: [transport] });
  clients.push(c);
  return c;
};

before(async () => {
  redis = await startRedis();
  a = await startNode({ env: { REDIS_URL: redis.url } });
  b = await startNode({ env: { REDIS_URL: redis.url } });
});
after(async () => {
  for (const c of clients) c.disconnect();
  await a?.stop();
  await b?.stop();
  await redis?.stop();
});

const BYTES = Buffer.from([0, 1, 2, 3, 0x7f, 0x80, 0xfe, 0xff]);

for (const transport of ['websocket', 'polling'] as const) {
  test(`a Buffer published over ${transport} arrives as the same bytes on the other node and through since replay`, async () => {
    const channel = `demo:bin-${transport}`;
    const pub = await open(a, transport);
    const live = await open(b, transport);
    const got = collect(live);
    await call(live, 'subscribe', channel);
    const first = await call(pub, 'publish', channel, 'seed', 'before');
    assert.equal(first.ok, true);
    const ack = await call(pub, 'publish', channel, 'file', { name: 'x.bin', body: BYTES, parts: [BYTES.subarray(0, 2)] });
    assert.equal(ack.ok, true);
    // An ArrayBuffer (what browsers send) and a marker-shaped object that must stay an object.
    const ab = new Uint8Array([9, 8, 7]).buffer;
    const ack2 = await call(pub, 'publish', channel, 'raw', ab);
    const ack3 = await call(pub, 'publish', channel, 'lookalike', { $sb: 'bin', b64: 'AAAA' });
    await waitFor(() => got.length === 4, { what: 'four publications on the other node' });
    const check = (g: typeof got) => {
      const file = g.find((x) => x.event === 'file')!.data as { name: string; body: Buffer; parts: Buffer[] };
      assert.ok(Buffer.isBuffer(file.body), `body is a Buffer, got ${JSON.stringify(file.body)}`);
      assert.deepEqual([...file.body], [...BYTES]);
      assert.deepEqual([...file.parts[0]!], [0, 1]);
      assert.equal(file.name, 'x.bin');
      const raw = g.find((x) => x.event === 'raw')!.data;
      assert.ok(Buffer.isBuffer(raw));
      assert.deepEqual([...(raw as Buffer)], [9, 8, 7]);
      assert.deepEqual(g.find((x) => x.event === 'lookalike')!.data, { $sb: 'bin', b64: 'AAAA' });
    };
    check(got);
    // Recovery on a third client from the first id replays the rest from Redis history, bytes intact.
    const late = await open(a, transport);
    const replay = collect(late);
    const r = await call(late, 'subscribe', channel, { since: first.id });
    assert.deepEqual(r, { ok: true, recovered: true, replayed: 3 });
    assert.deepEqual(
      replay.map((x) => x.meta.id),
      [ack.id, ack2.id, ack3.id],
    );
    check(replay);
  });
}

test('SSE and the HTTP API carry bytes as {"$sb":"bin","b64":…}; the HTTP API form reaches Socket.IO as a Buffer', async () => {
  const channel = 'demo:bin-http';
  const s = await open(b);
  const got = collect(s);
  await call(s, 'subscribe', channel);
  const ctl = new AbortController();
  const res = await fetch(`${a.url}/sse?channel=${channel}`, { signal: ctl.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let text = '';
  const readUntil = async (pred: (t: string) => boolean) => {
    while (!pred(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`SSE ended: ${text}`);
      text += Buffer.from(value).toString();
    }
  };
  await readUntil((t) => t.includes('connected'));
  const r = await apiPublish(a.url, {
    channel,
    event: 'blob',
    data: { img: { $sb: 'bin', b64: BYTES.toString('base64') }, note: { $sb: 'esc', v: { $sb: 'kept' } } },
  });
  assert.equal(r.status, 200);
  await waitFor(() => got.length === 1, { what: 'Socket.IO delivery' });
  const data = got[0]!.data as { img: Buffer; note: unknown };
  assert.ok(Buffer.isBuffer(data.img));
  assert.deepEqual([...data.img], [...BYTES]);
  assert.deepEqual(data.note, { $sb: 'kept' });
  await readUntil((t) => t.includes('event: blob'));
  const line = text.split('\n').find((l, i, all) => all[i - 1] === 'event: blob' && l.startsWith('data: '))!;
  assert.deepEqual(JSON.parse(line.slice(6)), {
    img: { $sb: 'bin', b64: BYTES.toString('base64') },
    note: { $sb: 'esc', v: { $sb: 'kept' } },
  });
  ctl.abort();
});

test('GRIP content-bin is a binary message: Socket.IO subscribers get the bytes', async () => {
  const s = await open(b);
  const got = collect(s);
  await call(s, 'subscribe', 'demo:bin-grip');
  const res = await fetch(`${a.url}/publish/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer test-key-0123456789abcdef' },
    body: JSON.stringify({ items: [{ channel: 'demo:bin-grip', formats: { 'ws-message': { 'content-bin': BYTES.toString('base64') } } }] }),
  });
  assert.equal(res.status, 200);
  await waitFor(() => got.length === 1, { what: 'the GRIP binary message' });
  assert.ok(Buffer.isBuffer(got[0]!.data));
  assert.deepEqual([...(got[0]!.data as Buffer)], [...BYTES]);
});
