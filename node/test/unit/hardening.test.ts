// Hardening checks without a network: claim patterns, RPC names, secret strength, token audience/issuer,
// the same-origin policy, and SSE event-name safety.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { matchesPattern } from '../../src/channels/patterns.js';
import { assertEventName } from '../../src/channels/names.js';
import { loadConfig } from '../../src/config/load.js';
import { createTokenVerifier } from '../../src/auth/tokens.js';
import { createOriginCheck } from '../../src/limits/origin.js';
import { plainPublishBody, publishBody } from '../../src/api/http-api.js';
import { Rng, seedFrom } from '../helpers/rng.js';

test('`*` in a claim matches exactly one `:` segment', () => {
  assert.equal(matchesPattern('user:*', 'user:alice'), true);
  assert.equal(matchesPattern('user:*', 'user:alice:inbox'), false, 'never across `:`');
  assert.equal(matchesPattern('user:alice:*', 'user:alice:inbox'), true);
  assert.equal(matchesPattern('user:alice*', 'user:alicebob'), false, 'a `*` inside a segment is no wildcard');
  assert.equal(matchesPattern('*:lobby', 'demo:lobby'), true);
  assert.equal(matchesPattern('*', 'a:b'), false);
  assert.equal(matchesPattern('room.1', 'roomx1'), false, 'other characters are literal');
});

test('event names: a documented character set, no control characters or line breaks', () => {
  for (const ok of ['chat', 'order.created', 'a b', 'ünïcödé', 'x:y/z=1,2@3']) assert.equal(assertEventName(ok), ok);
  for (const bad of ['a\nb', 'a\rb', 'a\u0000', 'tab\there', '\u0085', 'a\u2028b', 'del\u007f', ''])
    assert.throws(() => assertEventName(bad), /event/, JSON.stringify(bad));
});

test('weak secrets and API keys are a configuration error at start', () => {
  assert.throws(() => loadConfig({ JWT_SECRET: 'x' }), /JWT_SECRET.*32/);
  assert.throws(() => loadConfig({ API_KEYS: 'good-key-0123456789,short' }), /API_KEYS.*16/);
  assert.throws(() => loadConfig({ BACKEND_URL: 'http://b', WEBHOOK_SECRET: 'tiny' }), /WEBHOOK_SECRET.*32/);
  const c = loadConfig({ JWT_SECRET: 'j'.repeat(32), API_KEYS: 'k'.repeat(16), BACKEND_URL: 'http://b', WEBHOOK_SECRET: 'w'.repeat(32) });
  assert.equal(c.jwtSecret, 'j'.repeat(32));
});

test('JWT_AUDIENCE and JWT_ISSUER bind tokens when set', async () => {
  const secret = 's'.repeat(32);
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
  const keys: Record<string, unknown> = { secret, audience: 'switchboard', issuer: 'https://app.example' };
  const v = (await createTokenVerifier(keys as never))!;
  await assert.rejects(v.verify(await sign({ sub: 'a' })), /aud|iss/);
  await assert.rejects(v.verify(await sign({ sub: 'a', aud: 'other', iss: 'https://app.example' })), /aud/);
  await assert.rejects(v.verify(await sign({ sub: 'a', aud: 'switchboard', iss: 'https://evil.example' })), /iss/);
  assert.equal((await v.verify(await sign({ sub: 'a', aud: 'switchboard', iss: 'https://app.example' }))).user, 'a');
  const cfg = loadConfig({ JWT_SECRET: secret, JWT_AUDIENCE: 'switchboard', JWT_ISSUER: 'https://app.example' }) as unknown as Record<
    string,
    unknown
  >;
  assert.equal(cfg.jwtAudience, 'switchboard');
  assert.equal(cfg.jwtIssuer, 'https://app.example');
});

test('origin policy: unset allows only the request’s own origin (through trusted proxies); `*` allows any', () => {
  const h = (origin: string | undefined, host: string, extra: Record<string, string> = {}) => ({
    ...(origin ? { origin } : {}),
    host,
    ...extra,
  });
  const check = (createOriginCheck as (...a: unknown[]) => unknown)(undefined, ['127.0.0.1']) as unknown as (
    headers: Record<string, string>,
    peer: string,
  ) => boolean;
  assert.equal(check(h(undefined, 'rt.example'), '10.0.0.9'), true, 'no Origin: not a browser');
  assert.equal(check(h('http://rt.example', 'rt.example'), '10.0.0.9'), true, 'own origin');
  assert.equal(check(h('http://RT.example:80', 'rt.example'), '10.0.0.9'), true, 'default port and case');
  assert.equal(check(h('http://evil.example', 'rt.example'), '10.0.0.9'), false, 'foreign origin refused by default');
  assert.equal(check(h('null', 'rt.example'), '10.0.0.9'), false);
  assert.equal(check(h('https://rt.example', 'rt.example'), '10.0.0.9'), false, 'scheme counts');
  assert.equal(
    check(h('https://rt.example', 'node-1:3000', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'rt.example' }), '127.0.0.1'),
    true,
    'through HAProxy',
  );
  assert.equal(
    check(h('https://rt.example', 'rt.example', { 'x-forwarded-proto': 'https' }), '10.0.0.9'),
    false,
    'forwarded headers only from trusted proxies',
  );
  const any = (createOriginCheck as (...a: unknown[]) => unknown)(['*'], []) as unknown as (
    headers: Record<string, string>,
    peer: string,
  ) => boolean;
  assert.equal(any(h('http://evil.example', 'rt.example'), '10.0.0.9'), true);
  const listed = (createOriginCheck as (...a: unknown[]) => unknown)(['https://app.example'], []) as unknown as (
    headers: Record<string, string>,
    peer: string,
  ) => boolean;
  assert.equal(listed(h('https://app.example', 'rt.example'), '10.0.0.9'), true);
  assert.equal(listed(h('http://rt.example', 'rt.example'), '10.0.0.9'), true, 'own origin is always allowed');
  assert.equal(listed(h('https://evil.example', 'rt.example'), '10.0.0.9'), false);
  assert.throws(() => loadConfig({ ALLOWED_ORIGINS: 'app.example' }), /ALLOWED_ORIGINS/);
});

test('RPC method names are validated like channel names: `.` and `..` never reach the backend', async () => {
  const { dispatch } = await import('../../src/protocol/handlers.js');
  const { createMetrics } = await import('../../src/metrics/metrics.js');
  const { createLogger } = await import('../../src/log/logger.js');
  const called: string[] = [];
  const d = {
    options: { maxSubscriptions: 2, maxRpcInFlight: 8 },
    app: {},
    backend: { rpc: async (_ctx: unknown, method: string) => (called.push(method), 'x') },
    metrics: createMetrics('t'),
    log: createLogger('silent', 't'),
    checkRate: () => {},
  } as any;
  const socket = {
    id: 's1',
    rooms: new Set(['s1']),
    connected: true,
    data: { ctx: { user: 'u', connectionId: 's1', ip: '127.0.0.1' } },
    emit() {},
  } as any;
  const run = (args: unknown[]) => new Promise<any>((resolve) => dispatch(socket, 'rpc', [...args, resolve], d));
  for (const bad of ['.', '..', '...', 'a/b', '']) assert.equal((await run([bad, {}])).error?.code, 'bad_request', JSON.stringify(bad));
  assert.deepEqual(called, []);
  assert.deepEqual(await run(['orders.list', {}]), { ok: true, result: 'x' });
  assert.deepEqual(called, ['orders.list']);
});

test('a refusal that looks like a TLS proxy missing from TRUSTED_PROXIES says what to set, once', async () => {
  const { OriginPolicy } = await import('../../src/limits/origin.js');
  const said: string[] = [];
  const p = new OriginPolicy({ trustedProxies: [], warn: (m) => said.push(m) });
  const h = { origin: 'https://rt.example', host: 'rt.example', 'x-forwarded-proto': 'https' };
  assert.equal(p.allows(h, '10.0.0.1'), false);
  assert.equal(p.allows(h, '10.0.0.1'), false);
  assert.equal(said.length, 1);
  assert.match(said[0]!, /TRUSTED_PROXIES/);
  assert.equal(p.allows({ origin: 'https://evil.example', host: 'rt.example' }, '10.0.0.1'), false);
  assert.equal(said.length, 1, 'a foreign host is no hint');
});

test('the publish body’s fast check accepts only what its zod schema accepts, and the usual body', () => {
  const seed = seedFrom('BODY_SEED');
  const rng = new Rng(seed);
  const values: unknown[] = ['ch:a', '', 1, 0, true, false, null, [], ['ch:a'], ['ch:a', 'ch:b'], [1], {}, { a: 1 }, undefined];
  const keys = ['channel', 'channels', 'event', 'data', 'volatile', 'extra', '__proto__', 'constructor'];
  let fast = 0;
  for (let i = 0; i < 5000; i++) {
    // No prototype: `__proto__` is then an own key, as JSON.parse makes it.
    const body = Object.create(null) as Record<string, unknown>;
    for (const k of keys)
      if (rng.chance(k === 'extra' || k === '__proto__' || k === 'constructor' ? 0.05 : 0.6)) body[k] = rng.pick(values);
    // As a client sends it: through JSON (no undefined values; "__proto__" an own key).
    const raw = rng.chance(0.1) ? rng.pick(values) : JSON.parse(JSON.stringify(body));
    const plain = plainPublishBody(raw);
    const schema = publishBody.safeParse(raw);
    if (plain === undefined) continue;
    fast++;
    assert.ok(schema.success, `BODY_SEED=${seed}: the fast check accepted ${JSON.stringify(raw)}, the schema refuses it`);
    assert.deepEqual(plain, schema.data, `BODY_SEED=${seed}: ${JSON.stringify(raw)}`);
  }
  assert.ok(fast > 0, 'some generated bodies took the fast path');
  for (const b of [
    { channel: 'ch:a', event: 'e', data: { x: 1 } },
    { channel: 'ch:a', event: 'e' },
    { channel: 'c', event: 'e', volatile: true },
  ])
    assert.deepEqual(plainPublishBody(b), b);
  assert.equal(plainPublishBody(JSON.parse('{"channel":"c","event":"e","__proto__":{"x":1}}')), undefined);
});
