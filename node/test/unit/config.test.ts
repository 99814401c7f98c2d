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
