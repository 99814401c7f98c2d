// Faults with real processes: kill -9 a node, Redis down and back, SIGTERM drain.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { apiPublish, call, clientPool, collect } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';

const FAST = { CANARY_INTERVAL_MS: '200', CANARY_TIMEOUT_MS: '600', DRAIN_TIMEOUT_MS: '1500' };

describe('faults', () => {
  let redis: TestRedis;
  let nodes: TestNode[] = [];
  const { open, close: closeClients } = clientPool();
  const ready = async (n: TestNode) => (await fetch(`${n.internalUrl}/readyz`)).status;

  before(async () => {
    redis = await startRedis();
    for (let i = 0; i < 3; i++) nodes.push(await startNode({ env: { REDIS_URL: redis.url, ...FAST } }));
  });
  after(async () => {
    closeClients();
    for (const n of nodes) await n.stop();
    await redis.stop();
  });

  test('kill -9 one node: the others keep serving and their clients notice nothing', async () => {
    const [victim, n1, n2] = nodes as [TestNode, TestNode, TestNode];
    const doomed = await open(victim);
    await call(doomed, 'subscribe', 'news:k');
    const s1 = await open(n1);
    const s2 = await open(n2);
    const disconnects: string[] = [];
    for (const s of [s1, s2]) s.on('disconnect', (r) => disconnects.push(r));
    const got = [collect(s1), collect(s2)];
    await call(s1, 'subscribe', 'news:k');
    await call(s2, 'subscribe', 'news:k');
    victim.kill('SIGKILL');
    await victim.exited;
    for (let i = 0; i < 5; i++) assert.equal((await apiPublish(n1.url, { channel: 'news:k', event: 'n', data: i })).status, 200);
    await waitFor(() => got.every((g) => g.length === 5), { what: 'deliveries after the kill' });
    assert.deepEqual(
      got[1]!.map((g) => g.data),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(disconnects, []);
    assert.equal(await ready(n1), 200);
    // /api/stats forgets the dead node once its heartbeat is stale; the live ones are always listed.
    const stats = (await (
      await fetch(`${n2.url}/api/stats`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } })
    ).json()) as any;
    assert.ok(stats.nodes.some((x: any) => x.id === n1.id) && stats.nodes.some((x: any) => x.id === n2.id));
    nodes = [n1, n2];
  });

  test('Redis down: no node exits, /readyz 503, local delivery continues; Redis back: cross-node delivery resumes', async () => {
    const [n1, n2] = nodes as [TestNode, TestNode];
    const local = await open(n1);
    const remote = await open(n2);
    const gotLocal = collect(local);
    const gotRemote = collect(remote);
    await call(local, 'subscribe', 'news:r');
    await call(remote, 'subscribe', 'news:r');

    redis.signal('SIGKILL');
    await waitFor(async () => (await ready(n1)) === 503 && (await ready(n2)) === 503, { what: '/readyz 503 on both', timeout: 5000 });
    const body = (await (await fetch(`${n1.internalUrl}/readyz`)).json()) as any;
    assert.equal(body.ready, false);
    assert.match(body.reason, /redis|canary|bus/);
    const r = await apiPublish(n1.url, { channel: 'news:r', event: 'n', data: 'during' });
    assert.equal(r.status, 200);
    assert.equal(r.body.local, true, 'the publisher is told only local subscribers were reached');
    await waitFor(() => gotLocal.length === 1, { what: 'local delivery while Redis is down' });
    assert.equal(gotLocal[0]!.data, 'during');
    assert.equal(n1.proc.exitCode, null);
    assert.equal(n2.proc.exitCode, null);

    await redis.restart();
    await waitFor(async () => (await ready(n1)) === 200 && (await ready(n2)) === 200, {
      what: '/readyz 200 after Redis returns',
      timeout: 15000,
    });
    const after = await apiPublish(n1.url, { channel: 'news:r', event: 'n', data: 'after' });
    assert.equal(after.status, 200);
    assert.equal(after.body.local, undefined);
    await waitFor(() => gotRemote.some((g) => g.data === 'after'), { what: 'cross-node delivery after Redis returns' });
    assert.ok(!gotRemote.some((g) => g.data === 'during'), 'a local-only publication never reaches other nodes');
  });

  test('SIGTERM drains: readiness off, clients told to reconnect, exit 0', async () => {
    const [n1, n2] = nodes as [TestNode, TestNode];
    const cs = await Promise.all(Array.from({ length: 6 }, () => open(n2, { reconnection: false })));
    const told: unknown[] = [];
    const reasons: string[] = [];
    for (const c of cs) {
      c.on('switchboard:reconnect', (m: unknown) => told.push(m));
      c.on('disconnect', (r) => reasons.push(r));
    }
    n2.kill('SIGTERM');
    await waitFor(async () => (await ready(n2).catch(() => 0)) !== 200, { what: 'readiness off', timeout: 2000 });
    const code = await n2.exited;
    assert.equal(code, 0);
    assert.equal(reasons.length, 6);
    // A transport close, which socket.io-client answers by reconnecting (not "io server disconnect").
    assert.ok(
      reasons.every((r) => r === 'transport close'),
      reasons.join(','),
    );
    assert.equal(told.length, 6);
    assert.equal(await ready(n1), 200);
  });
});
