// Two createSwitchboard() instances in one process keep their own handler state: each node's auth:refresh checks
// tokens with its own JWT_SECRET (module state in protocol/ used to make the last instance's verifier everyone's).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { call, clientPool } from '../helpers/client.js';
import { startInProcess, type InProcess } from '../helpers/inprocess.js';

const A = 'first-instance-secret-0123456789abcdef';
const B = 'second-instance-secret-0123456789abcdef';
const token = (secret: string, sub: string) =>
  new SignJWT({ sub, channels: ['room:*'], exp: Math.floor(Date.now() / 1000) + 60 })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(secret));

describe('two instances in one process', () => {
  let a: InProcess;
  let b: InProcess;
  const pool = clientPool();

  before(async () => {
    a = await startInProcess({ jwtSecret: A });
    b = await startInProcess({ jwtSecret: B });
  });
  after(async () => {
    pool.close();
    await Promise.all([a?.sb.close(), b?.sb.close()]);
  });

  test('each instance refreshes tokens with its own secret', async () => {
    const ca = await pool.open(a.url, { auth: { token: await token(A, 'alice') } });
    const cb = await pool.open(b.url, { auth: { token: await token(B, 'bob') } });
    assert.deepEqual(await call(ca, 'auth:refresh', await token(A, 'alice')), { ok: true });
    assert.deepEqual(await call(cb, 'auth:refresh', await token(B, 'bob')), { ok: true });
    const wrong = await call(ca, 'auth:refresh', await token(B, 'alice'));
    assert.equal(wrong.ok, false, 'a token signed for the other instance is refused');
    assert.equal(wrong.error.code, 'unauthorized');
  });
});
