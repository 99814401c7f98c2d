// Smoke tests of the Redis Cluster and Sentinel test helpers: the drills the failover tests rely on really happen.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js';
import { startSentinel, type TestSentinel } from '../helpers/redis-sentinel.js';
import { waitFor } from '../helpers/ports.js';

describe('Redis Cluster helper', () => {
  let c: TestRedisCluster;
  before(async () => {
    c = await startRedisCluster();
  });
  after(() => c?.stop());

  test('3 masters with a replica each; kill -9 of a master promotes its replica; CLUSTER FAILOVER moves it back', async () => {
    const topo = await c.topology();
    assert.equal(topo.filter((n) => n.role === 'master').length, 3);
    assert.equal(topo.filter((n) => n.role === 'replica').length, 3);
    const m = await c.masterOfKey('{sb}x');
    assert.equal(await c.masterOfSlot(await c.keySlot('{sb}x')), m);
    const replica = await c.replicaOf(m);
    await c.command(m, 'SET', '{sb}x', '1');
    // Replication is asynchronous: killed before its replica has the write, the master would take it along.
    await waitFor(async () => (await c.command(m, 'WAIT', 1, 1000)) === 1, { what: 'the replica to acknowledge the write' });
    await c.kill(m);
    assert.equal(await c.waitPromoted(m), replica);
    await c.restart(m);
    await c.waitHealthy();
    assert.equal(await c.replicaOf(replica), m);
    await c.failover(m);
    assert.equal(await c.masterOfKey('{sb}x'), m);
    assert.equal(await c.command(m, 'GET', '{sb}x'), '1');
  });
});

describe('Redis Sentinel helper', () => {
  let s: TestSentinel;
  before(async () => {
    s = await startSentinel();
  });
  after(() => s?.stop());

  test('SENTINEL FAILOVER promotes a replica; kill -9 of the master promotes another', async () => {
    const first = await s.master();
    assert.equal(first, s.data[0]!.port);
    const second = await s.failover();
    assert.notEqual(second, first);
    // The old master turns replica only when a sentinel next reads its INFO (every 10 s): one replica suffices here.
    await s.waitSettled(1);
    await s.kill(second);
    const third = await s.waitNewMaster(second);
    assert.ok(![second].includes(third));
    await s.restart(second);
    assert.equal(await s.waitSettled(2), third);
  });
});
