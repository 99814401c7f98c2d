// Interest-based routing and per-channel gap detection, over one Redis and over a Redis Cluster: a node receives
// only the channels it has subscribers of, leaves no pub/sub subscription behind, and a gap on one channel reads
// history for that channel alone — also when the channel goes quiet right after the loss (position check).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { apiPublish, call, collect, connect, metricValue, type Client } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { channelSlot, slotTag } from '../../src/bus/slots.js';

const ENV = { BUS_UNSUBSCRIBE_LINGER_MS: '100', BUS_POSITION_CHECK_MS: '300', CANARY_INTERVAL_MS: '200', CANARY_TIMEOUT_MS: '1000' };
const keysOf = (channel: string) => {
  const tag = `{${slotTag(channelSlot(channel))}}`;
  return {
    stream: `switchboard:${tag}:h:${channel}`,
    meta: `switchboard:${tag}:m:${channel}`,
    shardChannel: `switchboard:${tag}:c:${channel}`,
  };
};

for (const mode of ['redis', 'cluster'] as const) {
  describe(`routing over ${mode === 'redis' ? 'one Redis' : 'a Redis Cluster'}`, () => {
    let redis: TestRedis | undefined;
    let cluster: TestRedisCluster | undefined;
    let single: Redis | undefined;
    let a: TestNode;
    let b: TestNode;
    const clients: Client[] = [];
    const open = async (n: TestNode) => {
      const c = await connect(n.url);
      clients.push(c);
      return c;
    };
    /** Runs a command on the Redis that owns `key`. */
    const on = async (key: string, ...args: (string | number)[]): Promise<unknown> => {
      if (single) return single.call(String(args[0]), ...args.slice(1).map(String));
      return cluster!.command(await cluster!.masterOfKey(key), ...args);
    };
    /** Every pub/sub channel (sharded and classic) matching `pattern`, on every live server. */
    const subscribedAnywhere = async (pattern: string): Promise<string[]> => {
      const out: string[] = [];
      if (single) {
        out.push(
          ...((await single.call('PUBSUB', 'SHARDCHANNELS', pattern)) as string[]),
          ...((await single.call('PUBSUB', 'CHANNELS', pattern)) as string[]),
        );
        return out;
      }
      for (const n of (await cluster!.topology()).filter((x) => !x.failed)) {
        out.push(
          ...((await cluster!.command(n.port, 'PUBSUB', 'SHARDCHANNELS', pattern)) as string[]),
          ...((await cluster!.command(n.port, 'PUBSUB', 'CHANNELS', pattern)) as string[]),
        );
      }
      return out;
    };

    before(async () => {
      const env: Record<string, string> = { ...ENV };
      if (mode === 'redis') {
        redis = await startRedis();
        single = new Redis(redis.url);
        env.REDIS_URL = redis.url;
      } else {
        cluster = await startRedisCluster();
        env.REDIS_CLUSTER_NODES = cluster.seedList;
      }
      a = await startNode({ env });
      b = await startNode({ env });
    });
    after(async () => {
      for (const c of clients) c.disconnect();
      await a?.stop();
      await b?.stop();
      single?.disconnect();
      await redis?.stop();
      await cluster?.stop();
    });

    test('a channel subscribed on node A never reaches node B, and leaves no subscription behind', async () => {
      const channel = `routing:${mode}:hot`;
      const sub = await open(a);
      const got = collect(sub);
      await call(sub, 'subscribe', channel);
      assert.deepEqual(await subscribedAnywhere(`*:c:${channel}`), [keysOf(channel).shardChannel]);
      const a0 = await metricValue(a.internalUrl, 'switchboard_bus_received_total');
      const b0 = await metricValue(b.internalUrl, 'switchboard_bus_received_total');
      const N = 2000;
      for (let i = 0; i < N; i += 50) {
        const batch = Array.from({ length: Math.min(50, N - i) }, (_, k) =>
          apiPublish(k % 2 ? a.url : b.url, { channel, event: 'n', data: i + k }),
        );
        for (const r of await Promise.all(batch)) assert.equal(r.status, 200);
      }
      await waitFor(() => got.length === N, { what: `${N} publications at the subscriber on A`, timeout: 30_000 });
      assert.ok((await metricValue(a.internalUrl, 'switchboard_bus_received_total')) - a0 >= N);
      // The fence: B receives a channel it does serve, published after all of the above; then its count is exact.
      const fence = await open(b);
      const fenceGot = collect(fence);
      await call(fence, 'subscribe', `routing:${mode}:fence`);
      await apiPublish(a.url, { channel: `routing:${mode}:fence`, event: 'n', data: 'fence' });
      await waitFor(() => fenceGot.length === 1, { what: 'the fence publication on B' });
      assert.equal(
        (await metricValue(b.internalUrl, 'switchboard_bus_received_total')) - b0,
        1,
        'B received the fence only, none of the hot channel',
      );

      await call(sub, 'unsubscribe', channel);
      await call(fence, 'unsubscribe', `routing:${mode}:fence`);
      await waitFor(async () => (await subscribedAnywhere(`*:c:routing:${mode}:*`)).length === 0, {
        what: 'no shard channel of these channels subscribed on any Redis',
      });
      // Only the per-shard fence channels stay: one per master per node.
      const shards = mode === 'redis' ? 1 : 3;
      for (const n of [a, b])
        await waitFor(async () => (await metricValue(n.internalUrl, 'switchboard_bus_shard_subscriptions')) === shards, {
          what: 'the shard subscription gauge back to the fences',
        });
    });

    test('a gap on one channel reads history for that channel only; the subscriber gets everything once', async () => {
      const [x, y] = [`routing:${mode}:gap-x`, `routing:${mode}:gap-y`];
      const s = await open(a);
      const got = collect(s);
      const lost: unknown[] = [];
      s.on('switchboard:resync', (m) => lost.push(m));
      await call(s, 'subscribe', x);
      await call(s, 'subscribe', y);
      await apiPublish(b.url, { channel: x, event: 'n', data: 'x1' });
      await apiPublish(b.url, { channel: y, event: 'n', data: 'y1' });
      await waitFor(() => got.length === 2);
      const reads0 = await metricValue(a.internalUrl, 'switchboard_bus_catchup_reads_total');
      const gaps0 = await metricValue(a.internalUrl, 'switchboard_bus_channel_gaps_total', { detected_by: 'message' });
      // A sequence number handed out without its message reaching anyone: the next one shows a gap on x alone.
      await on(keysOf(x).meta, 'HINCRBY', keysOf(x).meta, 's', 1);
      await apiPublish(b.url, { channel: x, event: 'n', data: 'x2' });
      await apiPublish(b.url, { channel: y, event: 'n', data: 'y2' });
      await waitFor(() => got.length === 4, { what: 'x2 and y2' });
      // Order is per channel (x waited for its catch-up read; y did not).
      assert.deepEqual(
        got.filter((g) => g.meta.channel === x).map((g) => g.data),
        ['x1', 'x2'],
      );
      assert.deepEqual(
        got.filter((g) => g.meta.channel === y).map((g) => g.data),
        ['y1', 'y2'],
      );
      assert.equal((await metricValue(a.internalUrl, 'switchboard_bus_channel_gaps_total', { detected_by: 'message' })) - gaps0, 1);
      assert.equal((await metricValue(a.internalUrl, 'switchboard_bus_catchup_reads_total')) - reads0, 1, 'one history read');
      const gapLines = a
        .output()
        .split('\n')
        .filter((l) => l.includes('bus gap on a channel') && l.includes(':gap-'));
      assert.deepEqual(
        gapLines.map((l) => JSON.parse(l).channel),
        [x],
        `the read was for x\n${a
          .output()
          .split('\n')
          .filter((l) => /gap|resync|topology|rebuild/.test(l))
          .join('\n')}`,
      );
      assert.deepEqual(
        lost,
        [],
        `no loss announced\n${a
          .output()
          .split('\n')
          .filter((l) => /gap|resync|lost|catch-up|canary|position/.test(l))
          .join('\n')}`,
      );
    });

    test('a publication whose message was lost on a channel that then goes quiet is found by the position check', async () => {
      const channel = `routing:${mode}:quiet`;
      const s = await open(a);
      const got = collect(s);
      await call(s, 'subscribe', channel);
      await apiPublish(b.url, { channel, event: 'n', data: 'first' });
      await waitFor(() => got.length === 1);
      // What the publish script does, minus the pub/sub message: in history and counted, never sent.
      const k = keysOf(channel);
      const payload = JSON.stringify({ c: channel, e: 'n', d: 'lost-in-transit', t: Date.now(), o: 'test' });
      const id = (await on(k.stream, 'XADD', k.stream, '*', 'p', payload)) as string;
      await on(k.meta, 'HINCRBY', k.meta, 's', 1);
      await on(k.meta, 'HSET', k.meta, 'i', id);
      await waitFor(() => got.length === 2, { what: 'the lost publication caught up from history by the position check' });
      assert.deepEqual(
        got.map((g) => g.data),
        ['first', 'lost-in-transit'],
      );
      assert.equal(got[1]!.meta.id, id);
      assert.ok((await metricValue(a.internalUrl, 'switchboard_bus_channel_gaps_total', { detected_by: 'position_check' })) >= 1);
    });
  });
}
