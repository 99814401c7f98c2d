// REDIS_CLUSTER_NODES → the ioredis Cluster options: seeds, credentials from the URL (percent-decoded), TLS for rediss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClusterNodeClient, createRedisCluster, redisConnectOptions } from '../../src/bus/redis-connect.js';
import { loadConfig } from '../../src/config/load.js';

const role = { role: 'publisher', failFast: true, lazyConnect: true };

test('seed URLs give host/port seeds; URL credentials and TLS reach every node connection', () => {
  const o = redisConnectOptions(loadConfig({ REDIS_CLUSTER_NODES: 'rediss://app:p%40ss@h1.example:7000,rediss://h2.example:7001' }))!;
  const c = createRedisCluster(o, role);
  try {
    assert.deepEqual((c as unknown as { startupNodes: unknown[] }).startupNodes, [
      { host: 'h1.example', port: 7000 },
      { host: 'h2.example', port: 7001 },
    ]);
    assert.equal(c.options.redisOptions?.username, 'app');
    assert.equal(c.options.redisOptions?.password, 'p@ss');
    assert.deepEqual(c.options.redisOptions?.tls, {});
    assert.equal(c.options.enableOfflineQueue, false, 'fail-fast role');
    // A subscriber connection the bus opens to one master carries the same credentials.
    const n = createClusterNodeClient(o, { role: 'subscriber', failFast: false, lazyConnect: true }, { host: '10.0.0.5', port: 7002 });
    assert.equal(n.options.host, '10.0.0.5');
    assert.equal(n.options.port, 7002);
    assert.equal(n.options.password, 'p@ss');
    assert.deepEqual(n.options.tls, {});
    n.disconnect();
  } finally {
    c.disconnect();
  }
});

test('REDIS_PASSWORD applies when the URLs carry none; plain redis:// has no TLS', () => {
  const o = redisConnectOptions(loadConfig({ REDIS_CLUSTER_NODES: 'redis://h1:7000', REDIS_PASSWORD: 'from-env' }))!;
  const c = createRedisCluster(o, role);
  try {
    assert.equal(c.options.redisOptions?.password, 'from-env');
    assert.equal(c.options.redisOptions?.tls, undefined);
  } finally {
    c.disconnect();
  }
});
