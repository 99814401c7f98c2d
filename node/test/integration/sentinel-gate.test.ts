// The Sentinel failover gate's own paths, driven by the events a sentinel publishes: writes are held from
// +try-failover, released on an abort, and released by REDIS_FAILOVER_HOLD_MS when no new master is ever named.
// A sentinel accepts no PUBLISH of such events, so the last address in REDIS_SENTINELS is a plain redis-server
// the test publishes them on (the node asks the real sentinels first for the master; the gate watches all).
// The real failovers are in scenario/sentinel-failover.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, type TestNode } from '../helpers/node.js';
import { apiPublish } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { command } from '../helpers/redis-process.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startSentinel, type TestSentinel } from '../helpers/redis-sentinel.js';

describe('Sentinel failover gate', () => {
  let sentinel: TestSentinel;
  let node: TestNode;
  let fake: TestRedis;
  const status = async () => (await fetch(`${node.internalUrl}/readyz`)).status;
  /** Publishes a sentinel event, as the sentinel would, to every client watching that sentinel. */
  const event = async (channel: string, group: string) => {
    const master = await sentinel.master();
    return command(fake.port, ['PUBLISH', channel, `master ${group} 127.0.0.1 ${master}`]);
  };

  before(async () => {
    sentinel = await startSentinel();
    fake = await startRedis();
    const env = { ...sentinel.env, REDIS_SENTINELS: `${sentinel.sentinelList},127.0.0.1:${fake.port}` };
    node = await startNode({ env: { ...env, CANARY_INTERVAL_MS: '200', CANARY_TIMEOUT_MS: '500', REDIS_FAILOVER_HOLD_MS: '1500' } });
  });
  after(async () => {
    await node?.stop();
    await sentinel?.stop();
    await fake?.stop();
  });

  test('+try-failover holds writes (publish answers unavailable, not ready); an abort releases them', async () => {
    assert.equal(await status(), 200);
    assert.ok(Number(await event('+try-failover', sentinel.name)) >= 1, 'the node watches the sentinel');
    await waitFor(async () => (await status()) === 503, { what: 'unready while writes are held' });
    const held = await apiPublish(node.url, { channel: 'gate:a', event: 'e', data: 1 }, undefined, { 'idempotency-key': 'gate-1' });
    assert.equal(held.status, 503);
    assert.equal(held.body.error.code, 'unavailable');
    await event('-failover-abort-not-elected', sentinel.name);
    await waitFor(async () => (await status()) === 200, { what: 'ready again after the abort' });
    assert.match(node.output(), /"reason":"failover aborted \(-failover-abort-not-elected\)","msg":"writes released"/);
    assert.equal(
      (await apiPublish(node.url, { channel: 'gate:a', event: 'e', data: 1 }, undefined, { 'idempotency-key': 'gate-1' })).status,
      200,
    );
  });

  test("another group's failover is not ours; ours with no new master ever named is released after REDIS_FAILOVER_HOLD_MS", async () => {
    await event('+try-failover', 'some-other-group');
    await event('+try-failover', sentinel.name);
    await waitFor(async () => (await status()) === 503, { what: 'unready while writes are held' });
    await waitFor(async () => (await status()) === 200, { what: 'ready again after the hold cap', timeout: 15_000 });
    assert.match(node.output(), /"reason":"no new master named in time","msg":"writes released"/);
    // The other group's event, sent first, started no hold: each hold names the group whose failover started it.
    const holds = node
      .output()
      .split('\n')
      .filter((l) => l.includes('sentinel failover started'));
    assert.equal(holds.length, 2);
    for (const l of holds) assert.match(l, new RegExp(`"group":"${sentinel.name}"`));
  });
});
