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
  const c = loadConfig(
    { PORT: '4000', API_KEYS: 'key-a-0123456789, key-b-0123456789 ,,key-c-0123456789', PER_MESSAGE_DEFLATE: 'true', NODE_ID: 'n1' },
    { port: '5000' },
  );
  assert.equal(c.port, 5000);
  assert.deepEqual(c.apiKeys, ['key-a-0123456789', 'key-b-0123456789', 'key-c-0123456789']);
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
  const env = {
    REDIS_URL: 'redis://r:6379',
    REDIS_SENTINELS: 's1:26379, [::1]:26380',
    REDIS_SENTINEL_NAME: 'main',
    REDIS_PASSWORD: 'data',
    REDIS_SENTINEL_PASSWORD: 'sent',
  };
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
  assert.equal(
    loadConfig({ REDIS_URL: 'redis://u:p@r', REDIS_SENTINELS: 's:1', REDIS_SENTINEL_NAME: 'm', REDIS_PASSWORD: 'x' }).redisPassword,
    'x',
  );
});

test('CHANNEL_RULES and the JWT key files are read by loadConfig: a bad one is a ConfigError naming it', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { generateKeyPairSync } = await import('node:crypto');
  const dir = mkdtempSync(join(tmpdir(), 'sb-config-'));
  try {
    const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
    const configError = (env: Record<string, string>, re: RegExp) =>
      assert.throws(
        () => loadConfig(env),
        (err: unknown) => err instanceof ConfigError && err.problems.length === 1 && re.test(err.problems[0]!),
      );

    const rules = '[{"prefix":"chat:","subscribe":"anyone"}]';
    assert.equal(loadConfig({ CHANNEL_RULES: rules }).channelRules?.[0]?.prefix, 'chat:');
    assert.equal(loadConfig({ CHANNEL_RULES: `@${file('rules.json', rules)}` }).channelRules?.[0]?.subscribe, 'anyone');
    assert.equal(loadConfig({}).channelRules, undefined, 'unset: the built-in rules apply');
    configError({ CHANNEL_RULES: '[{"prefix":"a:","publish":"everyone"}]' }, /^CHANNEL_RULES=.*: 0\.publish: /);
    configError({ CHANNEL_RULES: '[{"prefix":"a:"' }, /^CHANNEL_RULES=.*: cannot read the value as JSON/);
    configError({ CHANNEL_RULES: `@${join(dir, 'missing.json')}` }, /^CHANNEL_RULES=.*: cannot read .*missing\.json as JSON: ENOENT/);

    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = file('rsa.pem', rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    assert.equal(loadConfig({ JWT_PUBLIC_KEY_FILE: pem }).jwtPublicKeyFile?.asymmetricKeyType, 'rsa');
    configError({ JWT_PUBLIC_KEY_FILE: join(dir, 'missing.pem') }, /^JWT_PUBLIC_KEY_FILE=.*: not a readable PEM public key/);
    configError({ JWT_PUBLIC_KEY_FILE: file('junk.pem', 'not a key') }, /^JWT_PUBLIC_KEY_FILE=.*: not a readable PEM public key/);
    const ed = file('ed.pem', generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string);
    configError({ JWT_PUBLIC_KEY_FILE: ed }, /^JWT_PUBLIC_KEY_FILE=.*: an RSA \(RS256\) or EC P-256 \(ES256\) key is needed, not ed25519/);

    const jwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256' };
    assert.equal(loadConfig({ JWT_JWKS_FILE: file('jwks.json', JSON.stringify({ keys: [jwk] })) }).jwtJwksFile?.keys.length, 1);
    configError({ JWT_JWKS_FILE: file('bad.json', '{') }, /^JWT_JWKS_FILE=.*: not a readable JSON key set/);
    configError({ JWT_JWKS_FILE: file('nokeys.json', '{"kid":"x"}') }, /^JWT_JWKS_FILE=.*: not a JSON key set/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('environment variables that look like ours but are unknown are found, with the name they are close to', async () => {
  const { unknownEnv } = await import('../../src/config/unknown-env.js');
  const env = {
    ALLOWED_ORIGNS: 'https://a.example', // one letter missing
    allowed_origins: 'https://a.example', // wrong case
    API_KEY: 'k', // API_KEYS
    WEBHOOK_SECRT: 's', // two edits from WEBHOOK_SECRET
    REDIS_HOST: 'r', // our prefix, no setting of that name
    SWITCHBOARD_MODE: 'x',
    // Known settings, unrelated variables, and Kubernetes service links are left alone.
    ALLOWED_ORIGINS: 'https://a.example',
    REDIS_URL: 'redis://r',
    PATH: '/bin',
    HOME: '/root',
    NODE_ENV: 'production',
    NODE_OPTIONS: '--enable-source-maps',
    SB_URL: 'http://x',
    REDIS_SERVICE_HOST: '10.0.0.1',
    REDIS_SERVICE_PORT_REDIS: '6379',
    REDIS_PORT: 'tcp://10.0.0.1:6379',
    REDIS_PORT_6379_TCP_ADDR: '10.0.0.1',
  };
  assert.deepEqual(unknownEnv(env), [
    { name: 'ALLOWED_ORIGNS', like: 'ALLOWED_ORIGINS' },
    { name: 'API_KEY', like: 'API_KEYS' },
    { name: 'REDIS_HOST' },
    { name: 'SWITCHBOARD_MODE' },
    { name: 'WEBHOOK_SECRT', like: 'WEBHOOK_SECRET' },
    { name: 'allowed_origins', like: 'ALLOWED_ORIGINS' },
  ]);
  assert.deepEqual(unknownEnv({}), []);
});

test('start-up failures outside the schema name their variable too: SWITCHBOARD_APP, PORT in use', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { fileURLToPath } = await import('node:url');
  const { loadApp } = await import('../../src/lifecycle/start.js');
  const { createSwitchboard } = await import('../../src/lifecycle/switchboard.js');
  const isConfigError = (re: RegExp) => (err: unknown) => err instanceof ConfigError && re.test(err.message);

  const fixture = await loadApp(fileURLToPath(new URL('../fixtures/app.js', import.meta.url)));
  assert.equal(typeof fixture.rpc, 'object');
  const dir = mkdtempSync(join(tmpdir(), 'sb-app-'));
  try {
    await assert.rejects(loadApp(join(dir, 'missing.js')), isConfigError(/SWITCHBOARD_APP=".*missing\.js": cannot load the module/));
    writeFileSync(join(dir, 'number.mjs'), 'export default 42;\n');
    await assert.rejects(
      loadApp(join(dir, 'number.mjs')),
      isConfigError(/SWITCHBOARD_APP=".*number\.mjs": the default export must be an object/),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const { createServer } = await import('node:net');
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  const sb = await createSwitchboard({
    host: '127.0.0.1',
    port,
    internalPort: 0,
    logLevel: 'silent',
    drainDelayMs: 0,
    drainTimeoutMs: 100,
  });
  try {
    await assert.rejects(sb.listen(), isConfigError(new RegExp(`PORT=${port}: cannot listen on 127\\.0\\.0\\.1:${port}`)));
  } finally {
    await sb.close();
    taken.close();
  }
});

test('the admin view is off by default and never on without credentials', () => {
  const c = loadConfig({});
  assert.equal(c.adminUi, false);
  assert.equal(c.adminUiReadonly, true);
  const hash = '$2a$04$Sp2UjTPt6DQn4Wo0.u3A0O6eFQc1D6PEZTJNW2LjhPwt9TDl5cwoy';
  assert.throws(() => loadConfig({ ADMIN_UI: 'true' }), /ADMIN_UI: needs ADMIN_UI_USERNAME and ADMIN_UI_PASSWORD_HASH/);
  assert.throws(() => loadConfig({ ADMIN_UI: 'true', ADMIN_UI_USERNAME: 'ops' }), /ADMIN_UI: needs/);
  // A plain password where the hash belongs is refused, and not echoed.
  assert.throws(
    () => loadConfig({ ADMIN_UI: 'true', ADMIN_UI_USERNAME: 'ops', ADMIN_UI_PASSWORD_HASH: 'hunter2' }),
    (err: unknown) =>
      err instanceof ConfigError &&
      /ADMIN_UI_PASSWORD_HASH=\(hidden\): must be a bcrypt hash/.test(err.message) &&
      !err.message.includes('hunter2'),
  );
  assert.equal(loadConfig({ ADMIN_UI: 'true', ADMIN_UI_USERNAME: 'ops', ADMIN_UI_PASSWORD_HASH: hash }).adminUi, true);
});
