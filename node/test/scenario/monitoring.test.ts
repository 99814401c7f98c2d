// The dashboards and alerts against a live system: a real Prometheus (configured by scripts/prometheus-config.mjs,
// as `scripts/cluster up --monitoring` does) scrapes two nodes and HAProxy while clients drive every kind of
// traffic; every panel query of every dashboard must return data, then kill -9, a hung Redis and a failing
// webhook must fire their alerts. The rules are the shipped file with `for:` shortened in the rendered copy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { startHaproxy, type TestHaproxy } from '../helpers/haproxy.js';
import { startPrometheus, type PromAlert, type TestPrometheus } from '../helpers/prometheus.js';
import { apiPublish, call, collect, connect, type Client } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { hasBinary, requireOptional } from '../helpers/prereq.js';
import { allPanels, loadDashboards } from '../helpers/ops.js';

/** Scrape and evaluation interval, in seconds. */
const SCRAPE_S = 1;
const ALERT_FOR = '2s';
const CHANNEL = 'room:live';
/** The alerts the faults below must fire. */
const FAULT_ALERTS = ['SwitchboardWebhookErrors', 'SwitchboardNodeDown', 'SwitchboardBusCanaryFailing'];

/** A backend that lets everyone in and answers RPC, until told to fail. */
class Backend {
  rpcFails = false;
  private server!: http.Server;
  url = '';
  private users = 0;
  async start() {
    this.server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const json = (status: number, v: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
        if (req.url === '/connect') return json(200, { user: `user-${++this.users}` });
        if (req.url?.startsWith('/rpc/')) return this.rpcFails ? json(500, { error: 'backend down' }) : json(200, { result: 'pong' });
        return json(200, {});
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }
  async stop() {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** Reads an SSE stream until `until` matches what arrived; then closes it. */
async function sseUntil(url: string, onOpen: () => Promise<unknown>, until: RegExp): Promise<string> {
  const ctl = new AbortController();
  const res = await fetch(url, { signal: ctl.signal });
  assert.equal(res.status, 200, `GET ${url}`);
  const reader = res.body!.getReader();
  let text = '';
  const dec = new TextDecoder();
  let opened = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`SSE stream ended before ${until}: ${text}`);
      text += dec.decode(value);
      if (!opened && text.includes(': connected')) {
        opened = true;
        await onOpen();
      }
      if (until.test(text)) return text;
    }
  } finally {
    ctl.abort();
  }
}

/** One raw Socket.IO connection that sends a malformed packet; resolves when the node closes it. */
async function badFrame(node: TestNode): Promise<void> {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/socket.io/?EIO=4&transport=websocket`);
  const closed = new Promise<void>((r) => ws.on('close', () => r()));
  const frames: string[] = [];
  ws.on('message', (d) => frames.push(d.toString()));
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('error', j);
  });
  await waitFor(() => frames.some((f) => f.startsWith('0{')), { what: 'the Engine.IO open packet' });
  ws.send('40');
  await waitFor(() => frames.some((f) => f.startsWith('40')), { what: 'the namespace connect' });
  ws.send('9');
  await closed;
}

/**
 * Grafana's values for the dashboard's variables: query variables resolved against Prometheus the way
 * Grafana does on load (an "All" option comes first and is selected, as its allValue; otherwise the first value).
 */
async function resolveVariables(prom: TestPrometheus, dashboard: any, start: number, end: number): Promise<Record<string, string>> {
  const vars: Record<string, string> = {};
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q: string = typeof v.query === 'string' ? v.query : v.query.query;
    const m = /^label_values\((?:(.*),\s*)?(\w+)\)$/.exec(q.trim());
    assert.ok(m, `variable ${v.name}: only label_values() queries are handled here (${q})`);
    const selector = m[1] ? fill(m[1], vars) : undefined;
    const values: string[] = await prom.api(`label/${m[2]}/values`, {
      ...(selector ? { 'match[]': selector } : {}),
      start: String(start),
      end: String(end),
    });
    assert.ok(values.length > 0, `variable ${v.name} (${q}) has values`);
    vars[v.name] = v.includeAll
      ? (v.allValue ?? `(${values.map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`)
      : values.sort()[0]!;
  }
  return vars;
}

function fill(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)/g, (all, a, b, c) => {
    const name = a ?? b ?? c;
    if (!(name in vars)) throw new Error(`unknown variable ${all} in ${expr}`);
    return vars[name]!;
  });
}

describe('dashboards and alerts on a live cluster', () => {
  let redis: TestRedis | undefined;
  let backend: Backend | undefined;
  let nodes: TestNode[] = [];
  let haproxy: TestHaproxy | undefined;
  let prom: TestPrometheus | undefined;
  const clients: Client[] = [];
  let trafficStart = 0;
  let skip = false;

  before(async () => {
    // The tests skip (or fail under CI=true) with the install command.
    if (!hasBinary('prometheus')) {
      skip = true;
      return;
    }
    redis = await startRedis();
    backend = new Backend();
    await backend.start();
    const env = {
      REDIS_URL: redis.url,
      BACKEND_URL: backend.url,
      WEBHOOK_SECRET: 'monitoring-test-webhook-secret-0123456789',
      // Subscribe and publish go through the backend's webhooks too.
      CHANNEL_RULES: JSON.stringify([
        { prefix: '', subscribe: 'authorized', publish: 'authorized', history: { size: 100, ttlSeconds: 60 } },
      ]),
      // A hung Redis is noticed within seconds; a busy machine's slow round trip is not a failure.
      CANARY_INTERVAL_MS: '250',
      CANARY_TIMEOUT_MS: '1000',
      ALLOWED_ORIGINS: 'https://app.example',
    };
    nodes = [await startNode({ env }), await startNode({ env })];
    haproxy = await startHaproxy({ servers: nodes.map((n) => ({ id: n.id, port: n.port, internalPort: n.internalPort })) });
    prom = await startPrometheus({
      nodes: nodes.map((n) => `127.0.0.1:${n.internalPort}`),
      haproxy: new URL(haproxy.metricsUrl).host,
      interval: `${SCRAPE_S}s`,
      alertFor: ALERT_FOR,
    });
    trafficStart = Date.now() / 1000;

    // Every kind of traffic, on both nodes: through HAProxy and direct, WebSocket and polling.
    const [a, b] = nodes as [TestNode, TestNode];
    const viaHaproxy = await connect(haproxy.httpUrl, { transports: ['websocket'] });
    const polling = await connect(a.url, { transports: ['polling'] });
    const onB = await connect(b.url, { transports: ['websocket'] });
    clients.push(viaHaproxy, polling, onB);
    const got = clients.map(collect);
    for (const c of clients) assert.equal((await call(c, 'subscribe', CHANNEL)).ok, true);
    const first = await call(viaHaproxy, 'publish', CHANNEL, 'chat', { text: 'hello' });
    assert.equal(first.ok, true, JSON.stringify(first));
    assert.equal((await apiPublish(haproxy.httpUrl, { channel: CHANNEL, event: 'chat', data: { text: 'from the API' } })).status, 200);
    await waitFor(() => got.every((g) => g.length === 2), { what: 'both publications at every subscriber' });
    // Recovery from history: a subscriber that was away.
    assert.equal((await call(onB, 'unsubscribe', CHANNEL)).ok, true);
    const back = await call(onB, 'subscribe', CHANNEL, { since: first.id });
    assert.equal(back.ok, true, JSON.stringify(back));
    assert.equal((await call(viaHaproxy, 'rpc', 'ping', {})).result, 'pong');
    await sseUntil(
      `${b.url}/sse?channel=${CHANNEL}`,
      () => apiPublish(a.url, { channel: CHANNEL, event: 'sse-test', data: {} }),
      /event: sse-test/,
    );
    const foreign = await fetch(`${a.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://evil.example' } });
    assert.equal(foreign.status, 403, 'a foreign origin is refused');
    await badFrame(b);
    const bad = await apiPublish(a.url, { channel: CHANNEL }, 'test-key-0123456789abcdef');
    assert.equal(bad.status, 400, 'a publish without an event is bad input');
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    await prom?.stop();
    await haproxy?.stop();
    for (const n of nodes) await n.stop();
    await redis?.stop();
    await backend?.stop();
  });

  /** Waits until Prometheus has scraped every target after `since` (seconds) and evaluated its rules after that. */
  async function scrapedAndEvaluatedAfter(since: number) {
    await waitFor(
      async () => {
        const targets: { lastScrape: string; health: string }[] = (await prom!.api('targets', { state: 'active' })).activeTargets;
        const groups: { lastEvaluation: string }[] = (await prom!.api('rules')).groups;
        const after = (iso: string) => Date.parse(iso) / 1000 > since;
        return targets.every((t) => after(t.lastScrape)) && groups.every((g) => after(g.lastEvaluation));
      },
      { timeout: 15_000, interval: 200, what: 'a scrape of every target and a rule evaluation after the traffic' },
    );
  }

  test('every panel query of every dashboard returns data, with the variables filled in as Grafana does', async (t) => {
    if (skip) {
      requireOptional(t, 'prometheus', 'apt-get install -y prometheus');
      return;
    }
    await scrapedAndEvaluatedAfter(Date.now() / 1000 + SCRAPE_S);
    const end = Date.now() / 1000;
    // Grafana on a short range: $__interval is the scrape interval (its floor), and
    // $__rate_interval = max($__interval + scrape interval, 4 × scrape interval).
    const step = SCRAPE_S;
    const builtins = {
      __interval: `${step}s`,
      __rate_interval: `${Math.max(step + SCRAPE_S, 4 * SCRAPE_S)}s`,
      __range: `${Math.ceil(end - trafficStart)}s`,
    };
    const empty: string[] = [];
    let queries = 0;
    for (const { file, json } of loadDashboards()) {
      const vars = { ...builtins, ...(await resolveVariables(prom!, json, trafficStart, end)) };
      for (const panel of allPanels(json)) {
        for (const target of panel.targets ?? []) {
          const expr = fill(target.expr, vars);
          queries++;
          const series = await prom!.queryRange(expr, trafficStart, end, step);
          // Data: a number somewhere in the range (NaN, as from 0/0 or a quantile without observations, is "No data").
          if (!series.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v)))))
            empty.push(`${file} "${panel.title}" ${target.refId}: ${expr}`);
        }
      }
    }
    assert.ok(queries > 100, `ran ${queries} panel queries`);
    assert.deepEqual(empty, [], 'panels without data');
    // And the panels show this traffic, not only zeros.
    const total = async (expr: string) => Number((await prom!.query(expr))[0]?.value[1] ?? 0);
    assert.ok((await total('sum(switchboard_rejections_total{reason="origin"})')) >= 1, 'the refused origin is counted');
    const reasons = await prom!.query('sum by (reason) (switchboard_disconnects_total) > 0');
    assert.ok(
      (await total('sum(switchboard_disconnects_total{reason="parse_error"})')) >= 1,
      `the bad frame is counted: ${JSON.stringify(reasons)}`,
    );
    assert.ok((await total('sum(switchboard_deliveries_total{transport="sse"})')) >= 1, 'the SSE delivery is counted');
    assert.ok((await total('sum(switchboard_webhook_requests_total{hook="rpc",outcome="ok"})')) >= 1, 'the RPC webhook is counted');
    assert.ok((await total('sum(switchboard_history_replays_total)')) >= 1, 'the recovery from history is counted');
    // The fence for the alert test: rules were evaluated over all of this, and none of its alerts is active yet.
    const active = (await prom!.alerts()).filter((a) => FAULT_ALERTS.includes(a.labels.alertname!));
    assert.deepEqual(active, [], 'no fault alert on a healthy cluster');
  });

  test('a failing webhook, a node killed with SIGKILL and a hung Redis fire their alerts', async (t) => {
    if (skip) {
      requireOptional(t, 'prometheus', 'apt-get install -y prometheus');
      return;
    }
    const [a, b] = nodes as [TestNode, TestNode];
    const firing = (name: string, labels: Record<string, string>) => async () => {
      const alerts: PromAlert[] = await prom!.alerts();
      return alerts.find(
        (x) => x.labels.alertname === name && x.state === 'firing' && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
      );
    };

    backend!.rpcFails = true;
    for (let i = 0; i < 3; i++) {
      const r = await call(clients[0]!, 'rpc', 'ping', {});
      assert.equal(r.ok, false, 'the RPC fails while the backend does');
    }
    const webhook = await waitFor(firing('SwitchboardWebhookErrors', { hook: 'rpc' }), {
      timeout: 20_000,
      interval: 250,
      what: 'SwitchboardWebhookErrors firing',
    });
    assert.equal(webhook.labels.severity, 'warning');

    b.kill('SIGKILL');
    await b.exited;
    redis!.signal('SIGSTOP');
    const down = await waitFor(firing('SwitchboardNodeDown', { instance: `127.0.0.1:${b.internalPort}` }), {
      timeout: 20_000,
      interval: 250,
      what: 'SwitchboardNodeDown firing',
    });
    assert.equal(down.labels.job, 'switchboard');
    const bus = await waitFor(firing('SwitchboardBusCanaryFailing', { node: a.id }), {
      timeout: 20_000,
      interval: 250,
      what: 'SwitchboardBusCanaryFailing firing',
    });
    assert.equal(bus.labels.severity, 'critical');
    redis!.signal('SIGCONT');
  });
});
