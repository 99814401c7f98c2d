// Cluster-wide presence with token-authenticated clients whose tokens expire: the adapter ships socket.data
// between nodes, so it must hold only plain data (a timer there once made every remote presence time out).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, stopAll, type TestNode } from '../helpers/node.js';
import { call, clientPool } from '../helpers/client.js';

const SECRET = 'presence-secret-presence-secret-32b';
const token = (sub: string) =>
  new SignJWT({ channels: ['team:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

let redis: TestRedis;
let a: TestNode;
let b: TestNode;
const pool = clientPool();

before(async () => {
  redis = await startRedis();
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, CHANNEL_RULES: '[{"prefix":"team:","presence":true}]' };
  a = await startNode({ env });
  b = await startNode({ env });
});
after(async () => {
  pool.close();
  await stopAll(a, b, redis);
});

test('presence and channel info list token users on every node; tokens never travel in them', async () => {
  const ann = await pool.open(a, { auth: { token: await token('ann') } });
  const bob = await pool.open(b, { auth: { token: await token('bob') } });
  assert.equal((await call(ann, 'subscribe', 'team:red')).ok, true);
  assert.equal((await call(bob, 'subscribe', 'team:red')).ok, true);
  const p = await call(ann, 'presence', 'team:red');
  assert.equal(p.ok, true, JSON.stringify(p));
  assert.equal(p.count, 2);
  assert.deepEqual(p.members.map((m: { user: string }) => m.user).sort(), ['ann', 'bob']);
  const res = await fetch(`${b.url}/api/channels/team:red`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } });
  assert.equal(res.status, 200);
  const body = await res.text();
  assert.equal(JSON.parse(body).subscribers, 2);
  assert.ok(!body.includes('eyJ'), 'no token in the answer');
});
