// One Switchboard in this process (createSwitchboard, memory bus, port 0) driven by real socket.io-clients and
// SSE streams: delivery with `since` replay then live, the memory bus's ids and history, the SSE hub.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Switchboard } from '../../src/index.js';
import { compareIds } from '../../src/core/ids.js';
import { apiPublish, call, clientPool, collect, type Received } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { openSse } from '../helpers/sse.js';
import { startInProcess } from '../helpers/inprocess.js';

const HISTORY = 10;
const seqs = (got: Received[]) => got.map((g) => (g.data as { seq: number }).seq);

describe('a Switchboard in process, memory bus', () => {
  let sb: Switchboard;
  let url: string;
  const pool = clientPool();
  const open = () => pool.open(url);
  const publish = (channel: string, seq: number) => sb.publish(channel, 'n', { seq });

  before(async () => {
    ({ sb, url } = await startInProcess({ apiKeys: 'test-key-0123456789abcdef', historySize: String(HISTORY) }));
  });
  after(async () => {
    pool.close();
    await sb?.close();
  });

  test('subscribe with since: the missed publications, then live ones, each once and in order', async () => {
    const channel = 'orders:since';
    const ids: string[] = [];
    for (let seq = 0; seq < 4; seq++) ids.push(await publish(channel, seq));
    const c = await open();
    const got = collect(c);
    // Publications race the join: each must arrive once, whether through the replay or live.
    const racing = (async () => {
      for (let seq = 4; seq < 8; seq++) await publish(channel, seq);
    })();
    const ack = await call(c, 'subscribe', channel, { since: ids[1] });
    await racing;
    assert.equal(ack.ok, true);
    assert.equal(ack.recovered, true);
    assert.ok(ack.replayed >= 2 && ack.replayed <= 6, `replayed ${ack.replayed}`);
    // Fence: once the last one is in, nothing earlier can still be on the way on this connection.
    await publish(channel, 8);
    await waitFor(() => seqs(got).includes(8), { what: 'the live publication after the replay' });
    assert.deepEqual(seqs(got), [2, 3, 4, 5, 6, 7, 8]);
    assert.ok(
      got.every((g, i) => i === 0 || compareIds(got[i - 1]!.meta.id, g.meta.id) < 0),
      'ids increase',
    );
  });

  test('memory bus: one publication reaches every local subscriber with the same id; history keeps the last HISTORY_SIZE', async () => {
    const channel = 'news:bus';
    const [c1, c2] = await Promise.all([open(), open()]);
    const got = [collect(c1), collect(c2)];
    for (const c of [c1, c2]) assert.equal((await call(c, 'subscribe', channel)).ok, true);
    const ids: string[] = [];
    for (let seq = 0; seq < HISTORY + 3; seq++) {
      const r = await apiPublish(url, { channel, event: 'n', data: { seq } });
      assert.equal(r.status, 200);
      ids.push(r.body.id);
    }
    await waitFor(() => got.every((g) => g.length === HISTORY + 3), { what: 'every publication on both clients' });
    assert.deepEqual(
      got[0]!.map((g) => g.meta.id),
      ids,
    );
    assert.deepEqual(
      got[1]!.map((g) => g.meta.id),
      ids,
    );
    assert.ok(
      ids.every((id, i) => i === 0 || compareIds(ids[i - 1]!, id) < 0),
      'ids increase',
    );
    // The first three fell out of history: asking from one of them is not a recovery.
    const late = await open();
    const lateGot = collect(late);
    const lost = await call(late, 'subscribe', channel, { since: ids[0] });
    assert.equal(lost.recovered, false);
    const kept = await open();
    const keptGot = collect(kept);
    assert.deepEqual(await call(kept, 'subscribe', channel, { since: ids[HISTORY] }), { ok: true, recovered: true, replayed: 2 });
    assert.deepEqual(seqs(keptGot), [HISTORY + 1, HISTORY + 2]);
    // Whatever the lost one got is from history, never older than what history holds.
    assert.ok(seqs(lateGot).every((s) => s >= 3));
  });

  test('without Redis an Idempotency-Key is honoured by the node (as the README says): a retry publishes nothing and answers the first id', async () => {
    const channel = 'orders:idem';
    const c = await open();
    const got = collect(c);
    assert.equal((await call(c, 'subscribe', channel)).ok, true);
    const key = { 'idempotency-key': 'order-42-shipped' };
    const first = await apiPublish(url, { channel, event: 'once', data: 1 }, undefined, key);
    const retry = await apiPublish(url, { channel, event: 'once', data: 1 }, undefined, key);
    assert.equal(first.status, 200);
    assert.equal(retry.status, 200, 'not refused with 503');
    assert.deepEqual(retry.body, { ok: true, id: first.body.id, duplicate: true });
    // The same key on another channel is another publication (the scope is per channel).
    const other = await apiPublish(url, { channel: 'orders:idem-2', event: 'once', data: 1 }, undefined, key);
    assert.equal(other.body.duplicate, undefined);
    // Fence: a later publication on the channel arrives after anything published before it.
    await apiPublish(url, { channel, event: 'fence', data: null });
    await waitFor(() => got.some((g) => g.event === 'fence'), { what: 'the fence publication' });
    assert.equal(got.filter((g) => g.event === 'once').length, 1);
  });

  test('demo: keeps a short history, and anonymous clients publish there at a limited rate per address', async () => {
    const channel = 'demo:short';
    const ids: string[] = [];
    for (let seq = 0; seq < 25; seq++) ids.push(await publish(channel, seq));
    const c = await open();
    const got = collect(c);
    const ack = await call(c, 'subscribe', channel, { since: ids[0] });
    assert.equal(ack.recovered, false, 'the first publication has left the 20 kept');
    await waitFor(() => got.length === 20, { what: 'the 20 kept publications' });
    assert.deepEqual(
      seqs(got),
      Array.from({ length: 20 }, (_, i) => i + 5),
    );

    // Sent at once: more than ANONYMOUS_PUBLISHES_PER_SECOND_PER_IP (5) arrive within its one-second window.
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => call(c, 'publish', 'demo:chat', 'chat', { i })));
    const limited = answers.filter((a) => !a.ok);
    // 5 per window; a window boundary inside the burst (a very busy machine) could let through 5 more.
    assert.ok(answers.filter((a) => a.ok).length <= 10, 'at most 5 published per second');
    assert.ok(limited.length >= 10);
    assert.ok(
      limited.every(
        (a) => a.error.code === 'rate_limited' && /publications per second from this address without a user/.test(a.error.message),
      ),
    );
  });

  test('SSE: a stream gets publications live, and Last-Event-ID replays what it missed', async () => {
    const channel = 'news:sse';
    const first = await openSse(`${url}/sse?channel=${channel}`);
    assert.equal(first.status, 200);
    assert.match(first.contentType, /text\/event-stream/);
    await waitFor(
      async () =>
        (
          (await (
            await fetch(`${url}/api/channels/${channel}`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } })
          ).json()) as { subscribers: number }
        ).subscribers === 1,
      { what: 'the SSE stream subscribed' },
    );
    const ids = [await publish(channel, 0), await publish(channel, 1)];
    const live = await first.waitEvents(2);
    first.close();
    assert.deepEqual(
      live.map((e) => [e.id, e.event, JSON.parse(e.data).seq]),
      [
        [ids[0], 'n', 0],
        [ids[1], 'n', 1],
      ],
    );
    await publish(channel, 2);
    const again = await openSse(`${url}/sse?channel=${channel}`, { 'last-event-id': ids[0]! });
    const replayed = await again.waitEvents(2);
    again.close();
    assert.deepEqual(
      replayed.map((e) => JSON.parse(e.data).seq),
      [1, 2],
    );
  });
});
