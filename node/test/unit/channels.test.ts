// Channel names, event names, ids, patterns, rules and in-memory history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertChannel, assertEventName, isValidChannel } from '../../src/channels/names.js';
import { compareIds, IdGenerator } from '../../src/core/ids.js';
import { matchesPattern } from '../../src/channels/patterns.js';
import { ChannelRules, DEFAULT_RULES } from '../../src/channels/rules.js';
import { readRules } from '../../src/config/channel-rules.js';
import { MemoryHistory } from '../../src/bus/memory-history.js';
import { SbError } from '../../src/core/errors.js';

test('channel names: 1-200 of A-Z a-z 0-9 _ : . - @ / = ,', () => {
  for (const ok of ['a', 'chat:room-1', 'user@example.com', 'a/b=c,d.e_f', 'x'.repeat(200)]) assert.ok(isValidChannel(ok), ok);
  for (const bad of ['', 'x'.repeat(201), 'has space', 'émoji', 'a#b', 'a*', null, 42, {}]) assert.ok(!isValidChannel(bad), String(bad));
  assert.throws(
    () => assertChannel('a b'),
    (e: unknown) => e instanceof SbError && e.code === 'invalid_channel',
  );
});

test('event names: reserved Socket.IO names and our system prefix are refused', () => {
  assert.equal(assertEventName('chat'), 'chat');
  for (const bad of [
    'connect',
    'disconnect',
    'connect_error',
    'disconnecting',
    'newListener',
    'removeListener',
    'switchboard:x',
    '',
    'x'.repeat(101),
    5,
  ]) {
    assert.throws(
      () => assertEventName(bad),
      (e: unknown) => e instanceof SbError && e.code === 'bad_request',
      String(bad),
    );
  }
});

test('ids increase even when the clock stands still or steps back', () => {
  const g = new IdGenerator();
  const ids = [g.next(1000), g.next(1000), g.next(999), g.next(1001)];
  assert.deepEqual(ids, ['1000-0', '1000-1', '1000-2', '1001-0']);
  for (let i = 1; i < ids.length; i++) assert.ok(compareIds(ids[i - 1]!, ids[i]!) < 0);
  assert.ok(compareIds('10-0', '9-5') > 0, 'numeric, not lexicographic');
});

test('token channel patterns: a * segment matches one segment, the rest is literal', () => {
  assert.ok(matchesPattern('chat:*', 'chat:room'));
  assert.ok(!matchesPattern('chat:*', 'chatroom'));
  assert.ok(matchesPattern('user.42', 'user.42'));
  assert.ok(!matchesPattern('user.42', 'userX42'), 'dots are literal');
});

test('rules: the longest prefix wins, defaults are safe, bad rules fail clearly', () => {
  const rules = new ChannelRules(DEFAULT_RULES, { historySize: 10, historyTtlMs: 1000 });
  assert.equal(rules.for('orders:1').publish, 'nobody');
  assert.equal(rules.for('demo:lobby').publish, 'anyone');
  // Anyone may publish on demo:, so it keeps a short history (issue 11: memory anyone could fill).
  assert.equal(rules.for('demo:lobby').historySize, 20);
  assert.equal(rules.for('demo:lobby').historyTtlMs, 300_000);
  assert.equal(rules.for('orders:1').historySize, 10);
  const custom = new ChannelRules(readRules('[{"prefix":"a:","publish":"anyone"},{"prefix":"a:b:","publish":"nobody"}]'), {
    historySize: 1,
    historyTtlMs: 1,
  });
  assert.equal(custom.for('a:x').publish, 'anyone');
  assert.equal(custom.for('a:b:x').publish, 'nobody');
  assert.equal(custom.for('zzz').publish, 'nobody', 'no matching rule: nothing allowed');
  assert.throws(() => readRules('[{"prefix":"a:","publish":"everyone"}]'), /^Error: 0\.publish: /);
  assert.throws(() => readRules('not json'), /cannot read the value as JSON/);
});

test('memory history: bounded, replays after an id, says when the id is gone', () => {
  const h = new MemoryHistory(60_000);
  const now = Date.now();
  for (let i = 0; i < 5; i++) h.append({ channel: 'c', event: 'e', data: i, id: `${now}-${i}`, ts: now }, 3, 60_000);
  const all = h.read('c', undefined, 10);
  assert.deepEqual(
    all.entries.map((p) => p.data),
    [2, 3, 4],
  );
  const after2 = h.read('c', `${now}-2`, 10);
  assert.equal(after2.found, true);
  assert.deepEqual(
    after2.entries.map((p) => p.data),
    [3, 4],
  );
  const trimmed = h.read('c', `${now}-0`, 10);
  assert.equal(trimmed.found, false, 'a trimmed id is never reported as recovered');
  h.close();
});

test('memory history: bytes per channel trim the oldest; bytes and channels per node refuse with unavailable, before an id', async () => {
  const { HistoryFull } = await import('../../src/bus/memory-history.js');
  const h = new MemoryHistory(60_000, { maxChannelBytes: 10_000, maxBytes: 25_000, maxChannels: 3 });
  const now = Date.now();
  let n = 0;
  const put = (channel: string, bytes: number) => {
    const p = { channel, event: 'e', data: 'x'.repeat(bytes), id: `${now}-${n++}`, ts: now };
    const cost = h.admit(p, 100);
    h.append(p, 100, 60_000, cost);
  };
  for (let i = 0; i < 5; i++) put('a', 3000);
  assert.equal(h.read('a', undefined, 100).entries.length, 3, 'three 3 KB publications fit in 10 KB; the oldest left');
  assert.ok(h.totalBytes <= 10_000);
  put('b', 9000);
  // a ~9.3 KB + b ~9.1 KB: another 9 KB on a third channel would pass 25 KB.
  assert.throws(
    () => put('c', 9000),
    (e: unknown) => e instanceof HistoryFull && e.code === 'unavailable' && e.reason === 'history_bytes',
  );
  assert.equal(h.read('c', undefined, 10).entries.length, 0);
  // On a channel that trims itself to make room it still fits.
  put('a', 3000);
  put('c', 10);
  assert.throws(
    () => put('d', 10),
    (e: unknown) => e instanceof HistoryFull && e.reason === 'history_channels',
  );
  assert.ok(h.totalBytes <= 25_000);
  h.close();
});

test('client address: X-Forwarded-For is trusted only from configured proxies, addresses or CIDR ranges', async () => {
  const { clientIp, TrustedProxies, isAddressOrCidr } = await import('../../src/core/client-ip.js');
  const t = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
  assert.equal(clientIp('127.0.0.1', '203.0.113.9', t), '203.0.113.9');
  assert.equal(clientIp('10.4.5.6', '198.51.100.1, 10.1.1.1', t), '198.51.100.1', 'walks past proxy hops from the right');
  assert.equal(clientIp('192.0.2.1', '203.0.113.9', t), '192.0.2.1', 'an untrusted peer cannot claim an address');
  assert.equal(clientIp('::ffff:127.0.0.1', '203.0.113.9', t), '203.0.113.9');
  assert.equal(clientIp('fd00::5', '2001:db8::1', t), '2001:db8::1');
  assert.equal(clientIp('127.0.0.1', undefined, new TrustedProxies([])), '127.0.0.1');
  for (const ok of ['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8']) assert.ok(isAddressOrCidr(ok), ok);
  for (const bad of ['10.0.0.0/33', 'localhost', '10.0.0.0/8/1', '1.2.3']) assert.ok(!isAddressOrCidr(bad), bad);
});
