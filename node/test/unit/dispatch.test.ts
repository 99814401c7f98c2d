// Protocol dispatch on a fake socket: ack shapes and error codes, and that app errors never escape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dispatch, isRpcMethod, type ProtocolDeps } from '../../src/protocol/handlers.js';
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
    checkRate: () => {},
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
  const limited = deps({
    checkRate: () => {
      throw new SbError('rate_limited', 'slow down');
    },
  });
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

test('rpc with a synchronous rate check: a method that answers at once is acked in the same tick; promises, throws and rejections as before', async () => {
  let release: (v: unknown) => void = () => {};
  const d = deps({
    checkRate: () => {},
    app: {
      rpc: {
        now: (p) => ({ got: p }),
        later: async (p) => ({ got: p }),
        nothing: () => undefined,
        boom: () => {
          throw new Error('x');
        },
        rejects: async () => {
          throw new Error('y');
        },
        denied: async () => {
          throw new SbError('forbidden', 'no');
        },
        held: () => new Promise((r) => (release = r)),
      },
    },
  });
  let acked: unknown;
  dispatch(fakeSocket(), 'rpc', ['now', { a: 1 }, (r: unknown) => (acked = r)], d);
  assert.deepEqual(acked, { ok: true, result: { got: { a: 1 } } }, 'acked before dispatch returned');
  assert.deepEqual(await run('rpc', ['later', 2], d), { ok: true, result: { got: 2 } });
  assert.deepEqual(await run('rpc', ['nothing'], d), { ok: true, result: null });
  assert.deepEqual(await run('rpc', ['boom'], d), { ok: false, error: { code: 'internal', message: 'rpc:boom failed' } });
  assert.deepEqual(await run('rpc', ['rejects'], d), { ok: false, error: { code: 'internal', message: 'rpc:rejects failed' } });
  assert.deepEqual(await run('rpc', ['denied'], d), { ok: false, error: { code: 'forbidden', message: 'no' } });
  assert.equal((await run('whatever', [], d)).error.code, 'not_found');

  // In flight until the promise settles: two held calls fill maxRpcInFlight (2) of this connection.
  const socket = fakeSocket();
  const answers: any[] = [];
  const call = (method: string) => dispatch(socket, 'rpc', [method, null, (r: unknown) => answers.push(r)], d);
  call('held');
  const first = release;
  call('held');
  const second = release;
  call('held');
  assert.equal(answers.length, 1);
  assert.equal(answers[0].error.code, 'rate_limited');
  first('one');
  second('two');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(answers.slice(1), [
    { ok: true, result: 'one' },
    { ok: true, result: 'two' },
  ]);
  call('rejects');
  call('rejects');
  await new Promise((r) => setImmediate(r));
  call('now');
  assert.deepEqual(answers.at(-1), { ok: true, result: { got: null } }, 'rejected calls gave their places back');
});

test('an answer that cannot be walked (a getter that throws) is logged, not thrown to Socket.IO', () => {
  const d = deps({
    checkRate: () => {},
    app: {
      rpc: {
        odd: () => ({
          get trap() {
            throw new Error('getter');
          },
        }),
      },
    },
  });
  let acked = false;
  assert.doesNotThrow(() => dispatch(fakeSocket(), 'rpc', ['odd', null, () => (acked = true)], d));
  assert.equal(acked, false);
});

test('rpc method names: the character check accepts exactly what /^[A-Za-z0-9_.:-]{1,100}$/ accepts and not only dots', () => {
  const spec = (m: string) => /^[A-Za-z0-9_.:-]{1,100}$/.test(m) && !/^\.+$/.test(m);
  const alphabet = 'aZ09_.:-/ é\u0000@[`{';
  let seed = 12345;
  const rand = (n: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n;
  const cases = ['', '.', '..', 'a', '.a', 'a.', 'x'.repeat(100), 'x'.repeat(101), '.'.repeat(100), 'echo', 'a:b-c_d.e'];
  for (let i = 0; i < 5000; i++)
    cases.push(Array.from({ length: rand(8) === 0 ? 95 + rand(10) : rand(6) }, () => alphabet[rand(alphabet.length)]).join(''));
  for (const m of cases) assert.equal(isRpcMethod(m), spec(m), JSON.stringify(m));
});
