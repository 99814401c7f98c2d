// The Redis bus's position check against what arrived meanwhile: a read is fenced, so publications made after it
// may arrive before its answer is compared. Only a real loss may be a resync. (The bus's bookkeeping alone: no Redis.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ResyncKind } from '../../src/bus/bus.js';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';

type Seen = { epoch: string; seq: number; id: string };

/** A RedisBus without connections: what it received of one channel, and the position reads it compares. */
function channel() {
  const bus = Object.create(RedisBus.prototype) as Record<string, unknown>;
  Object.assign(bus, { metrics: createMetrics('unit'), log: createLogger('silent', 'unit'), resyncListeners: [] });
  const resyncs: ResyncKind[] = [];
  (bus.resyncListeners as ((c: string, k: ResyncKind) => void)[]).push((_c, kind) => resyncs.push(kind));
  const c: { name: string; deferred: boolean; seen?: Seen } = { name: 'x', deferred: false };
  const call = (name: string, ...args: unknown[]) => (bus[name] as (...a: unknown[]) => unknown).apply(bus, args);
  return {
    resyncs,
    /** A publication arriving live. */
    receive: (seq: number, epoch: string, id: string) => call('track', c, seq, epoch, id),
    /** What had arrived when a read was sent (a copy, as checkPositions takes: the channel's own changes in place). */
    snapshot: () => (c.seen ? { ...c.seen } : undefined),
    /** The read's answer (Redis's state then), compared once its fence is back. */
    read: (at: Seen, atRead: Seen | undefined) => call('compare', c, at, atRead, 'position_check'),
  };
}

test('a read that found no state yet, then the first publication arriving before its fence: no resync', () => {
  const ch = channel();
  const atRead = ch.snapshot();
  ch.receive(1, 'E', '10-0');
  ch.read({ epoch: '', seq: 0, id: '0-0' }, atRead);
  ch.receive(2, 'E', '11-0');
  assert.deepEqual(ch.resyncs, [], 'no reset for the stale read, no gap at the next publication');
});

test('a read older than publications that arrived before its fence: no resync', () => {
  const ch = channel();
  ch.receive(1, 'E', '10-0');
  const atRead = ch.snapshot();
  ch.receive(2, 'E', '11-0');
  ch.receive(3, 'E', '12-0');
  ch.read({ epoch: 'E', seq: 1, id: '10-0' }, atRead);
  ch.receive(4, 'E', '13-0');
  assert.deepEqual(ch.resyncs, []);
});

test('Redis lost the channel: state lost is a reset', () => {
  const ch = channel();
  ch.receive(1, 'E', '10-0');
  ch.receive(2, 'E', '11-0');
  ch.read({ epoch: '', seq: 0, id: '0-0' }, ch.snapshot());
  assert.deepEqual(ch.resyncs, ['reset']);
});

test('an epoch change that arrives before the fence is told once, by the publication', () => {
  const ch = channel();
  ch.receive(1, 'E1', '10-0');
  ch.receive(2, 'E1', '11-0');
  ch.receive(3, 'E1', '12-0');
  const atRead = ch.snapshot();
  ch.receive(1, 'E2', '20-0');
  ch.read({ epoch: 'E2', seq: 1, id: '20-0' }, atRead);
  assert.deepEqual(ch.resyncs, ['reset']);
});

test('a sequence Redis has and this node never received is a gap', () => {
  const ch = channel();
  ch.receive(1, 'E', '10-0');
  ch.read({ epoch: 'E', seq: 3, id: '12-0' }, ch.snapshot());
  assert.deepEqual(ch.resyncs, ['gap']);
});

test('a sequence received before the read that Redis no longer has: rolled back', () => {
  const ch = channel();
  ch.receive(1, 'E', '10-0');
  ch.receive(2, 'E', '11-0');
  ch.read({ epoch: 'E', seq: 1, id: '10-0' }, ch.snapshot());
  assert.deepEqual(ch.resyncs, ['reset']);
});

test('a sequence this node received with another id than Redis now has (a failover reused it): reset', () => {
  const ch = channel();
  ch.receive(1, 'E', '10-0');
  ch.receive(2, 'E', '11-0');
  const atRead = ch.snapshot();
  ch.receive(3, 'E', '12-0');
  ch.read({ epoch: 'E', seq: 2, id: '11-0' }, atRead);
  assert.deepEqual(ch.resyncs, [], 'the same id: nothing lost');
  ch.read({ epoch: 'E', seq: 2, id: '99-0' }, atRead);
  assert.deepEqual(ch.resyncs, ['reset']);
});

test('a sequence received with an id whose counter differs from what Redis has: reset', () => {
  const ch = channel();
  ch.receive(1, 'E', '10-0');
  ch.receive(2, 'E', '10-1');
  ch.read({ epoch: 'E', seq: 2, id: '10-1' }, ch.snapshot());
  assert.deepEqual(ch.resyncs, []);
  ch.read({ epoch: 'E', seq: 2, id: '10-2' }, ch.snapshot());
  assert.deepEqual(ch.resyncs, ['reset']);
});

test('only the last 32 sequences are compared by id: an older one is not found and not a loss', () => {
  const ch = channel();
  for (let seq = 1; seq <= 40; seq++) ch.receive(seq, 'E', `${100 + seq}-0`);
  const atRead = ch.snapshot();
  ch.read({ epoch: 'E', seq: 8, id: '1-0' }, { ...atRead!, seq: 8 });
  assert.deepEqual(ch.resyncs, [], 'sequence 8 is no longer kept');
  ch.read({ epoch: 'E', seq: 9, id: '1-0' }, { ...atRead!, seq: 9 });
  assert.deepEqual(ch.resyncs, ['reset'], 'sequence 9 is the oldest kept');
});
