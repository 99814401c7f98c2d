// Failover drill through Redis Sentinel: a steady numbered publisher, subscribers on two node processes, kill -9 of
// the master (a replica is promoted; the nodes follow without a restart), then a planned SENTINEL FAILOVER.
// Every subscriber holds each number once, in order, or was told `switchboard:resync { recovered: false }`
// between the two numbers around any gap or repeat; the planned switchover loses nothing at all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot, startNode, type TestNode } from '../helpers/node.js';
import { connect, type Client } from '../helpers/client.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { startSentinel, type TestSentinel } from '../helpers/redis-sentinel.js';

const NODE_ENV = {
  CANARY_INTERVAL_MS: '200',
  CANARY_TIMEOUT_MS: '500',
  REDIS_RECONNECT_MAX_MS: '300',
  REDIS_CONNECT_TIMEOUT_MS: '1000',
  LOG_LEVEL: 'info',
};
const CHANNEL = 'orders:sentinel';
type SbClient = { subscribe(c: string, o?: object): Promise<{ ok: boolean }>; onLost(fn: (c: string) => void): void };

/** What one subscriber saw, in arrival order: numbers, and 'lost' where it was told of a loss. */
interface Sub {
  node: TestNode;
  socket: Client;
  events: (number | 'lost')[];
}

const numbersOf = (s: Sub) => s.events.filter((e): e is number => e !== 'lost');
const lostCount = (s: Sub) => s.events.filter((e) => e === 'lost').length;

/**
 * Once, in order, or told: between two consecutive numbers that are not n, n+1 there must be a loss notice.
 * Returns the problems found (empty: the subscriber's record is sound).
 */
function unexplained(s: Sub, from = 0): string[] {
  const out: string[] = [];
  let prev: number | undefined;
  let told = false;
  for (const e of s.events.slice(from)) {
    if (e === 'lost') {
      told = true;
      continue;
    }
    if (prev !== undefined && e !== prev + 1 && !told) out.push(`${prev} then ${e} without a notice`);
    prev = e;
    told = false;
  }
  return out;
}

describe('Redis Sentinel failover under a steady publisher', () => {
  let sentinel: TestSentinel;
  let nodes: TestNode[] = [];
  const subs: Sub[] = [];
  let seq = 0;
  let publishing = true;
  let publisher: Promise<void> | undefined;
  const publishErrors: string[] = [];

  /** Publishes seq through the nodes in turn, retrying the same number (same Idempotency-Key) until accepted. */
  async function publishLoop() {
    while (publishing) {
      const via = nodes[seq % nodes.length]!;
      try {
        const res = await fetch(`${via.url}/api/publish`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer test-key-0123456789abcdef',
            'idempotency-key': `sentinel-${seq}`,
          },
          body: JSON.stringify({ channel: CHANNEL, event: 'n', data: { seq } }),
          signal: AbortSignal.timeout(3000),
        });
        const body = (await res.json().catch(() => ({}))) as { ok?: boolean; local?: boolean };
        if (res.status === 200 && body.ok && !body.local) {
          seq++;
          await sleep(10);
          continue;
        }
        publishErrors.push(String(res.status));
      } catch (err) {
        publishErrors.push((err as Error).name);
      }
      await sleep(30);
    }
  }

  const advance = async (n: number, what: string) => {
    const target = seq + n;
    await waitFor(() => seq >= target, { what: `publisher past ${target} (${what})`, timeout: 30_000 }).catch((err: Error) =>
      withLogs(new Error(`${err.message}; errors: ${publishErrors.slice(-5).join(',')}`)),
    );
  };
  const ready = async (n: TestNode) => (await fetch(`${n.internalUrl}/readyz`).catch(() => undefined))?.status === 200;

  /** Stops the publisher and waits for every subscriber to hold the last accepted number. */
  async function settle(phase: string) {
    publishing = false;
    await publisher;
    const last = seq - 1;
    await waitFor(() => subs.every((s) => numbersOf(s).includes(last)), {
      what: `the last number (${last}) everywhere after ${phase}`,
      timeout: 20_000,
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}\n${subs.map((s, i) => `sub ${i}: ${numbersOf(s).length} numbers, last ${numbersOf(s).at(-1)}, lost=${lostCount(s)}`).join('\n')}\n${logs()}`,
      );
    });
    return last;
  }
  const logs = () =>
    nodes
      .map((n) =>
        n
          .output()
          .split('\n')
          .filter((l) => /warn|error|resync|verified|redis/i.test(l) && !/ECONNREFUSED|unreachable|connection lost/.test(l))
          .slice(-30)
          .join('\n'),
      )
      .join('\n--\n');
  const withLogs = (err: Error): never => {
    throw new Error(`${err.message}\n${logs()}`);
  };
  const restartPublisher = () => {
    publishing = true;
    publisher = publishLoop();
  };

  before(async () => {
    const { SwitchboardClient } = await import(pathToFileURL(join(repoRoot, 'node/public/switchboard-client.js')).href);
    // Passwords on both: the nodes' failover watch must authenticate to the sentinels to hear +try-failover.
    // down-after 3 s, not the helper's 1 s: on a loaded 2-core machine a sentinel that misses a second of PINGs
    // from the newly promoted master starts another failover right after the planned one (seen once in CI-like
    // runs: two extra failovers within 3 s, a "sequence rolled back" and a loss notice the drill says can't be).
    sentinel = await startSentinel({ password: 'data-secret', sentinelPassword: 'sentinel-secret', downAfterMs: 3000 });
    nodes = [await startNode({ env: { ...sentinel.env, ...NODE_ENV } }), await startNode({ env: { ...sentinel.env, ...NODE_ENV } })];
    for (const node of [...nodes, ...nodes]) {
      const socket = await connect(node.url, { transports: ['websocket'] });
      const sub: Sub = { node, socket, events: [] };
      socket.on('n', (d: { seq: number }) => sub.events.push(d.seq));
      const sb = new SwitchboardClient(socket) as SbClient;
      sb.onLost(() => sub.events.push('lost'));
      assert.equal((await sb.subscribe(CHANNEL)).ok, true);
      subs.push(sub);
    }
    restartPublisher();
  });

  after(async () => {
    publishing = false;
    await publisher?.catch(() => {});
    for (const s of subs) s.socket.disconnect();
    for (const n of nodes) await n.stop();
    await sentinel?.stop();
  });

  test('kill -9 of the master: a replica is promoted, the nodes follow without a restart, nothing is lost silently', async () => {
    await advance(30, 'warm-up');
    const old = await sentinel.master();
    const pids = nodes.map((n) => n.proc.pid);
    await sentinel.kill(old);
    // No master reachable: readiness turns false by itself...
    await waitFor(async () => !(await ready(nodes[0]!)) && !(await ready(nodes[1]!)), {
      what: 'both nodes unready while there is no master',
      timeout: 10_000,
      interval: 20,
    });
    const promoted = await sentinel.waitNewMaster(old);
    // ...and back by itself once the sentinels name the promoted replica.
    await waitFor(async () => (await ready(nodes[0]!)) && (await ready(nodes[1]!)), {
      what: `both nodes ready on the new master ${promoted}`,
      timeout: 15_000,
    }).catch(withLogs);
    await advance(30, 'after the failover');
    const last = await settle('kill -9');
    assert.deepEqual(
      nodes.map((n) => [n.proc.pid, n.proc.exitCode]),
      pids.map((p) => [p, null]),
      'the same node processes, still running',
    );
    subs.forEach((s, i) => {
      const nums = numbersOf(s);
      assert.equal(nums[0], 0, `subscriber ${i} starts at 0`);
      assert.equal(nums.at(-1), last, `subscriber ${i} ends at ${last}`);
      assert.deepEqual(unexplained(s), [], `subscriber ${i} (on ${s.node.id}): once, in order, or told\n${logs()}`);
    });
    if (process.env.SB_DRILL_LOGS) console.log(logs());
    console.log(
      `# kill -9 drill: ${last + 1} numbers accepted, loss notices per subscriber ${subs.map(lostCount).join(',')}, publish retries ${publishErrors.length}`,
    );
  });

  test('planned SENTINEL FAILOVER: no loss at all', async () => {
    // A replica with its link up, for the planned switchover to promote.
    await sentinel.waitSettled(1);
    const from = subs.map((s) => s.events.length);
    const start = seq;
    const errorsBefore = publishErrors.length;
    restartPublisher();
    await advance(30, 'before the switchover');
    const old = await sentinel.master();
    const promoted = await sentinel.failover();
    assert.notEqual(promoted, old);
    await waitFor(async () => (await ready(nodes[0]!)) && (await ready(nodes[1]!)), {
      what: 'both nodes ready after the switchover',
      timeout: 15_000,
    }).catch(withLogs);
    await advance(30, 'after the switchover');
    const last = await settle('SENTINEL FAILOVER');
    // Figures for the record: how long each node held its writes during the switchover (log times).
    const holds = nodes.map((n) => {
      const t = (msg: string) =>
        n
          .output()
          .split('\n')
          .filter((l) => l.includes(msg))
          .map((l) => (JSON.parse(l) as { time: number }).time)
          .at(-1)!;
      return t('writes released') - t('sentinel failover started');
    });
    console.log(
      `# planned switchover: ${last - start + 1} numbers, writes held ${holds.join(', ')} ms, publish retries ${publishErrors.length - errorsBefore}`,
    );
    subs.forEach((s, i) => {
      const phase = s.events.slice(from[i]);
      assert.deepEqual(
        phase.filter((e) => e === 'lost' || e >= start),
        Array.from({ length: last - start + 1 }, (_, k) => start + k),
        `subscriber ${i} (on ${s.node.id}): every number from ${start} to ${last} once, in order, and no loss notice\n${logs()}`,
      );
    });
  });
});
