// Client events take two paths on the server: plain-text events of the main namespace the event lane
// (src/protocol/event-lane.ts), everything else Socket.IO's own decoder. What a client sees must not tell them apart:
// one connection's events are handled in the order it sent them, whichever path each took, and answered as before.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Switchboard } from '../../src/index.js';
import { compareIds } from '../../src/core/ids.js';
import { call, clientPool, collect } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { startInProcess } from '../helpers/inprocess.js';

describe('client events: the event lane and Socket.IO’s path', () => {
  let sb: Switchboard;
  let url: string;
  const pool = clientPool();

  before(async () => {
    ({ sb, url } = await startInProcess(
      {
        apiKeys: 'test-key-0123456789abcdef',
        channelRules: JSON.stringify([{ prefix: 'lane:', subscribe: 'anyone', publish: 'anyone' }]),
        anonymousPublishesPerSecondPerIp: '1000',
      },
      {
        rpc: {
          echo: async (params: unknown) => params,
          bytes: () => ({ raw: Buffer.from([1, 2, 3]) }),
          when: () => ({ at: new Date(0) }),
          now: (params: unknown) => params,
        },
      },
    ));
  });
  after(async () => {
    pool.close();
    await sb?.close();
  });

  test('text and binary events sent at once are handled in the order sent, and answered', async () => {
    const channel = 'lane:order';
    const c = await pool.open(url);
    const got = collect(c);
    assert.equal((await call(c, 'subscribe', channel)).ok, true);
    // Sent in one go, without waiting for answers: text events (the lane) around binary ones (Socket.IO's decoder
    // and its attachment frames), one without an ack, and an rpc in the middle.
    const answers = Promise.all([
      call(c, 'publish', channel, 'm', { seq: 0 }),
      call(c, 'publish', channel, 'm', { seq: 1, bytes: Buffer.from([1, 2, 3]) }),
      call(c, 'rpc', 'echo', { seq: 'rpc' }),
      call(c, 'publish', channel, 'm', { seq: 2 }),
      call(c, 'publish', channel, 'm', { seq: 3, bytes: Buffer.from([4]) }),
    ]);
    c.emit('publish', channel, 'm', { seq: 4 });
    const [p0, p1, r, p2, p3] = await answers;
    for (const a of [p0, p1, p2, p3]) assert.equal(a.ok, true, JSON.stringify(a));
    assert.deepEqual(r, { ok: true, result: { seq: 'rpc' } });
    const ids = [p0.id, p1.id, p2.id, p3.id] as string[];
    assert.ok(
      ids.every((id, i) => i === 0 || compareIds(ids[i - 1]!, id) < 0),
      `publication ids in the order sent: ${ids.join(' ')}`,
    );
    await waitFor(() => got.length === 5, { what: 'the five publications' });
    assert.deepEqual(
      got.map((g) => (g.data as { seq: number }).seq),
      [0, 1, 2, 3, 4],
    );
    const bytes = got.map((g) => (g.data as { bytes?: unknown }).bytes);
    assert.ok(Buffer.isBuffer(bytes[1]) && Buffer.isBuffer(bytes[3]), 'binary data arrives as Buffers');
    assert.deepEqual([...(bytes[1] as Buffer)], [1, 2, 3]);
  });

  test('answers are what Socket.IO would send: plain JSON, bytes, toJSON, errors; over WebSocket and long-polling', async () => {
    for (const transports of [['websocket'], ['polling']]) {
      const c = await pool.open(url, { transports });
      // The Engine.IO messages that carry acks: a text ACK ('3') or a binary one ('6', attachments after it).
      const acks: string[] = [];
      c.io.engine.on('packet', (p: { type: string; data?: unknown }) => {
        if (p.type === 'message' && typeof p.data === 'string' && /^[36]/.test(p.data)) acks.push(p.data);
      });
      const text = { s: 'é "quoted" \\ \u2028', n: [1, 2.5, -0, null], nested: { a: { b: [true, false] } } };
      assert.deepEqual(await call(c, 'rpc', 'echo', text), { ok: true, result: { ...text, n: [1, 2.5, 0, null] } }, transports[0]);
      assert.deepEqual(await call(c, 'rpc', 'now', 'plain'), { ok: true, result: 'plain' });
      const bytes = await call<{ ok: boolean; result: { raw: Buffer } }>(c, 'rpc', 'bytes');
      assert.ok(Buffer.isBuffer(bytes.result.raw), `bytes arrive as a Buffer (${transports[0]})`);
      assert.deepEqual([...bytes.result.raw], [1, 2, 3]);
      assert.deepEqual(await call(c, 'rpc', 'when'), { ok: true, result: { at: '1970-01-01T00:00:00.000Z' } });
      assert.deepEqual(await call(c, 'rpc', 'missing'), { ok: false, error: { code: 'not_found', message: 'no RPC method "missing"' } });
      // Five answers, one ack packet each, the bytes one as a binary ACK: nothing sent twice, nothing another way.
      assert.deepEqual(
        acks.map((a) => a[0]),
        ['3', '3', '6', '3', '3'],
      );
      c.disconnect();
    }
  });

  test("with a listener for Engine.IO's packets (the admin UI's server stats), every ack is still one of them", async () => {
    const c = await pool.open(url, { transports: ['websocket'] });
    const server = [...sb.io.of('/').sockets.values()].find((s) => s.id === c.id)!;
    const made: string[] = [];
    server.conn.on('packetCreate', (p: { data?: unknown }) => made.push(String(p.data)));
    assert.deepEqual(await call(c, 'rpc', 'echo', { counted: true }), { ok: true, result: { counted: true } });
    assert.equal(made.filter((d) => /^3\d+\[/.test(d)).length, 1, `the ack among the packets made: ${made.join(' | ')}`);
  });

  test('a text event while a binary one waits for its attachment is refused with the connection, as Socket.IO does', async () => {
    const channel = 'lane:refused';
    const [bystander, c] = await Promise.all([pool.open(url), pool.open(url)]);
    const got = collect(bystander);
    assert.equal((await call(bystander, 'subscribe', channel)).ok, true);
    let reason: string | undefined;
    c.on('disconnect', (r) => (reason = r));
    // A BINARY_EVENT header announcing one attachment, then a text event: socket.io-parser refuses plain text while
    // it waits for the attachment, and Socket.IO closes the connection. The lane must not take the text event.
    const engine = c.io.engine as unknown as { write(d: string): void };
    engine.write(`51-["publish","${channel}","m",{"seq":0,"b":{"_placeholder":true,"num":0}}]`);
    engine.write(`2["publish","${channel}","m",{"seq":1}]`);
    await waitFor(() => reason, { what: 'the refused connection to close' });
    assert.equal(reason, 'transport close');
    // Fence: a publication after the close reaches the bystander after anything the refused client could have sent.
    await sb.publish(channel, 'm', { seq: 'fence' });
    await waitFor(() => got.length > 0 && got.at(-1)!.event === 'm' && (got.at(-1)!.data as { seq: unknown }).seq === 'fence', {
      what: 'the fence publication',
    });
    assert.deepEqual(
      got.map((g) => (g.data as { seq: unknown }).seq),
      ['fence'],
    );
  });
});
