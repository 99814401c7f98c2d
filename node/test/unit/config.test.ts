// Config parsing: defaults, env and flag precedence, clear errors, and the README table kept in sync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../src/config/load.js';
import { configTable } from '../../src/config/docs.js';
import { repoRoot } from '../helpers/node.js';

test('defaults match the contract', () => {
  const c = loadConfig({});
  assert.equal(c.port, 3000);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.internalPort, 9090);
  assert.equal(c.redisUrl, undefined);
  assert.equal(c.apiKeys, undefined);
  assert.equal(c.logLevel, 'info');
  assert.match(c.nodeId, /-\d+$/);
  assert.ok(Object.isFrozen(c));
});

test('env values are parsed; flags override env', () => {
  const c = loadConfig({ PORT: '4000', API_KEYS: 'a, b ,,c', PER_MESSAGE_DEFLATE: 'true', NODE_ID: 'n1' }, { port: '5000' });
  assert.equal(c.port, 5000);
  assert.deepEqual(c.apiKeys, ['a', 'b', 'c']);
  assert.equal(c.perMessageDeflate, true);
  assert.equal(c.nodeId, 'n1');
});

test('bad values fail with the variable and the reason, all at once', () => {
  assert.throws(
    () => loadConfig({ PORT: 'eighty', REDIS_URL: 'localhost:6379', LOG_LEVEL: 'loud' }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 3);
      assert.match(err.message, /PORT="eighty"/);
      assert.match(err.message, /REDIS_URL=.*redis:\/\//);
      assert.match(err.message, /LOG_LEVEL/);
      return true;
    },
  );
  assert.throws(() => loadConfig({ PORT: '9090' }), /INTERNAL_PORT=9090: must differ from PORT/);
  assert.throws(() => loadConfig({ PING_INTERVAL_MS: '200000' }), /WS_IDLE_TIMEOUT_S/);
  assert.throws(() => loadConfig({ BACKEND_URL: 'http://backend' }), /WEBHOOK_SECRET/);
});

test("the README's configuration table is the one generated from the schema", () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const table = configTable();
  assert.ok(
    readme.includes(table),
    'README.md is stale: replace the block between the config-table markers with the output of `node dist/node/src/main.js config-table`',
  );
});

test("the README's metrics reference is the one generated from the registry", async () => {
  const { metricsTable } = await import('../../src/metrics/metrics.js');
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  assert.ok(readme.includes(await metricsTable()), 'README.md is stale: run `npm run build && node scripts/update-config-table.mjs`');
});

test('Redis modes: cluster > sentinels > URL > memory, with the outranked settings named', async () => {
  const { redisConnectOptions, describeRedis } = await import('../../src/bus/redis-connect.js');
  assert.equal(redisConnectOptions(loadConfig({})), undefined);
  const single = redisConnectOptions(loadConfig({ REDIS_URL: 'redis://:pw@r:6380/2' }))!;
  assert.deepEqual(single.target, { mode: 'single', url: 'redis://:pw@r:6380/2' });
  assert.deepEqual(describeRedis(single).addresses, ['redis://:***@r:6380/2']);
  const env = { REDIS_URL: 'redis://r:6379', REDIS_SENTINELS: 's1:26379, [::1]:26380', REDIS_SENTINEL_NAME: 'main', REDIS_PASSWORD: 'data', REDIS_SENTINEL_PASSWORD: 'sent' };
  const s = redisConnectOptions(loadConfig(env))!;
  assert.equal(s.target.mode, 'sentinel');
  assert.deepEqual(s.target.mode === 'sentinel' && s.target.sentinels, [
    { host: 's1', port: 26379 },
    { host: '::1', port: 26380 },
  ]);
  assert.equal(s.password, 'data');
  assert.deepEqual(s.ignored, ['REDIS_URL']);
  const d = describeRedis(s);
  assert.deepEqual(d, { mode: 'sentinel', addresses: ['s1:26379', '[::1]:26380'], group: 'main', ignored: ['REDIS_URL'] });
  assert.doesNotMatch(JSON.stringify(d), /data|sent"/);
  const c = redisConnectOptions(loadConfig({ ...env, REDIS_PASSWORD: undefined, REDIS_CLUSTER_NODES: 'redis://a:7000,redis://b:7001' }))!;
  assert.deepEqual(c.target, { mode: 'cluster', nodes: ['redis://a:7000', 'redis://b:7001'] });
  assert.deepEqual(c.ignored, ['REDIS_SENTINELS', 'REDIS_URL']);
});

test('Redis settings that contradict or lack each other are refused, and secrets stay out of the message', () => {
  const fails = (env: Record<string, string>, re: RegExp) => assert.throws(() => loadConfig(env), re);
  fails({ REDIS_SENTINELS: 's1:26379' }, /REDIS_SENTINEL_NAME: required with REDIS_SENTINELS/);
  fails({ REDIS_SENTINELS: 's1', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINELS=.*"s1" is not host:port/);
  fails({ REDIS_SENTINELS: 's1:99999', REDIS_SENTINEL_NAME: 'm' }, /"s1:99999" is not host:port/);
  fails({ REDIS_SENTINELS: ' , ', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINELS=.*at least one/);
  fails({ REDIS_URL: 'redis://r', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINEL_NAME: has no effect without REDIS_SENTINELS/);
  fails({ REDIS_PASSWORD: 'x' }, /REDIS_PASSWORD\/REDIS_USERNAME: have no effect without/);
  fails({ REDIS_URL: 'redis://r', REDIS_USERNAME: 'u' }, /REDIS_USERNAME: needs REDIS_PASSWORD/);
  fails({ REDIS_URL: 'redis://u:p@r', REDIS_PASSWORD: 'x' }, /carries credentials too; set them in one place/);
  fails({ REDIS_CLUSTER_NODES: 'redis://a:1,http://b:2' }, /REDIS_CLUSTER_NODES=.*redis:\/\//);
  assert.throws(
    () => loadConfig({ REDIS_CLUSTER_NODES: 'redis://:hunter2@a:1,b:2', REDIS_SENTINEL_PASSWORD: '', JWT_SECRET: '' }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    },
  );
  // A sentinel-mode password in one place only: REDIS_PASSWORD is the data nodes', not the URL's.
  assert.equal(loadConfig({ REDIS_URL: 'redis://u:p@r', REDIS_SENTINELS: 's:1', REDIS_SENTINEL_NAME: 'm', REDIS_PASSWORD: 'x' }).redisPassword, 'x');
});
