// The publish script on a real Redis: what each publication leaves behind and what subscribers are told. Ids
// only ever increase on a channel, also while nodes disagree about its history (a rolling deploy that changes
// HISTORY_SIZE); a channel without history keeps no stream; and the keys outlive their last publication by at
// least their TTL, though the script refreshes the TTLs only now and then.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { PUBLISH_LUA } from '../../src/bus/redis-bus.js';
import { CommandDeadlines, Script } from '../../src/bus/script-command.js';

type Publish = (...args: string[]) => Promise<[string, number]>;

const keys = (ch: string) => [`t:{${ch}}:h`, `t:{${ch}}:m`, `t:{${ch}}:h`, `t:{${ch}}:c`];

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? Number(as - bs) : Number(am - bm);
}

describe('the publish script', () => {
  let redis: TestRedis;
  let r: Redis;
  let sub: Redis;
  let publish: Publish;

  before(async () => {
    redis = await startRedis();
    r = new Redis(redis.url);
    sub = new Redis(redis.url);
    r.defineCommand('sbPublish', { numberOfKeys: 4, lua: PUBLISH_LUA });
    publish = (...args) => (r as unknown as { sbPublish: Publish }).sbPublish(...args);
  });
  after(async () => {
    r.disconnect();
    sub.disconnect();
    await redis.stop();
  });

  const send = (ch: string, payload: string, history: number, streamTtlMs = 60_000, metaTtlMs = 86_400_000) =>
    publish(...keys(ch), payload, String(history), String(streamTtlMs), '', String(metaTtlMs));

  test('a channel without history keeps only its position (no stream); subscribers get seq, epoch and id', async () => {
    const got: string[] = [];
    sub.on('smessage', (_c: string, m: string) => got.push(m));
    await sub.ssubscribe('t:{a}:c');
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await send('a', `p${i}`, 0))[0]);
    assert.equal(await r.exists('t:{a}:h'), 0, 'no stream for a channel without history');
    const meta = await r.hgetall('t:{a}:m');
    assert.equal(meta.s, '50');
    assert.equal(meta.i, ids[49]);
    for (let i = 1; i < ids.length; i++) assert.ok(compareIds(ids[i]!, ids[i - 1]!) > 0, `${ids[i]} after ${ids[i - 1]}`);
    await new Promise<void>((resolve) => (got.length >= 50 ? resolve() : sub.on('smessage', () => got.length >= 50 && resolve())));
    got.forEach((m, i) => {
      const [seq, epoch, id, payload] = m.split(' ');
      assert.equal(seq, String(i + 1));
      assert.equal(epoch, meta.e);
      assert.equal(id, ids[i]);
      assert.equal(payload, `p${i}`);
    });
  });

  test('ids keep increasing while publications alternate between nodes with and without history', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push((await send('b', `p${i}`, i % 3 === 0 ? 0 : 10))[0]);
    for (let i = 1; i < ids.length; i++) assert.ok(compareIds(ids[i]!, ids[i - 1]!) > 0, `${ids[i]} after ${ids[i - 1]}`);
    const stream = await r.xrange('t:{b}:h', '-', '+');
    assert.ok(stream.length > 0 && stream.length <= 300);
    assert.equal(stream.at(-1)![0], ids.filter((_, i) => i % 3 !== 0).at(-1), 'the stream holds the ids subscribers were told');
    assert.equal((await r.hget('t:{b}:m', 's')) ?? '', '300');
  });

  test('an id above the stream survives a lost position hash: the stream picks it and a new epoch starts', async () => {
    const [first] = await send('c', 'x', 10);
    const epoch1 = await r.hget('t:{c}:m', 'e');
    await r.del('t:{c}:m');
    // Make the stream's top id lie in the future, as after a clock step back.
    await r.xadd('t:{c}:h', `${Date.now() + 60_000}-5`, 'p', 'future');
    const [id] = await send('c', 'y', 10);
    assert.ok(compareIds(id, first) > 0);
    assert.ok(compareIds(id, `${Date.now() + 60_000 - 1000}-0`) > 0, `${id} is above the stream's top`);
    const meta = await r.hgetall('t:{c}:m');
    assert.notEqual(meta.e, epoch1);
    assert.equal(meta.s, '1');
  });

  test('every key outlives each publication by at least its TTL', async () => {
    const streamTtl = 400;
    const metaTtl = 800;
    let refreshes = 0;
    let lastDue = '';
    // Publish until the script has refreshed the TTLs a few times (its `x` moves), checking after each one.
    while (refreshes < 3) {
      await send('d', 'x', 10, streamTtl, metaTtl);
      const [streamLeft, metaLeft, due] = await Promise.all([r.pttl('t:{d}:h'), r.pttl('t:{d}:m'), r.hget('t:{d}:m', 'x')]);
      // A few ms pass between the script and these reads.
      assert.ok(streamLeft >= streamTtl - 25, `stream TTL ${streamLeft} ms left right after a publication`);
      assert.ok(metaLeft >= metaTtl - 25, `position TTL ${metaLeft} ms left right after a publication`);
      assert.ok(streamLeft <= streamTtl * 1.1 + 1 && metaLeft <= metaTtl + streamTtl / 10 + 1);
      if (due !== lastDue) refreshes++;
      lastDue = due ?? '';
    }
  });
});

// How a node sends it (script-command.ts): EVALSHA, EVAL when Redis does not know the script, and a command timeout
// kept by one deadline list instead of a timer per command.
describe('the publish script as a node sends it', () => {
  let redis: TestRedis;
  let r: Redis;
  const deadlines = new CommandDeadlines(50);
  const script = new Script(PUBLISH_LUA, deadlines);
  const args = (ch: string, payload: string) => [4, ...keys(ch), payload, 10, 60_000, '', 86_400_000];

  before(async () => {
    redis = await startRedis();
    r = new Redis(redis.url, { commandTimeout: 300, maxRetriesPerRequest: 0 });
  });
  after(async () => {
    deadlines.close();
    r.disconnect();
    await redis.stop();
  });

  test('runs on a Redis that has never seen it, and again after its script cache is flushed', async () => {
    assert.deepEqual(await r.script('EXISTS', script.sha), [0]);
    const [id1, dup1] = (await script.run(r, args('e', 'one'))) as [string, number];
    assert.match(id1, /^\d+-\d+$/);
    assert.equal(dup1, 0);
    assert.deepEqual(await r.script('EXISTS', script.sha), [1], 'EVAL loaded it');
    await r.script('FLUSH');
    const [id2] = (await script.run(r, args('e', 'two'))) as [string, number];
    assert.ok(compareIds(id2, id1) > 0);
    const rows = await r.xrange('t:{e}:h', '-', '+');
    assert.deepEqual(
      rows.map(([, f]) => f[1]),
      ['one', 'two'],
    );
  });

  test('a Redis that does not answer: the command fails with ioredis’s timeout, and the next one works once it is back', async () => {
    await script.run(r, args('f', 'warm'));
    redis.signal('SIGSTOP');
    try {
      // Its timeout goes on the deadline list (ioredis arms no timer of its own for it). Commands Redis refused
      // earlier (NOSCRIPT above) count there until their own deadline passes, hence the difference.
      const before = deadlines.pending;
      const lost = script.run(r, args('f', 'lost?'));
      assert.equal(deadlines.pending, before + 1);
      await assert.rejects(lost, /Command timed out/);
    } finally {
      redis.signal('SIGCONT');
    }
    const [id] = (await script.run(r, args('f', 'after'))) as [string, number];
    assert.match(id, /^\d+-\d+$/);
    assert.equal(deadlines.pending, 0);
  });
});
