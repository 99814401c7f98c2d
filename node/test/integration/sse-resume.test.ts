// SSE resume for streams of several channels: the event id names a position in every channel, replay is
// merged in one order, a stream cut anywhere (live or during a replay) resumes with every publication exactly
// once, and a position no longer in history is announced with switchboard:resync.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { apiPublish } from '../helpers/client.js';
import { openSse, type SseEvent, type SseStream } from '../helpers/sse.js';

const streams: SseStream[] = [];
async function sse(node: TestNode, channels: string[], lastEventId?: string, via: 'header' | 'query' = 'header') {
  const q = channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&');
  const url = `${node.url}/sse?${q}${lastEventId && via === 'query' ? `&lastEventId=${encodeURIComponent(lastEventId)}` : ''}`;
  const s = await openSse(url, lastEventId && via === 'header' ? { 'last-event-id': lastEventId } : {});
  streams.push(s);
  assert.equal(s.status, 200);
  await s.waitComment((c) => c.includes('connected'));
  return s;
}
/** Opens a resumed stream and returns what it replayed (everything up to the server's "resumed" comment). */
async function resume(node: TestNode, channels: string[], lastEventId: string, via: 'header' | 'query') {
  const s = await sse(node, channels, lastEventId, via);
  const done = await s.waitComment((c) => c.startsWith('resumed'), 'the end of the replay');
  const events = s.events.slice();
  s.close();
  assert.equal(done, `resumed, ${events.filter((e) => e.event !== 'switchboard:resync').length} replayed`);
  return events;
}
const labels = (events: SseEvent[]) => events.map((e) => (e.event === 'n' ? JSON.parse(e.data).n : `${e.event} ${e.data}`));

let redis: TestRedis;
let node: TestNode;
let memNode: TestNode;
before(async () => {
  redis = await startRedis();
  node = await startNode({ env: { REDIS_URL: redis.url } });
  memNode = await startNode({
    env: { CHANNEL_RULES: JSON.stringify([{ prefix: 'trim:', subscribe: 'anyone', history: { size: 2, ttlSeconds: 600 } }]) },
  });
});
after(async () => {
  for (const s of streams) s.close();
  await node?.stop();
  await memNode?.stop();
  await redis?.stop();
});

describe('SSE with three channels', () => {
  const channels = ['demo:sse-a', 'demo:sse-b', 'demo:sse-c'];
  let live: SseEvent[];
  const N = 9;

  test('a live stream gets every publication with an id naming all three positions', async () => {
    // Published before the stream opened (this node has no interest in these channels yet): never part of it,
    // so no resume may bring them, even one cut before anything arrived on their channel.
    for (const [i, c] of channels.entries())
      assert.equal((await apiPublish(node.url, { channel: c, event: 'n', data: { n: -1 - i } })).status, 200);
    const s = await sse(node, channels);
    for (let n = 0; n < N; n++) {
      const r = await apiPublish(node.url, { channel: channels[n % 3], event: 'n', data: { n } });
      assert.equal(r.status, 200);
    }
    live = (await s.waitEvents(N)).slice();
    s.close();
    assert.deepEqual(labels(live), [...Array(N).keys()]);
    for (const e of live) assert.match(e.id!, /^sb1\.[0-9a-z]+\.[0-9a-z]+\.[0-9a-z~-]+_[0-9a-z~-]+_[0-9a-z~-]+$/);
    assert.ok(Math.max(...live.map((e) => e.id!.length)) < 80);
  });

  test('cut after every event: each resume yields the rest exactly once, in one order (header and query)', async () => {
    for (let k = 0; k < N; k++) {
      const got = await resume(node, channels, live[k]!.id!, k % 2 ? 'query' : 'header');
      assert.deepEqual(labels(got), [...Array(N).keys()].slice(k + 1), `resume after event ${k}`);
    }
  });

  test('cut at every position of a replay: each resume yields the rest of the replay exactly once', async () => {
    const replay = await resume(node, channels, live[0]!.id!, 'header');
    assert.equal(replay.length, N - 1);
    for (let j = 0; j < replay.length; j++) {
      const got = await resume(node, channels, replay[j]!.id!, 'header');
      assert.deepEqual([...labels(replay.slice(0, j + 1)), ...labels(got)], [...Array(N).keys()].slice(1), `cut after replayed event ${j}`);
    }
  });

  test('a resumed stream goes on live after the replay, with no gap and no repeat', async () => {
    const s = await sse(node, channels, live[N - 3]!.id!);
    await s.waitComment((c) => c.startsWith('resumed'));
    await apiPublish(node.url, { channel: channels[1], event: 'n', data: { n: 100 } });
    await s.waitEvents(3);
    s.close();
    assert.deepEqual(labels(s.events), [N - 2, N - 1, 100]);
  });

  test('plain publication ids from older clients still resume (one channel, and several)', async () => {
    const r1 = await apiPublish(node.url, { channel: 'demo:sse-plain', event: 'n', data: { n: 1 } });
    await apiPublish(node.url, { channel: 'demo:sse-plain', event: 'n', data: { n: 2 } });
    assert.deepEqual(labels(await resume(node, ['demo:sse-plain'], r1.body.id, 'header')), [2]);
    const s = await sse(node, ['demo:sse-plain']);
    await apiPublish(node.url, { channel: 'demo:sse-plain', event: 'n', data: { n: 3 } });
    const [e] = await s.waitEvents(1);
    assert.match(e!.id!, /^\d+-\d+$/, 'a one-channel stream keeps plain publication ids');
    s.close();
    // A plain id on a stream of several channels: everything after it, on every channel.
    const first = await apiPublish(node.url, { channel: 'demo:sse-p1', event: 'n', data: { n: 10 } });
    await apiPublish(node.url, { channel: 'demo:sse-p2', event: 'n', data: { n: 11 } });
    await apiPublish(node.url, { channel: 'demo:sse-p1', event: 'n', data: { n: 12 } });
    assert.deepEqual(labels(await resume(node, ['demo:sse-p1', 'demo:sse-p2'], first.body.id, 'query')), [11, 12]);
  });

  test('an id for other channels, or garbage, is refused with 400', async () => {
    for (const bad of [live[0]!.id!, 'sb1.x.y.z', 'nope']) {
      const res = await fetch(`${node.url}/sse?channel=demo:sse-a&channel=demo:sse-b`, { headers: { 'last-event-id': bad } });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as any).error.code, 'bad_request');
    }
  });
});

test('a position no longer in history yields switchboard:resync for that channel; the others replay', async () => {
  const channels = ['trim:a', 'trim:b'];
  const s = await sse(memNode, channels);
  const pub = (channel: string, n: number) => apiPublish(memNode.url, { channel, event: 'n', data: { n } });
  await pub('trim:a', 1);
  const [first] = await s.waitEvents(1);
  s.close();
  // trim:a keeps 2 entries: 1 leaves history. trim:b had nothing delivered yet: it resumes from where the stream joined.
  for (const [c, n] of [
    ['trim:b', 2],
    ['trim:a', 3],
    ['trim:a', 4],
    ['trim:b', 5],
  ] as const)
    await pub(c, n);
  const got = await resume(memNode, channels, first!.id!, 'header');
  assert.deepEqual(labels(got), ['switchboard:resync {"channel":"trim:a","recovered":false}', 2, 3, 4, 5]);
});
