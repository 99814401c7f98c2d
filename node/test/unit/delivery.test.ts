// Core delivery in process: the memory bus, a fake sink, and a bus wrapper that loses publications on purpose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Bus, Publication, ResyncKind } from '../../src/bus/bus.js';
import { MemoryBus } from '../../src/bus/memory-bus.js';
import { Delivery, type DeliverySink } from '../../src/channels/delivery.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';

const HISTORY = { size: 100, ttlMs: 60_000 };
const rules = { for: () => ({ historyTtlMs: 60_000 }) } as any;

/** A sink with members per channel, recording what each member got. */
class FakeSink implements DeliverySink {
  readonly members = new Map<string, Map<string, unknown[]>>();
  constructor(private readonly delivery: Delivery) {
    delivery.addSink(this);
  }
  add(channel: string, member: string) {
    let m = this.members.get(channel);
    if (!m) this.members.set(channel, (m = new Map()));
    m.set(member, []);
  }
  remove(channel: string, member: string) {
    const m = this.members.get(channel);
    m?.delete(member);
    if (m?.size === 0) {
      this.members.delete(channel);
      this.delivery.untrack(channel);
    }
  }
  got(channel: string, member: string): unknown[] {
    return this.members.get(channel)?.get(member) ?? [];
  }
  deliver(p: Publication) {
    const m = this.members.get(p.channel);
    if (!m) return 0;
    for (const list of m.values()) list.push(p.data);
    return m.size;
  }
  has(channel: string) {
    return this.members.has(channel);
  }
  notice(channel: string, data: { channel: string; recovered: false }) {
    for (const list of this.members.get(channel)?.values() ?? []) list.push(data);
  }
}

/** The memory bus, with the faults the Redis bus reports: lost publications, gaps and resets, history reads seen. */
class FaultyBus {
  readonly inner = new MemoryBus(60_000);
  readonly reads: string[] = [];
  readonly subscribed = new Set<string>();
  private drop = new Set<string>();
  private resync: ((channel: string, kind: ResyncKind) => void)[] = [];
  /** Runs inside the next history read, after the read and before it returns (a publication in flight). */
  duringRead: (() => Promise<void>) | undefined;
  readonly bus: Bus;
  constructor() {
    const inner = this.inner;
    this.bus = Object.assign(Object.create(inner) as Bus, {
      onPublication: (fn: (p: Publication) => void) => inner.onPublication((p) => (this.drop.delete(p.channel) ? undefined : fn(p))),
      onResync: (fn: (channel: string, kind: ResyncKind) => void) => this.resync.push(fn),
      subscribe: (c: string) => {
        this.subscribed.add(c);
        return inner.subscribe(c);
      },
      unsubscribe: (c: string) => {
        this.subscribed.delete(c);
        inner.unsubscribe(c);
      },
      history: async (channel: string, since: string | undefined, limit: number, ttl: number) => {
        this.reads.push(channel);
        const r = await (inner as Bus).history(channel, since, limit, ttl);
        const hook = this.duringRead;
        this.duringRead = undefined;
        await hook?.();
        return r;
      },
    });
  }
  /** The next publication of `channel` never reaches this node (as when a pub/sub message is lost). */
  lose(channel: string) {
    this.drop.add(channel);
  }
  report(channel: string, kind: ResyncKind) {
    for (const fn of this.resync) fn(channel, kind);
  }
  publish(channel: string, data: unknown) {
    return this.inner.publish({ channel, event: 'n', data, ts: Date.now(), history: HISTORY });
  }
}

function setup() {
  const fb = new FaultyBus();
  const metrics = createMetrics('unit');
  const delivery = new Delivery({ bus: fb.bus, rules, metrics, log: createLogger('silent', 'unit'), historyPage: 2 });
  const sink = new FakeSink(delivery);
  const join = (channel: string, member: string, since?: string) => {
    const replayed: unknown[] = [];
    return delivery
      .joinWithHistory(
        channel,
        since,
        (p) => replayed.push(p.data),
        () => sink.add(channel, member),
        () => true,
      )
      .then((r) => ({ ...r, replayed }));
  };
  return { fb, delivery, sink, join, metrics };
}

const settle = () => new Promise((r) => setImmediate(r));

test('the bus is subscribed before a join completes and unsubscribed when the last member leaves', async () => {
  const { fb, sink, join, delivery } = setup();
  await fb.publish('a', 'before anyone');
  assert.equal(fb.subscribed.has('a'), false);
  await join('a', 'm1');
  assert.equal(fb.subscribed.has('a'), true);
  await join('a', 'm2');
  await fb.publish('a', 1);
  await fb.publish('b', 'nobody here');
  assert.deepEqual(sink.got('a', 'm1'), [1]);
  assert.deepEqual(sink.got('a', 'm2'), [1]);
  sink.remove('a', 'm1');
  assert.equal(fb.subscribed.has('a'), true, 'one member left');
  sink.remove('a', 'm2');
  assert.equal(fb.subscribed.has('a'), false);
  assert.equal(delivery.channelCount(), 0);
});

test('join with since: history, then what was published during the read, once each and in order', async () => {
  const { fb, sink, join } = setup();
  const first = await fb.publish('a', 0);
  for (let i = 1; i < 5; i++) await fb.publish('a', i);
  // Two publications land while history is read: one inside the read's range would be a duplicate, the other not.
  fb.duringRead = async () => {
    await fb.publish('a', 5);
    await fb.publish('a', 6);
  };
  const r = await join('a', 'm', first.id);
  assert.equal(r.recovered, true);
  assert.deepEqual(r.replayed, [1, 2, 3, 4, 5, 6]);
  await fb.publish('a', 7);
  assert.deepEqual(sink.got('a', 'm'), [7]);
});

test('a gap on one channel catches up that channel alone, from history, in order, without repeats', async () => {
  const { fb, sink, join, metrics } = setup();
  await join('a', 'm');
  await join('b', 'm');
  await fb.publish('a', 1);
  await fb.publish('b', 1);
  fb.lose('a');
  await fb.publish('a', 2); // lost on its way to this node
  fb.reads.length = 0;
  // The bus sees the gap when the next one arrives, and says so before handing it on.
  fb.report('a', 'gap');
  await fb.publish('a', 3);
  await fb.publish('b', 2);
  await settle();
  await settle();
  assert.deepEqual(sink.got('a', 'm'), [1, 2, 3]);
  assert.deepEqual(sink.got('b', 'm'), [1, 2]);
  assert.deepEqual([...new Set(fb.reads)], ['a'], 'history was read for the channel with the gap only');
  assert.equal((await metrics.registry.getSingleMetric('switchboard_bus_catchup_reads_total')!.get()).values[0]!.value >= 1, true);
});

test('a reset tells the channel subscribers (recovered: false) and no other channel', async () => {
  const { fb, sink, join } = setup();
  await join('a', 'm');
  await join('b', 'm');
  fb.report('a', 'reset');
  await fb.publish('a', 1);
  assert.deepEqual(sink.got('a', 'm'), [{ channel: 'a', recovered: false }, 1]);
  assert.deepEqual(sink.got('b', 'm'), []);
});

test('a gap whose publications history no longer holds is announced, not hidden', async () => {
  const { fb, sink, join } = setup();
  await join('a', 'm');
  await fb.publish('a', 1);
  // History of one entry: what the node last delivered is trimmed away by the time it catches up.
  fb.lose('a');
  await fb.inner.publish({ channel: 'a', event: 'n', data: 2, ts: Date.now(), history: { size: 1, ttlMs: 60_000 } });
  fb.report('a', 'gap');
  await settle();
  await settle();
  assert.deepEqual(sink.got('a', 'm'), [1, 2, { channel: 'a', recovered: false }]);
});

test('a join abandoned while history is read leaves no interest behind', async () => {
  const { fb, delivery } = setup();
  const first = await fb.publish('a', 0);
  const r = await delivery.joinWithHistory(
    'a',
    first.id,
    () => {},
    () => assert.fail('must not join'),
    () => false,
  );
  assert.equal(r.replayed, 0);
  assert.equal(fb.subscribed.has('a'), false);
});
