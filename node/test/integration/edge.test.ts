// The edge: real HAProxy (haproxy/haproxy.cfg) over TLS in front of three real nodes and Redis, driven by
// real socket.io-client and Chromium: transports, stickiness (and proof that it matters), failover, drain, idle WebSockets.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { launchChromium } from '../helpers/browser.js';
import { startNode, repoRoot, type TestNode } from '../helpers/node.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { checkConfig, ensureCerts, serversCfg, startHaproxy, TEST_HAPROXY_ENV, type TestHaproxy } from '../helpers/haproxy.js';

const API_KEY = 'test-key-0123456789abcdef';
const DRAIN_TIMEOUT_MS = 3000;
const artifacts = join(repoRoot, 'test-artifacts');

type ClientOptions = Partial<ManagerOptions & SocketOptions>;

/** A socket.io-client that records everything a user would notice, and rejoins its channel after each reconnect. */
interface Probe {
  socket: Socket;
  name: string;
  connects: number;
  /** connect_error messages, with the HTTP body when there was one ("Session ID unknown"). */
  errors: string[];
  disconnects: { reason: string; at: number }[];
  /** Publications received on the probe's channel, by event `msg`. */
  received: { data: { n?: number; text?: string }; meta: { channel: string; id: string; ts: number } }[];
  /** Resolves once connected and subscribed (the current connection). */
  ready(timeout?: number): Promise<void>;
  transport(): string | undefined;
  close(): void;
}

const probes = new Set<Probe>();

function describeError(err: unknown): string {
  const e = err as { message?: string; description?: unknown; context?: { responseText?: string; status?: number } };
  const body = typeof e.context?.responseText === 'string' ? ` ${e.context.responseText}` : '';
  return `${e.message ?? String(err)}${e.description !== undefined ? ` (${String(e.description)})` : ''}${body}`;
}

function probe(url: string, ca: string, opts: ClientOptions, channel?: string, name = 'probe'): Probe {
  const socket = io(url, {
    ca,
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    randomizationFactor: 0,
    timeout: 5000,
    ...opts,
  });
  let subscribed = false;
  const p: Probe = {
    socket,
    name,
    connects: 0,
    errors: [],
    disconnects: [],
    received: [],
    async ready(timeout = 8000) {
      // Connected and subscribed as far as the client knows, and proven by a round trip: a long-polling client whose
      // node went away learns it only on its next request (400 Session ID unknown), and until then still says connected.
      await waitFor(
        async () =>
          socket.connected &&
          (subscribed || !channel) &&
          // Subscribing again is answered at once on a subscribed connection; without a channel, any answer will do.
          ((await (
            channel ? socket.timeout(1000).emitWithAck('subscribe', channel, {}) : socket.timeout(1000).emitWithAck('rpc', 'ping')
          ).catch(() => undefined)) as unknown) !== undefined &&
          socket.connected,
        { timeout, what: `${name} connected${channel ? ' and subscribed' : ''}, answering` },
      );
    },
    transport: () => socket.io.engine?.transport?.name,
    close() {
      socket.disconnect();
      socket.io.engine?.close();
      probes.delete(p);
    },
  };
  socket.on('connect', () => {
    p.connects++;
    subscribed = false;
    if (!channel) return;
    socket.timeout(5000).emit('subscribe', channel, {}, (err: Error | null, res: { ok: boolean; error?: unknown }) => {
      if (err || !res?.ok) p.errors.push(`subscribe: ${err?.message ?? JSON.stringify(res)}`);
      else subscribed = true;
    });
  });
  socket.on('connect_error', (err) => p.errors.push(describeError(err)));
  socket.on('disconnect', (reason, details) => {
    subscribed = false;
    p.disconnects.push({ reason: details ? `${reason}: ${describeError(details)}` : reason, at: Date.now() });
  });
  socket.on('msg', (data, meta) => p.received.push({ data, meta }));
  probes.add(p);
  return p;
}

async function publishVia(node: TestNode, channel: string, data: unknown, event = 'msg'): Promise<string> {
  const res = await fetch(`${node.url}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, event, data }),
  });
  const body = (await res.json()) as { ok?: boolean; id?: string };
  assert.equal(res.status, 200, `POST /api/publish on ${node.id}: ${JSON.stringify(body)}`);
  assert.ok(body.id);
  return body.id;
}

/** Open client connections on one node, from its own /metrics. */
async function connectionsOn(node: TestNode): Promise<number> {
  const text = await (await fetch(`${node.internalUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('switchboard_connections'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

async function spread(nodes: TestNode[]): Promise<Map<TestNode, number>> {
  const m = new Map<TestNode, number>();
  for (const n of nodes) m.set(n, await connectionsOn(n));
  return m;
}

/** Waits until every probe has received the publication numbered `n`. */
async function allReceive(ps: Probe[], n: number, timeout = 5000) {
  await waitFor(() => ps.every((p) => p.received.some((r) => r.data.n === n)), {
    timeout,
    what: () =>
      `publication ${n} at every client (missing at ${ps
        .filter((p) => !p.received.some((r) => r.data.n === n))
        .map((p) => p.name)
        .join(', ')})`,
  });
}

/** What a failed delivery check needs to be understood: each probe's history, the survivor's view and its warnings. */
async function explain(ps: Probe[], node: TestNode, counts: Map<TestNode, number>): Promise<string> {
  const lines = ps.map(
    (p) =>
      `${p.name}: connected ${p.socket.connected} via ${p.transport()}, connects ${p.connects}, received ${p.received.length}, ` +
      `disconnects ${JSON.stringify(p.disconnects)}, errors ${JSON.stringify(p.errors)}`,
  );
  lines.push(
    `connections before: ${[...counts].map(([n, c]) => `${n.id} ${c}`).join(', ')}; now on ${node.id}: ${await connectionsOn(node).catch(String)}`,
  );
  const metrics = await (await fetch(`${node.internalUrl}/metrics`)).text().catch(String);
  lines.push(...metrics.split('\n').filter((l) => /^switchboard_(bus|canary|resync|channel|shard|epoch|loss)/.test(l)));
  lines.push(
    ...node
      .output()
      .split('\n')
      .filter((l) => /"level":(40|50|60)/.test(l))
      .slice(-30),
  );
  return lines.join('\n');
}

/** Six clients through the edge into `ps` (so a failure still closes them), WebSocket and polling alternating, each ready. */
async function mixedProbes(ps: Probe[], url: string, ca: string, channel: string, name: string) {
  for (let i = 0; i < 6; i++) {
    const opts: ClientOptions = i % 2 ? { transports: ['websocket'] } : { transports: ['polling'], withCredentials: i % 4 === 0 };
    const p = probe(url, ca, opts, channel, `${name}-${i}`);
    ps.push(p);
    await p.ready();
  }
}

let seq = 0;
const channelName = (what: string) => `demo:edge-${what}-${process.pid}-${++seq}`;

/** Opens `count` polling-only clients one after the other, each waiting for its own connection before the next. */
async function pollingInARow(url: string, ca: string, count: number, channel: string): Promise<{ ps: Probe[]; failed: number }> {
  const ps: Probe[] = [];
  let failed = 0;
  for (let i = 0; i < count; i++) {
    // Half keep cookies (as browsers do), half don't (HAProxy's sid table must carry them).
    const p = probe(url, ca, { transports: ['polling'], withCredentials: i % 2 === 0, reconnection: false }, channel, `poll-${i}`);
    ps.push(p);
    await p.ready().catch(() => failed++);
  }
  return { ps, failed };
}

describe('edge: HAProxy in front of three nodes', { timeout: 180_000 }, () => {
  let redis: TestRedis | undefined;
  const nodes: TestNode[] = [];
  let edge: TestHaproxy | undefined;
  const extraEdges: TestHaproxy[] = [];
  let ca: string;

  before(async () => {
    ca = readFileSync(ensureCerts().caPath, 'utf8');
    redis = await startRedis();
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await startNode({
          env: { REDIS_URL: redis.url, TRUSTED_PROXIES: '127.0.0.1', DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS), LOG_LEVEL: 'warn' },
        }),
      );
    }
    edge = await startHaproxy({ servers: nodes });
  });

  after(async () => {
    for (const p of [...probes]) p.close();
    for (const h of extraEdges) await h.stop();
    await edge?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    await redis?.stop();
  });

  /** Starts another HAProxy over the same nodes; stopped in after() even if the test fails. */
  async function variant(opts: { sticky?: boolean; env?: Record<string, string> }, servers: TestNode[] = nodes): Promise<TestHaproxy> {
    const h = await startHaproxy({ servers, ...opts });
    extraEdges.push(h);
    return h;
  }

  function closeAll(ps: Probe[]) {
    for (const p of ps) p.close();
  }

  test('haproxy -c accepts haproxy.cfg with a generated server list, sticky or not, and rejects a missing certificate', () => {
    const { pemPath } = ensureCerts();
    const dir = mkdtempSync(join(tmpdir(), 'sb-haproxy-check-'));
    try {
      const servers = join(dir, 'servers.cfg');
      writeFileSync(
        servers,
        serversCfg([
          { id: 'node-1', port: 3001, internalPort: 9091 },
          { id: 'node-2', port: 3002, internalPort: 9092 },
        ]),
      );
      for (const sticky of ['1', '0']) {
        const r = checkConfig(servers, { ...TEST_HAPROXY_ENV, SB_TLS_CERT: pemPath, SB_STICKY: sticky });
        assert.equal(r.status, 0, r.output);
        assert.match(r.output, /Configuration file is valid/);
        assert.doesNotMatch(r.output, /WARNING|ALERT/, r.output);
      }
      // The documented example, with defaults only (ports 8080/8443/8404).
      const example = checkConfig(join(repoRoot, 'haproxy/servers.example.cfg'), { SB_TLS_CERT: pemPath });
      assert.equal(example.status, 0, example.output);
      // A check that can't fail proves nothing.
      const broken = checkConfig(servers, { SB_TLS_CERT: join(dir, 'missing.pem') });
      assert.notEqual(broken.status, 0);
      assert.match(broken.output, /missing\.pem/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('TLS frontend: polling-only, websocket-only and polling upgraded to websocket all connect and receive', async () => {
    const channel = channelName('transports');
    const kinds: [string, ClientOptions, string][] = [
      ['polling', { transports: ['polling'] }, 'polling'],
      ['websocket', { transports: ['websocket'] }, 'websocket'],
      ['upgrade', { transports: ['polling', 'websocket'], upgrade: true }, 'websocket'],
    ];
    const ps = kinds.map(([name, opts]) => probe(edge!.httpsUrl, ca, opts, channel, name));
    try {
      await Promise.all(ps.map((p) => p.ready()));
      for (const [i, [name, , transport]] of kinds.entries()) {
        await waitFor(() => ps[i]!.transport() === transport, { timeout: 5000, what: `${name} on ${transport}` });
      }
      await publishVia(nodes[0]!, channel, { n: 1 });
      await allReceive(ps, 1);
      for (const p of ps) {
        assert.deepEqual(p.errors, [], `${p.name} errors`);
        assert.deepEqual(p.disconnects, [], `${p.name} disconnects`);
      }
      // The certificate is really verified: without the CA, the same client is refused.
      const untrusted = io(edge!.httpsUrl, { transports: ['websocket'], forceNew: true, reconnection: false });
      try {
        const err = await new Promise<Error>((resolve, reject) => {
          untrusted.on('connect_error', resolve);
          untrusted.on('connect', () => reject(new Error('connected without trusting the CA')));
        });
        assert.ok(err);
      } finally {
        untrusted.close();
      }
    } finally {
      closeAll(ps);
    }
  });

  test('HAProxy sets X-Forwarded-Proto and answers the plain HTTP frontend too', async () => {
    const res = await fetch(`${edge!.httpUrl}/api/node`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { id: string };
    assert.ok(
      nodes.some((n) => n.id === body.id),
      `served by one of the nodes, not ${body.id}`,
    );
    // The sticky cookie is inserted for browsers.
    assert.match(res.headers.get('set-cookie') ?? '', /^SBNODE=\d+;/);
  });

  test('publications cross nodes: clients spread over all three nodes all receive', async () => {
    const channel = channelName('cross');
    const ps: Probe[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const opts: ClientOptions = i % 2 ? { transports: ['websocket'] } : { transports: ['polling', 'websocket'] };
        const p = probe(edge!.httpsUrl, ca, opts, channel, `cross-${i}`);
        ps.push(p);
        await p.ready();
      }
      const counts = await spread(nodes);
      assert.ok([...counts.values()].filter((c) => c > 0).length >= 2, `clients on at least two nodes: ${[...counts.values()]}`);
      for (const [i, node] of nodes.entries()) {
        await publishVia(node, channel, { n: 100 + i });
        await allReceive(ps, 100 + i);
      }
      // A client's own publication reaches the clients on the other nodes.
      const ack = (await ps[0]!.socket.timeout(5000).emitWithAck('publish', channel, 'msg', { n: 200 })) as { ok: boolean; id?: string };
      assert.equal(ack.ok, true, JSON.stringify(ack));
      await allReceive(ps.slice(1), 200);
      for (const p of ps) assert.deepEqual([...p.errors, ...p.disconnects.map((d) => d.reason)], [], p.name);
    } finally {
      closeAll(ps);
    }
  });

  test('30 long-polling clients in a row, with and without cookies, never lose their session', async () => {
    const channel = channelName('sticky');
    const before = edge!.output().length;
    const { ps, failed } = await pollingInARow(edge!.httpsUrl, ca, 30, channel);
    try {
      assert.equal(
        failed,
        0,
        `clients that did not connect: ${ps
          .filter((p) => !p.socket.connected)
          .map((p) => `${p.name}: ${p.errors.join('; ')}`)
          .join(' | ')}`,
      );
      // A few poll cycles (each publication ends one long-poll and starts the next), every one answered.
      await publishVia(nodes[0]!, channel, { n: 0 });
      await allReceive(ps, 0);
      await publishVia(nodes[1]!, channel, { n: 1 });
      await allReceive(ps, 1);
      const counts = await spread(nodes);
      assert.equal([...counts.values()].filter((c) => c > 0).length, 3, `sessions on all three nodes: ${[...counts.values()]}`);
      for (const p of ps) {
        assert.deepEqual(p.errors, [], `${p.name} errors`);
        assert.deepEqual(p.disconnects, [], `${p.name} disconnects`);
        assert.equal(p.transport(), 'polling');
      }
      // Not one request answered "Session ID unknown" (400) behind the scenes.
      const log = edge!.output().slice(before);
      assert.doesNotMatch(log, /nodes\/\S+ \S+ 400 .*\/socket\.io\//, 'no 400 from a node for a Socket.IO request');
    } finally {
      closeAll(ps);
    }
  });

  test('without stickiness the same long-polling clients fail (the test above tests something)', async (t) => {
    const loose = await variant({ sticky: false });
    const channel = channelName('loose');
    // The same clients as above, all at once: a failing one would otherwise wait out its timeout alone.
    const ps = Array.from({ length: 10 }, (_, i) =>
      probe(loose.httpsUrl, ca, { transports: ['polling'], withCredentials: i % 2 === 0, reconnection: false }, channel, `loose-${i}`),
    );
    try {
      const results = await Promise.allSettled(ps.map((p) => p.ready(3000)));
      const failed = results.filter((r) => r.status === 'rejected').length;
      const errors = ps.flatMap((p) => [...p.errors, ...p.disconnects.map((d) => d.reason)]);
      assert.ok(failed > 0 || errors.length > 0, 'some client failed without stickiness');
      assert.match(`${errors.join('\n')}\n${loose.output()}`, /Session ID unknown|xhr poll error| 400 /);
      t.diagnostic(`without stickiness: ${failed} of ${ps.length} clients never connected; ${errors.length} errors, e.g. ${errors[0]}`);
    } finally {
      closeAll(ps);
      await loose.stop();
    }
  });

  test('an idle WebSocket outlives HAProxy client/server timeouts (timeout tunnel governs it)', async () => {
    const idleEnv = { SB_TIMEOUT_CLIENT: '1s', SB_TIMEOUT_SERVER: '1s' };
    const [longTunnel, shortTunnel] = await Promise.all([
      variant({ env: { ...idleEnv, SB_TIMEOUT_TUNNEL: '60s' } }),
      variant({ env: { ...idleEnv, SB_TIMEOUT_TUNNEL: '2s' } }),
    ]);
    const kept = probe(longTunnel.httpsUrl, ca, { transports: ['websocket'] }, undefined, 'idle-kept');
    const cut = probe(shortTunnel.httpsUrl, ca, { transports: ['websocket'] }, undefined, 'idle-cut');
    try {
      await Promise.all([kept.ready(), cut.ready()]);
      const engineId = kept.socket.io.engine.id;
      // The fence: the short tunnel cuts its idle socket after 2 s, past the 1 s client/server timeouts that
      // would have cut the kept one by then had they governed it.
      await waitFor(() => cut.disconnects.length > 0, { what: 'the idle socket behind timeout tunnel 2s closed' });
      assert.equal(kept.socket.connected, true);
      assert.deepEqual(kept.disconnects, [], 'idle socket behind timeout tunnel 60s');
      assert.equal(kept.connects, 1);
      assert.equal(kept.socket.io.engine.id, engineId, 'the same Engine.IO session');
      const ack = (await kept.socket.timeout(3000).emitWithAck('presence', 'demo:idle')) as { ok: boolean };
      assert.equal(ack.ok, true);
      // With timeout tunnel 2s the same idle socket was cut: the setting above is what keeps it.
      assert.ok(cut.disconnects.length > 0, 'idle socket behind timeout tunnel 2s was closed');
    } finally {
      kept.close();
      cut.close();
      await Promise.all([longTunnel.stop(), shortTunnel.stop()]);
    }
  });

  test(
    'browser: the demo page in two browsers on two nodes, a message typed in one appears in the other',
    { timeout: 90_000 },
    async (t) => {
      const browser = await launchChromium(t);
      if (!browser) return;
      try {
        const channel = channelName('browser');
        const url = `${edge!.httpsUrl}/?channel=${encodeURIComponent(channel)}`;
        // Each context has its own cookie jar (a fresh profile), so HAProxy may send it to another node.
        const open = async (name: string) => {
          const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1000, height: 720 } });
          const page = await ctx.newPage();
          const problems: string[] = [];
          page.on('pageerror', (e) => problems.push(e.message));
          // Console errors too: an invalid `pattern` attribute (compiled with the RegExp v flag) only shows there.
          page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
          await page.goto(`${url}&name=${name}`);
          await page.locator('[data-testid=status][data-state=connected]').waitFor({ timeout: 15_000 });
          await page.getByTestId('joined-channel').filter({ hasText: channel }).waitFor();
          await waitFor(async () => /^[\w.:-]+$/.test((await page.getByTestId('node').textContent()) ?? ''), {
            what: `${name}: node id shown`,
          });
          await page.getByTestId('send-button').and(page.locator(':enabled')).waitFor();
          return { ctx, page, problems, node: (await page.getByTestId('node').textContent())!.trim() };
        };
        const a = await open('alice');
        let b = await open('bob');
        for (let i = 0; i < 5 && b.node === a.node; i++) {
          await b.ctx.close();
          b = await open('bob');
        }
        assert.notEqual(b.node, a.node, 'the two browsers are served by two different nodes');
        assert.ok(nodes.some((n) => n.id === a.node) && nodes.some((n) => n.id === b.node));

        const text = `hello from alice via ${a.node} ${Date.now()}`;
        await a.page.getByTestId('message-input').fill(text);
        await a.page.getByTestId('send-button').click();
        await b.page.getByTestId('messages').getByText(text).waitFor({ timeout: 10_000 });
        await a.page.getByTestId('messages').getByText(text).waitFor({ timeout: 10_000 });
        // Both see two people here.
        await waitFor(async () => Number(await b.page.getByTestId('presence-count').textContent()) >= 2, {
          timeout: 10_000,
          what: 'presence count 2',
        });
        const transport = (await b.page.getByTestId('transport').textContent())?.trim();
        assert.ok(transport === 'websocket' || transport === 'polling', `transport shown: ${transport}`);

        mkdirSync(artifacts, { recursive: true });
        await a.page.screenshot({ path: join(artifacts, 'edge-browser-a.png'), fullPage: true });
        await b.page.screenshot({ path: join(artifacts, 'edge-browser-b.png'), fullPage: true });
        // A phone-width layout too.
        await b.page.setViewportSize({ width: 390, height: 800 });
        await b.page.screenshot({ path: join(artifacts, 'edge-browser-phone.png'), fullPage: true });
        assert.deepEqual([...a.problems, ...b.problems], [], 'no script or console errors on the page');
      } finally {
        await browser.close();
      }
    },
  );

  test('kill -9 a node: HAProxy marks it DOWN and its clients reconnect to the others and keep receiving', async (t) => {
    const channel = channelName('kill');
    const ps: Probe[] = [];
    try {
      await mixedProbes(ps, edge!.httpsUrl, ca, channel, 'kill');
      const counts = await spread(nodes);
      const victim = [...counts.entries()].sort((x, y) => y[1] - x[1])[0]![0];
      const survivor = nodes.find((n) => n !== victim)!;
      assert.ok(counts.get(victim)! > 0);

      const t0 = Date.now();
      victim.kill('SIGKILL');
      await victim.exited;
      await edge!.waitServerState(victim.id, /^DOWN/, 10_000);
      const downAfter = Date.now() - t0;

      // Every client whose node died was disconnected, and all are connected (and subscribed) again.
      await waitFor(() => ps.some((p) => p.disconnects.length > 0), { timeout: 5000, what: 'the victim clients noticing' });
      await Promise.all(ps.map((p) => p.ready(15_000)));
      const reconnectedAfter = Date.now() - t0;

      await publishVia(survivor, channel, { n: 1 });
      await allReceive(ps, 1);
      const moved = ps.filter((p) => p.disconnects.length > 0);
      assert.ok(moved.length >= 1, 'the victim had clients');
      t.diagnostic(`DOWN after ${downAfter} ms; ${moved.length} clients back after ${reconnectedAfter} ms`);
    } finally {
      closeAll(ps);
    }
  });

  test('SIGTERM a node: HAProxy takes it out (readyz 503) before it closes sockets; its clients move without errors', async (t) => {
    const alive = nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
    assert.ok(alive.length >= 2, 'two nodes left for the drain test');
    const channel = channelName('drain');
    const ps: Probe[] = [];
    try {
      await mixedProbes(ps, edge!.httpsUrl, ca, channel, 'drain');
      const counts = await spread(alive);
      const victim = [...counts.entries()].sort((x, y) => y[1] - x[1])[0]![0];
      const survivor = alive.find((n) => n !== victim)!;
      assert.ok(counts.get(victim)! > 0);

      // Watch HAProxy's view of the victim as closely as the stats page allows.
      let downAt: number | undefined;
      let watching = true;
      const watcher = (async () => {
        while (watching && downAt === undefined) {
          const s = await edge!.serverState(victim.id).catch(() => '');
          if (/^DOWN/.test(s)) downAt = Date.now();
          await sleep(20);
        }
      })();

      const t0 = Date.now();
      try {
        victim.kill('SIGTERM');
        // Before it closes anything (the order is checked below, not a duration).
        await waitFor(async () => (await fetch(`${victim.internalUrl}/readyz`)).status === 503, {
          interval: 10,
          what: '/readyz 503 after SIGTERM',
        });
        const code = await victim.exited;
        assert.equal(code, 0, 'the drained node exits 0');
        await Promise.all(ps.map((p) => p.ready(8000)));
      } finally {
        watching = false;
        await watcher;
      }

      const firstClose = Math.min(...ps.flatMap((p) => p.disconnects.map((d) => d.at)));
      assert.ok(Number.isFinite(firstClose), 'the victim closed its clients');
      assert.ok(downAt !== undefined, 'HAProxy marked the node DOWN');
      t.diagnostic(`DOWN in HAProxy ${downAt - t0} ms after SIGTERM; first client closed at ${firstClose - t0} ms`);
      // Everything a user would notice, reported together.
      const problems: string[] = [];
      if (downAt > firstClose)
        problems.push(
          `HAProxy marked it DOWN ${downAt - t0} ms after SIGTERM, but the node closed its first socket at ${firstClose - t0} ms`,
        );
      for (const p of ps) {
        for (const e of p.errors) problems.push(`${p.name} saw an error: ${e}`);
        for (const d of p.disconnects)
          if (!/^transport (close|error)/.test(d.reason)) problems.push(`${p.name} disconnected with ${d.reason}`);
      }
      assert.deepEqual(problems, []);
      await publishVia(survivor, channel, { n: 1 });
      await allReceive(ps, 1).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await explain(ps, survivor, counts)}`);
      });
      // Every probe is on the survivor now (the only node left). Its gauge may briefly also count a session
      // from an earlier test that the engine has not reaped yet, so this asks for at least all of ours.
      let seen = 0;
      await waitFor(async () => (seen = await connectionsOn(survivor)) >= ps.length, {
        timeout: 10_000,
        what: 'every client on the remaining node',
      });
      t.diagnostic(`remaining node counts ${seen} connections for ${ps.length} probes`);
    } finally {
      closeAll(ps);
    }
  });
});
