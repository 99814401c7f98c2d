// Client tokens end to end: HS256 with JWT_SECRET, RS256 and ES256 from key files; channel and publish claims;
// expiry during a connection (`token_expired`) and `auth:refresh` keeping a connection alive.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { startNode, type TestNode } from '../helpers/node.js';
import { call, collect, connect, metricValue, refused, type Client } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';

const SECRET = 'auth-test-secret-0123456789abcdefghij';
const RULES = JSON.stringify([{ prefix: '', subscribe: 'authorized', publish: 'authorized' }]);

const now = () => Math.floor(Date.now() / 1000);

function hs256(claims: Record<string, unknown>, secret = SECRET) {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' });
  return jwt.sign(new TextEncoder().encode(secret));
}

describe('client tokens', { timeout: 90_000 }, () => {
  let node: TestNode;
  let keyed: TestNode;
  let dir: string;
  let rsa: { privateKey: KeyObject; publicKey: KeyObject };
  let ec: { privateKey: KeyObject; publicKey: KeyObject };
  const clients: Client[] = [];
  const open = async (n: TestNode, token: unknown, opts: Parameters<typeof connect>[1] = {}) => {
    const c = await connect(n.url, { auth: { token }, ...opts });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-auth-'));
    rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pemFile = join(dir, 'rsa.pub.pem');
    writeFileSync(pemFile, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    const jwksFile = join(dir, 'jwks.json');
    const ecJwk = await exportJWK(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    writeFileSync(
      jwksFile,
      JSON.stringify({
        keys: [
          { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
          { ...ecJwk, kid: 'other', alg: 'ES256' },
        ],
      }),
    );
    [node, keyed] = await Promise.all([
      startNode({ env: { JWT_SECRET: SECRET, TOKEN_REFRESH_GRACE_MS: '200', CHANNEL_RULES: RULES } }),
      startNode({ env: { JWT_PUBLIC_KEY_FILE: pemFile, JWT_JWKS_FILE: jwksFile, CHANNEL_RULES: RULES } }),
    ]);
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await node?.stop();
    await keyed?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a valid HS256 token connects; its channel claim allows and forbids subscriptions', async () => {
    const c = await open(node, await hs256({ sub: 'alice', channels: ['room:1', 'user:alice:*'], exp: now() + 60 }));
    assert.deepEqual(await call(c, 'subscribe', 'room:1'), { ok: true, recovered: false, replayed: 0 });
    assert.equal((await call(c, 'subscribe', 'user:alice:inbox')).ok, true);
    const no = await call(c, 'subscribe', 'room:2');
    assert.equal(no.ok, false);
    assert.equal(no.error.code, 'forbidden');
    assert.equal((await call(c, 'subscribe', 'user:bob:inbox')).error.code, 'forbidden');
  });

  test('the publish claim allows and forbids client publications', async () => {
    const pub = await open(node, await hs256({ sub: 'carol', channels: ['news'], publish: ['news'] }));
    const sub = await open(node, await hs256({ sub: 'dave', channels: ['news', 'other'] }));
    const got = collect(sub);
    await call(sub, 'subscribe', 'news');
    const ok = await call(pub, 'publish', 'news', 'headline', { t: 1 });
    assert.equal(ok.ok, true);
    await waitFor(() => got.length === 1, { what: 'the publication' });
    assert.deepEqual(got[0]!.data, { t: 1 });
    assert.equal((await call(pub, 'publish', 'other', 'x', 1)).error.code, 'forbidden');
    assert.equal((await call(sub, 'publish', 'news', 'x', 1)).error.code, 'forbidden', 'no publish claim: no publishing');
  });

  test('expired, wrongly signed, malformed and missing tokens are refused with unauthorized', async () => {
    const expired = await refused(node.url, { auth: { token: await hs256({ sub: 'alice', exp: now() - 10 }) } });
    assert.deepEqual(expired, { code: 'unauthorized', message: 'token expired' });
    const wrong = await refused(node.url, { auth: { token: await hs256({ sub: 'alice' }, 'not-the-secret') } });
    assert.equal(wrong.code, 'unauthorized');
    assert.match(wrong.message, /signature/);
    const garbage = await refused(node.url, { auth: { token: 'not.a.jwt' } });
    assert.equal(garbage.code, 'unauthorized');
    const missing = await refused(node.url, {});
    assert.deepEqual(missing, { code: 'unauthorized', message: 'a token is required' });
    const noSub = await refused(node.url, { auth: { token: await hs256({ channels: ['x'] }) } });
    assert.equal(noSub.code, 'unauthorized');
    assert.match(noSub.message, /sub/);
    // An RS256 token is not accepted by a node that only knows an HS256 secret.
    const rs = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey);
    assert.match((await refused(node.url, { auth: { token: rs } })).message, /algorithm RS256 is not accepted/);
    assert.ok((await metricValue(node.internalUrl, 'switchboard_handshakes_total', { outcome: 'unauthorized' })) >= 6);
  });

  test('a token in the `token` query parameter works too (clients that cannot set auth)', async () => {
    const c = await connect(node.url, { query: { token: await hs256({ sub: 'q', channels: ['q'] }) } });
    clients.push(c);
    assert.equal((await call(c, 'subscribe', 'q')).ok, true);
  });

  test('a token expiring during the connection: switchboard:closing {reason: token_expired}, then disconnected', async () => {
    const c = await open(node, await hs256({ sub: 'erin', channels: ['e'], exp: now() + 2 }));
    const closing: unknown[] = [];
    c.on('switchboard:closing', (m: unknown) => closing.push(m));
    const reason = await new Promise<string>((resolve) => c.on('disconnect', resolve));
    assert.deepEqual(closing, [{ reason: 'token_expired' }]);
    assert.equal(reason, 'io server disconnect');
    await waitFor(async () => (await metricValue(node.internalUrl, 'switchboard_disconnects_total', { reason: 'token_expired' })) >= 1, {
      what: 'the disconnect metric',
    });
  });

  test('auth:refresh in time keeps the connection; a token for another user or an invalid one is refused', async () => {
    const exp = now() + 2;
    const c = await open(node, await hs256({ sub: 'frank', channels: ['f1'], exp }));
    let closed = false;
    c.on('switchboard:closing', () => (closed = true));
    const other = await call(c, 'auth:refresh', await hs256({ sub: 'mallory', exp: now() + 60 }));
    assert.equal(other.error.code, 'forbidden');
    const bad = await call(c, 'auth:refresh', await hs256({ sub: 'frank' }, 'wrong'));
    assert.equal(bad.error.code, 'unauthorized');
    // The refreshed token's claims replace the old ones (here: a new channel).
    assert.deepEqual(await call(c, 'auth:refresh', await hs256({ sub: 'frank', channels: ['f2'], exp: now() + 60 })), { ok: true });
    // Fence: a token expiring a second after frank's first one; once its connection is closed, frank's old
    // expiry has passed too.
    const fence = await open(node, await hs256({ sub: 'gina', exp: exp + 1 }));
    let fenceClosed = false;
    fence.on('disconnect', () => (fenceClosed = true));
    await waitFor(() => fenceClosed, { what: 'the fence connection closed at its expiry' });
    assert.equal(closed, false);
    assert.equal(c.connected, true);
    assert.equal((await call(c, 'subscribe', 'f2')).ok, true);
    assert.equal((await call(c, 'subscribe', 'f1')).error.code, 'forbidden');
  });

  test('RS256 tokens verify with JWT_PUBLIC_KEY_FILE and ES256 tokens with JWT_JWKS_FILE', async () => {
    const rs = await new SignJWT({ sub: 'rsa-user', channels: ['r'] })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime('1m')
      .sign(rsa.privateKey);
    const c1 = await open(keyed, rs);
    assert.equal((await call(c1, 'subscribe', 'r')).ok, true);
    const es = await new SignJWT({ sub: 'ec-user', channels: ['e'] })
      .setProtectedHeader({ alg: 'ES256', kid: 'ec-1' })
      .setExpirationTime('1m')
      .sign(ec.privateKey);
    const c2 = await open(keyed, es);
    assert.equal((await call(c2, 'subscribe', 'e')).ok, true);
    const forged = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'ES256', kid: 'ec-1' })
      .sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    assert.equal((await refused(keyed.url, { auth: { token: forged } })).code, 'unauthorized');
    assert.equal((await refused(keyed.url, { auth: { token: await hs256({ sub: 'x' }) } })).code, 'unauthorized');
  });
});
