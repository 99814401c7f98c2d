// The webhook building blocks without a network: circuit breaker, retry queue, signatures, Origin check, tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { CircuitBreaker, type CircuitState } from '../../src/hooks/circuit-breaker.js';
import { RetryQueue } from '../../src/hooks/retry-queue.js';
import { sign, verify } from '../../src/hooks/signature.js';
import { createOriginCheck } from '../../src/limits/origin.js';
import { createTokenVerifier } from '../../src/auth/tokens.js';
import { SbError } from '../../src/core/errors.js';
import { waitFor } from '../helpers/ports.js';

test('circuit breaker: opens after N consecutive failures, fails fast, lets one probe through after the cool-down', () => {
  let now = 0;
  const changes: CircuitState[] = [];
  const cb = new CircuitBreaker(
    { failureThreshold: 3, cooldownMs: 1000 },
    (s) => changes.push(s),
    () => now,
  );
  // A success in between resets the count: failures must be consecutive.
  cb.failure(cb.tryAcquire()!);
  cb.failure(cb.tryAcquire()!);
  cb.success(cb.tryAcquire()!);
  cb.failure(cb.tryAcquire()!);
  cb.failure(cb.tryAcquire()!);
  assert.equal(cb.state, 'closed');
  const inFlight = cb.tryAcquire()!;
  cb.failure(cb.tryAcquire()!);
  assert.equal(cb.state, 'open');
  assert.equal(cb.tryAcquire(), undefined);
  assert.equal(cb.retryInMs(), 1000);
  // A late answer to a call made before the circuit opened changes nothing.
  cb.success(inFlight);
  assert.equal(cb.state, 'open');

  now = 1000;
  const probe = cb.tryAcquire();
  assert.deepEqual(probe, { probe: true });
  assert.equal(cb.state, 'half_open');
  assert.equal(cb.tryAcquire(), undefined, 'one probe at a time');
  cb.failure(probe!);
  assert.equal(cb.state, 'open', 'a failed probe opens the circuit again');
  assert.equal(cb.tryAcquire(), undefined);

  now = 2500;
  const probe2 = cb.tryAcquire()!;
  cb.success(probe2);
  assert.equal(cb.state, 'closed');
  assert.deepEqual(cb.tryAcquire(), { probe: false });
  assert.deepEqual(changes, ['open', 'half_open', 'open', 'half_open', 'closed']);
});

test('retry queue: retries failures with backoff, drops after the retries and when full', async () => {
  const attempts = new Map<string, number>();
  const dropped: string[] = [];
  const q = new RetryQueue<string>(
    { capacity: 3, parallel: 1, retries: 2, backoffMs: 10 },
    async (job) => {
      const n = (attempts.get(job) ?? 0) + 1;
      attempts.set(job, n);
      if (job === 'flaky' && n < 3) throw new Error('503');
      if (job === 'dead') throw new Error('down');
    },
    { dropped: (job, why) => dropped.push(`${job}:${why}`) },
  );
  q.push('flaky'); // running at once: not waiting
  q.push('dead');
  q.push('ok');
  q.push('ok-2');
  q.push('overflow-1'); // a fourth waiting job: over capacity
  assert.deepEqual(dropped, ['overflow-1:queue_full']);
  await waitFor(() => q.size === 0, { what: 'the queue to drain', timeout: 2000 });
  assert.equal(attempts.get('flaky'), 3);
  assert.equal(attempts.get('dead'), 3, 'one attempt and two retries');
  assert.equal(attempts.get('ok'), 1);
  assert.equal(attempts.get('ok-2'), 1);
  assert.equal(attempts.get('overflow-1'), undefined);
  assert.deepEqual(dropped, ['overflow-1:queue_full', 'dead:retries_exhausted']);
  q.close();
  // A job runs from push() itself when a slot is free (as 'flaky' did above): nothing ran, nothing waits.
  q.push('after-close');
  assert.equal(attempts.get('after-close'), undefined);
  assert.equal(q.size, 0);
});

test('signatures are t=<unix s>,v1=<hex HMAC of "t.METHOD.path.body">, checked in constant time within the tolerance', () => {
  const body = '{"user":"alice","reason":"transport close"}';
  const r = { method: 'POST', path: '/hooks/disconnect', body };
  const t = 1_800_000_000;
  const want = `t=${t},v1=${createHmac('sha256', 's3cret').update(`${t}.POST./hooks/disconnect.${body}`).digest('hex')}`;
  assert.equal(sign('s3cret', r, t), want);
  assert.ok(verify('s3cret', r, want, { nowS: t }));
  assert.ok(verify('s3cret', r, want, { nowS: t + 300 }), 'inside the 300 s tolerance');
  assert.ok(!verify('s3cret', r, want, { nowS: t + 301 }), 'a replay after the tolerance');
  assert.ok(!verify('s3cret', r, want, { nowS: t - 301 }), 'a timestamp from the future');
  assert.ok(!verify('s3cret', { ...r, path: '/hooks/subscribe' }, want, { nowS: t }), 'another path');
  assert.ok(!verify('s3cret', { ...r, method: 'PUT' }, want, { nowS: t }), 'another method');
  assert.ok(!verify('s3cret', { ...r, body: `${body} ` }, want, { nowS: t }));
  assert.ok(!verify('other', r, want, { nowS: t }));
  assert.ok(!verify('s3cret', r, undefined, { nowS: t }));
  assert.ok(!verify('s3cret', r, `t=${t + 1},${want.split(',')[1]}`, { nowS: t }), 'a changed timestamp');
  assert.ok(!verify('s3cret', r, `t=${t},t=${t},${want.split(',')[1]}`, { nowS: t }), 'two timestamps');
  assert.ok(!verify('s3cret', r, `t=${t},v1=00`, { nowS: t }));
});

test('a circuit breaker is clean (safe to forget) only while closed with no failure counted', () => {
  const cb = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 1000 });
  assert.ok(cb.isClean());
  cb.failure(cb.tryAcquire()!);
  assert.equal(cb.state, 'open');
  assert.ok(!cb.isClean());
});

test('Origin check: unset allows only the own origin; a list adds listed origins; requests without Origin pass', () => {
  const o = (origin?: string) => (origin === undefined ? { host: 'rt.example' } : { origin, host: 'rt.example' });
  assert.ok(!createOriginCheck(undefined)(o('http://anything.example'), '10.0.0.1'), 'secure by default');
  const check = createOriginCheck(['https://app.example', 'http://localhost:3000/']);
  assert.ok(check(o('https://app.example'), '10.0.0.1'));
  assert.ok(check(o('HTTPS://APP.EXAMPLE'), '10.0.0.1'));
  assert.ok(check(o('http://localhost:3000'), '10.0.0.1'), 'a trailing slash in the list is ignored');
  assert.ok(check(o(undefined), '10.0.0.1'));
  assert.ok(!check(o('https://app.example.evil.example'), '10.0.0.1'));
  assert.ok(!check(o('http://app.example'), '10.0.0.1'));
  assert.ok(!check(o('null'), '10.0.0.1'));
});

test('token verifier: claims, expiry, algorithm mismatch and bad claims give clear unauthorized errors', async () => {
  const v = (await createTokenVerifier({ secret: 'k' }))!;
  const key = new TextEncoder().encode('k');
  const tok = (claims: Record<string, unknown>, k = key) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(k);
  assert.deepEqual(await v.verify(await tok({ sub: 'a', channels: ['c:*'], publish: ['c:1'], data: { x: 1 }, exp: 2_000_000_000 })), {
    user: 'a',
    channels: ['c:*'],
    publish: ['c:1'],
    data: { x: 1 },
    exp: 2_000_000_000,
  });
  const fails = async (token: unknown, message: RegExp) => {
    await assert.rejects(v.verify(token), (e: unknown) => e instanceof SbError && e.code === 'unauthorized' && message.test(e.message));
  };
  await fails(await tok({ sub: 'a', exp: 1 }), /^token expired$/);
  await fails(await tok({ sub: 'a' }, new TextEncoder().encode('other')), /signature verification failed/);
  await fails(await tok({ sub: 'a', channels: 'c' }), /invalid token claims: channels/);
  await fails(await tok({ sub: 'a', nbf: 2_000_000_000 }), /invalid token: /);
  await fails(undefined, /^a token is required$/);
  await fails('abc', /not a JWT/);
  await fails(await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'HS512' }).sign(key), /algorithm HS512 is not accepted/);
  assert.equal(await createTokenVerifier({}), undefined, 'no keys: no tokens required');
});
