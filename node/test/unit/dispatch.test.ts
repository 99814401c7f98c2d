// Protocol dispatch on a fake socket: ack shapes and error codes, and that app errors never escape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dispatch, type ProtocolDeps } from '../../src/protocol/handlers.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/log/logger.js';
import { SbError } from '../../src/core/errors.js';

function fakeSocket() {
  return { id: 's1', rooms: new Set(['s1']), connected: true, data: { ctx: { user: 'u', connectionId: 's1', ip: '127.0.0.1' } } } as any;
}

function deps(over: Partial<ProtocolDeps> = {}): ProtocolDeps {
  return {
    options: { maxSubscriptions: 2, maxRpcInFlight: 2 },
    delivery: {} as any,
    publisher: {} as any,
    rules: { for: () => ({ presence: true }) } as any,
    authorizer: {} as any,
    app: {
      rpc: {
        ok: () => 42,
        boom: () => {
          throw new Error('x');
        },
        denied: () => {
          throw new SbError('forbidden', 'no');
        },
      },
    },
    backend: undefined,
    metrics: createMetrics('t'),
    log: createLogger('silent', 't'),
    checkRate: async () => {},
    ...over,
  };
}

function run(event: string, args: unknown[], d = deps()) {
  return new Promise<any>((resolve) => dispatch(fakeSocket(), event, [...args, resolve], d));
}

test('rpc: result, internal for a throwing handler, app SbErrors pass through, not_found, bad_request', async () => {
  assert.deepEqual(await run('rpc', ['ok', {}]), { ok: true, result: 42 });
  assert.deepEqual(await run('rpc', ['boom', {}]), { ok: false, error: { code: 'internal', message: 'rpc:boom failed' } });
  assert.deepEqual(await run('rpc', ['denied', {}]), { ok: false, error: { code: 'forbidden', message: 'no' } });
  assert.equal((await run('rpc', ['missing', {}])).error.code, 'not_found');
  assert.equal((await run('rpc', [{}, {}])).error.code, 'bad_request');
});

test('unknown events answer not_found; rate limiting answers rate_limited', async () => {
  assert.equal((await run('whatever', [1, 2])).error.code, 'not_found');
  const limited = deps({ checkRate: async () => Promise.reject(new SbError('rate_limited', 'slow down')) });
  assert.deepEqual(await run('rpc', ['ok', {}], limited), { ok: false, error: { code: 'rate_limited', message: 'slow down' } });
});

test('an event without an ack still does its work; its failure comes back as switchboard:error', async () => {
  const d = deps();
  const emitted: unknown[][] = [];
  const socket = { ...fakeSocket(), emit: (...a: unknown[]) => emitted.push(a) };
  assert.doesNotThrow(() => dispatch(socket, 'subscribe', ['bad name'], d));
  assert.doesNotThrow(() => dispatch(socket, 'rpc', ['ok', {}], d));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(emitted, [
    [
      'switchboard:error',
      {
        event: 'subscribe',
        error: { code: 'invalid_channel', message: 'a channel name is 1-200 characters of A-Z a-z 0-9 _ : . - @ / = ,' },
      },
    ],
  ]);
  const text = await d.metrics.registry.metrics();
  assert.match(text, /switchboard_client_events_total\{event="subscribe",outcome="no_ack",node="t"\} 1/);
  assert.match(text, /switchboard_client_events_total\{event="rpc",outcome="no_ack",node="t"\} 1/);
});

test('the rate check comes first, for events with and without an ack', async () => {
  let checked = 0;
  const emitted: unknown[][] = [];
  const d = deps({
    checkRate: () => {
      checked++;
      throw new SbError('rate_limited', 'slow down');
    },
  });
  const socket = { ...fakeSocket(), emit: (...a: unknown[]) => emitted.push(a) };
  dispatch(socket, 'rpc', ['ok', {}], d);
  assert.deepEqual(await run('rpc', ['ok', {}], d), { ok: false, error: { code: 'rate_limited', message: 'slow down' } });
  assert.equal(checked, 2);
  assert.deepEqual(emitted, [['switchboard:error', { event: 'rpc', error: { code: 'rate_limited', message: 'slow down' } }]]);
});

test('subscribe validates before doing anything', async () => {
  assert.equal((await run('subscribe', ['bad name'])).error.code, 'invalid_channel');
  assert.equal((await run('subscribe', ['ok', { since: 5 }])).error.code, 'bad_request');
  assert.equal((await run('subscribe', ['ok', { unknown: true }])).error.code, 'bad_request');
});
