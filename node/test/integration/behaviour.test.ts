// One behavioural suite, run against the in-memory bus (one node) and the Redis bus (two node processes), over one
// Redis, over a Sentinel set with passwords on the sentinels and the data nodes, and over a Redis Cluster
// (3 masters + 3 replicas).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startSentinel, type TestSentinel } from '../helpers/redis-sentinel.js';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js';
import { startNode, repoRoot, type TestNode } from '../helpers/node.js';
import { apiPublish, call, clientPool, collect } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { join } from 'node:path';
import { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';

const APP = join(repoRoot, 'dist/node/test/fixtures/app.js');

for (const mode of ['memory', 'redis', 'sentinel', 'cluster'] as const) {
  describe(`behaviour over the ${mode} bus`, () => {
    let redis: TestRedis | undefined;
    let sentinel: TestSentinel | undefined;
    let cluster: TestRedisCluster | undefined;
    let a: TestNode;
    let b: TestNode;
    const { clients, open, close: closeClients } = clientPool();

    before(async () => {
      const env: Record<string, string> = { SWITCHBOARD_APP: APP };
      if (mode === 'redis') {
        redis = await startRedis();
        env.REDIS_URL = redis.url;
      }
      if (mode === 'sentinel') {
        sentinel = await startSentinel({ password: 'data-secret', sentinelPassword: 'sentinel-secret' });
        Object.assign(env, sentinel.env);
      }
      if (mode === 'cluster') {
        cluster = await startRedisCluster();
        env.REDIS_CLUSTER_NODES = cluster.seedList;
      }
      a = await startNode({ env });
      b = mode === 'memory' ? a : await startNode({ env });
    });
    after(async () => {
      closeClients();
      await a?.stop();
      await b?.stop();
      await redis?.stop();
      await sentinel?.stop();
      await cluster?.stop();
    });

    if (mode === 'sentinel') {
      test('nodes find the master through the password-protected sentinels and connect to it with the data password', async () => {
        const master = await sentinel!.master();
        const list = String(await sentinel!.command(master, 'CLIENT', 'LIST'));
        for (const role of ['publisher', 'subscriber', 'limits'])
          assert.equal(list.split('\n').filter((l) => l.includes(`name=switchboard:${role} `)).length, 2, role);
        for (const n of [a, b]) assert.match(n.output(), /"msg":"redis mode: sentinel"/);
      });
    }

    if (mode === 'cluster') {
      test('nodes hold one subscriber connection per master, and each channel lives on the shard of its hash tag', async () => {
        const masters = (await cluster!.topology()).filter((n) => n.role === 'master' && !n.failed);
        assert.equal(masters.length, 3);
        for (const m of masters) {
          const list = String(await cluster!.command(m.port, 'CLIENT', 'LIST'));
          assert.equal(
            list.split('\n').filter((l) => l.includes('name=switchboard:subscriber ')).length,
            2,
            `one subscriber per node on master ${m.port}`,
          );
        }
        for (const n of [a, b]) assert.match(n.output(), /"msg":"redis mode: cluster"/);
        // A subscriber's channel shows up as a shard channel on exactly the master that owns its slot.
        const c = await open(a);
        await call(c, 'subscribe', 'demo:where');
        const { channelSlot, slotTag } = await import('../../src/bus/slots.js');
        const shardChannel = `switchboard:{${slotTag(channelSlot('demo:where'))}}:c:demo:where`;
        const owner = await cluster!.masterOfKey(shardChannel);
        for (const m of masters) {
          const subscribed = (await cluster!.command(m.port, 'PUBSUB', 'SHARDCHANNELS', '*:c:demo:where')) as string[];
          assert.deepEqual(subscribed, m.port === owner ? [shardChannel] : [], `master ${m.port}`);
        }
      });
    }

    if (mode === 'redis' || mode === 'cluster') {
      test('@socket.io/redis-emitter reaches subscribers on every node (classic PUBLISH; on a cluster, from any node)', async () => {
        const s1 = await open(a);
        const s2 = await open(b);
        await call(s1, 'subscribe', 'demo:emit');
        await call(s2, 'subscribe', 'demo:emit');
        const got: unknown[][] = [[], []];
        s1.on('update', (d: unknown) => got[0]!.push(d));
        s2.on('update', (d: unknown) => got[1]!.push(d));
        // On a cluster: the last node, a replica at start, so the message must cross the cluster bus.
        const client = new Redis(mode === 'redis' ? redis!.url : cluster!.seeds.at(-1)!);
        try {
          new Emitter(client).to('demo:emit').emit('update', { n: 1 });
          await waitFor(() => got[0]!.length === 1 && got[1]!.length === 1, { what: 'emitter delivery on both nodes' });
          assert.deepEqual(got, [[{ n: 1 }], [{ n: 1 }]]);
        } finally {
          client.disconnect();
        }
      });
    }

    test('subscribe acks with the contract shape; bad channel names and unknown events are refused', async () => {
      const c = await open(a);
      assert.deepEqual(await call(c, 'subscribe', 'demo:shape'), { ok: true, recovered: false, replayed: 0 });
      assert.deepEqual(await call(c, 'subscribe', 'demo:shape', {}), { ok: true, recovered: false, replayed: 0 });
      const bad = await call(c, 'subscribe', 'no spaces allowed');
      assert.equal(bad.ok, false);
      assert.equal(bad.error.code, 'invalid_channel');
      assert.equal((await call(c, 'subscribe', 'x'.repeat(201))).error.code, 'invalid_channel');
      assert.equal((await call(c, 'subscribe', 42)).error.code, 'invalid_channel');
      assert.equal((await call(c, 'subscribe', 'demo:a', { since: 'yesterday' })).error.code, 'bad_request');
      assert.equal((await call(c, 'frobnicate', 1)).error.code, 'not_found');
      assert.deepEqual(await call(c, 'unsubscribe', 'demo:shape'), { ok: true });
    });

    for (const transport of ['websocket', 'polling'] as const) {
      test(`client publish over ${transport} reaches subscribers on every node with (data, meta)`, async () => {
        const opts = { transports: [transport] };
        const pubC = await open(a, opts);
        const s1 = await open(a, opts);
        const s2 = await open(b, opts);
        const channel = `demo:pub-${transport}`;
        const got1 = collect(s1);
        const got2 = collect(s2);
        await call(s1, 'subscribe', channel);
        await call(s2, 'subscribe', channel);
        const before = Date.now();
        const ack = await call(pubC, 'publish', channel, 'chat', { text: 'hi' });
        assert.equal(ack.ok, true);
        assert.match(ack.id, /^\d+-\d+$/);
        await waitFor(() => got1.length === 1 && got2.length === 1, { what: 'delivery on both nodes' });
        for (const g of [got1[0]!, got2[0]!]) {
          assert.equal(g.event, 'chat');
          assert.deepEqual(g.data, { text: 'hi' });
          assert.equal(g.meta.channel, channel);
          assert.equal(g.meta.id, ack.id);
          assert.ok(g.meta.ts >= before - 5 && g.meta.ts <= Date.now());
        }
      });
    }

    test('clients may not publish where no rule allows it, nor with reserved event names', async () => {
      const c = await open(a);
      assert.equal((await call(c, 'publish', 'orders:1', 'x', {})).error.code, 'forbidden');
      assert.equal((await call(c, 'publish', 'demo:x', 'disconnect', {})).error.code, 'bad_request');
      assert.equal((await call(c, 'publish', 'demo:x', 'switchboard:reconnect', {})).error.code, 'bad_request');
      assert.equal((await call(c, 'publish', 'demo:x', 'big', 'x'.repeat(70_000))).error.code, 'too_large');
    });

    test('HTTP API publish reaches subscribers on every node; several channels at once', async () => {
      const s1 = await open(a);
      const s2 = await open(b);
      const got1 = collect(s1);
      const got2 = collect(s2);
      await call(s1, 'subscribe', 'news:1');
      await call(s2, 'subscribe', 'news:2');
      const one = await apiPublish(b.url, { channel: 'news:1', event: 'headline', data: { n: 1 } });
      assert.equal(one.status, 200);
      assert.equal(one.body.ok, true);
      const many = await apiPublish(a.url, { channels: ['news:1', 'news:2'], event: 'headline', data: { n: 2 } });
      assert.equal(many.status, 200);
      assert.equal(many.body.ids.length, 2);
      await waitFor(() => got1.length === 2 && got2.length === 1, { what: 'API deliveries' });
      assert.deepEqual(
        got1.map((g) => g.meta.id),
        [one.body.id, many.body.ids[0]],
      );
      assert.equal(got2[0]!.meta.id, many.body.ids[1]);
    });

    test('publications from two nodes arrive at every subscriber once, in id order, in the same order', async () => {
      const channel = 'demo:order';
      const subs = [await open(a), await open(b), await open(b)];
      const got = subs.map(collect);
      for (const s of subs) await call(s, 'subscribe', channel);
      const pa = await open(a);
      const pb = await open(b);
      const N = 60;
      await Promise.all(Array.from({ length: N }, (_, i) => call(i % 2 ? pa : pb, 'publish', channel, 'n', { i })));
      await waitFor(() => got.every((g) => g.length === N), { what: `${N} publications at each subscriber` });
      const ids0 = got[0]!.map((g) => g.meta.id);
      assert.equal(new Set(ids0).size, N, 'no duplicates');
      const sorted = [...ids0].sort((x, y) => {
        const [xa, xb] = x.split('-').map(Number);
        const [ya, yb] = y.split('-').map(Number);
        return xa! - ya! || xb! - yb!;
      });
      assert.deepEqual(ids0, sorted, 'increasing ids');
      for (const g of got)
        assert.deepEqual(
          g.map((x) => x.meta.id),
          ids0,
          'same order everywhere',
        );
    });

    test('subscribe with since replays exactly what was missed, then continues live', async () => {
      const channel = 'demo:recover';
      const s = await open(a);
      const got = collect(s);
      await call(s, 'subscribe', channel);
      for (let i = 0; i < 3; i++) await apiPublish(a.url, { channel, event: 'n', data: i });
      await waitFor(() => got.length === 3);
      const last = got[2]!.meta.id;
      s.disconnect();
      for (let i = 3; i < 8; i++) await apiPublish(b.url, { channel, event: 'n', data: i });
      const s2 = await open(b);
      const got2 = collect(s2);
      const ack = await call(s2, 'subscribe', channel, { since: last });
      assert.deepEqual(ack, { ok: true, recovered: true, replayed: 5 });
      await apiPublish(a.url, { channel, event: 'n', data: 8 });
      await waitFor(() => got2.length === 6);
      assert.deepEqual(
        got2.map((g) => g.data),
        [3, 4, 5, 6, 7, 8],
      );
      // An id history never had: nothing can be promised.
      const s3 = await open(a);
      const unknown = await call(s3, 'subscribe', channel, { since: '1-0' });
      assert.equal(unknown.ok, true);
      assert.equal(unknown.recovered, false);
    });

    test('presence counts members on every node, grouped by user', async () => {
      const channel = 'demo:presence';
      const c1 = await open(a, { auth: { user: 'ann' } });
      const c2 = await open(b, { auth: { user: 'ann' } });
      const c3 = await open(b, { auth: { user: 'bob' } });
      for (const c of [c1, c2, c3]) await call(c, 'subscribe', channel);
      const p = await call(c1, 'presence', channel);
      assert.equal(p.ok, true);
      assert.equal(p.count, 3);
      assert.deepEqual(
        [...p.members].sort((x: any, y: any) => x.user.localeCompare(y.user)),
        [
          { user: 'ann', connections: 2 },
          { user: 'bob', connections: 1 },
        ],
      );
      const res = await fetch(`${b.url}/api/channels/${channel}`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } });
      const body = (await res.json()) as any;
      assert.equal(body.subscribers, 3);
      c3.disconnect();
      await waitFor(async () => (await call(c1, 'presence', channel)).count === 2, { what: 'presence after a disconnect' });
    });

    test('RPC runs embedded handlers; a throwing or rejecting handler answers internal and the node keeps serving', async () => {
      const c = await open(b, { auth: { user: 'zoe' } });
      assert.deepEqual(await call(c, 'rpc', 'echo', { x: [1, 2] }), { ok: true, result: { x: [1, 2] } });
      assert.deepEqual(await call(c, 'rpc', 'add', { a: 2, b: 3 }), { ok: true, result: 5 });
      assert.deepEqual(await call(c, 'rpc', 'whoami', null), { ok: true, result: { user: 'zoe' } });
      assert.equal((await call(c, 'rpc', 'boom', {})).error.code, 'internal');
      assert.equal((await call(c, 'rpc', 'reject', {})).error.code, 'internal');
      assert.equal((await call(c, 'rpc', 'nope', {})).error.code, 'not_found');
      assert.equal((await call(c, 'rpc', 'bad method!', {})).error.code, 'bad_request');
      assert.deepEqual(await call(c, 'rpc', 'echo', 7), { ok: true, result: 7 });
      const m = await (await fetch(`${b.internalUrl}/metrics`)).text();
      assert.match(m, /switchboard_app_errors_total\{[^}]*hook="rpc:boom"[^}]*\} 1/);
    });

    test('/api/stats counts the connections of every node', async () => {
      const extraA = await open(a);
      const extraB = await open(b);
      await waitFor(
        async () => {
          const res = await fetch(`${a.url}/api/stats`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } });
          const body = (await res.json()) as { connections: number; nodes: { id: string; connections: number }[] };
          const ids = new Set(body.nodes.map((n) => n.id));
          const expectNodes = mode === 'memory' ? [a.id] : [a.id, b.id];
          return (
            expectNodes.every((id) => ids.has(id)) &&
            body.connections === body.nodes.reduce((n, x) => n + x.connections, 0) &&
            body.connections >= clients.filter((c) => c.connected).length
          );
        },
        { what: 'stats listing every node', timeout: 8000 },
      );
      void extraA;
      void extraB;
    });
  });
}
