// /metrics as Prometheus, the dashboards and the alerts see it: a real node behind a real HAProxy,
// real socket.io-client traffic, and every metric the dashboards and alerts query really exposed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startNode, type TestNode } from '../helpers/node.js';
import { startHaproxy, type TestHaproxy } from '../helpers/haproxy.js';
import { apiPublish, call, collect, connect, type Client } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { requireOptional } from '../helpers/prereq.js';
import {
  alertRules,
  dashboardExprs,
  isExposed,
  loadDashboards,
  loadRules,
  metricNames,
  metricTypes,
  parseSamples,
  rulesFile,
  sumOf,
  type Sample,
} from '../helpers/ops.js';

const PROMTOOL_INSTALL = 'apt-get install -y prometheus';

async function scrape(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, `GET ${url}`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  return res.text();
}

/** Every query of the dashboards and alerts, with where it comes from. */
async function allQueries(): Promise<{ where: string; expr: string }[]> {
  const out: { where: string; expr: string }[] = [];
  for (const { file, json } of loadDashboards()) for (const expr of dashboardExprs(json)) out.push({ where: file, expr });
  for (const r of alertRules(await loadRules())) out.push({ where: `alert ${r.alert}`, expr: r.expr });
  return out;
}

describe('metrics', () => {
  let node: TestNode;
  let haproxy: TestHaproxy;
  let client: Client | undefined;
  /** Scrapes before and after the traffic. */
  let before0: Sample[];
  let after1: Sample[];
  let nodeText: string;
  let haproxyText: string;

  before(async () => {
    node = await startNode();
    haproxy = await startHaproxy({ servers: [{ id: node.id, port: node.port, internalPort: node.internalPort }] });
    before0 = parseSamples(await scrape(`${node.internalUrl}/metrics`));

    // One client through HAProxy: connect, subscribe, receive a publication made over the HTTP API.
    client = await connect(haproxy.httpUrl, { transports: ['websocket'] });
    const got = collect(client);
    const ack = await call(client, 'subscribe', 'room:a', {});
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const pub = await apiPublish(haproxy.httpUrl, { channel: 'room:a', event: 'e', data: { n: 1 } });
    assert.equal(pub.status, 200, JSON.stringify(pub.body));
    await waitFor(() => got.length === 1, { what: 'the publication to arrive' });
    assert.deepEqual(got[0]!.data, { n: 1 });

    nodeText = await scrape(`${node.internalUrl}/metrics`);
    after1 = parseSamples(nodeText);
    haproxyText = await scrape(haproxy.metricsUrl);
  });

  after(async () => {
    client?.disconnect();
    await haproxy?.stop();
    await node?.stop();
  });

  test('a fresh node already has a series for every counter and histogram the dashboards and alerts query', async () => {
    const types = metricTypes(nodeText);
    const missing: string[] = [];
    for (const { where, expr } of await allQueries()) {
      for (const name of metricNames(expr, ['switchboard_'])) {
        const family = name.replace(/_(bucket|sum|count)$/, '');
        const type = types.get(name) ?? types.get(family);
        if (type !== 'counter' && type !== 'histogram') continue;
        const sample = type === 'histogram' ? `${family}_count` : name;
        if (!before0.some((s) => s.name === sample)) missing.push(`${name} (${where})`);
      }
    }
    assert.deepEqual([...new Set(missing)], [], 'no series before the first event');
    // The label values alerts and panels select on, at 0 (so `increase()` sees the first one).
    const zero = (name: string, labels: Record<string, string>) => {
      const s = before0.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
      assert.ok(s, `${name}${JSON.stringify(labels)} exists on a fresh node`);
      assert.equal(s.value, 0, `${name}${JSON.stringify(labels)} starts at 0`);
    };
    zero('switchboard_app_errors_total', { hook: 'authorizeSubscribe' });
    zero('switchboard_rejections_total', { reason: 'origin' });
    zero('switchboard_bad_input_total', { kind: 'http_400' });
    zero('switchboard_disconnects_total', { reason: 'slow_consumer' });
    zero('switchboard_dropped_messages_total', { reason: 'slow_consumer' });
    zero('switchboard_history_replays_total', { recovered: 'false' });
    zero('switchboard_webhook_requests_total', { hook: 'rpc', outcome: 'server_error' });
    zero('switchboard_webhook_requests_total', { hook: 'connect', outcome: 'ok' });
    zero('switchboard_webhook_duration_seconds_count', { hook: 'rpc' });
    zero('switchboard_webhook_duration_seconds_bucket', { hook: 'connect', le: '+Inf' });
    zero('switchboard_http_requests_total', { route: 'publish', status: '503' });
  });

  test('connections, publications, deliveries and the latency histogram move with the traffic', () => {
    const delta = (name: string, labels: Record<string, string> = {}) => sumOf(after1, name, labels) - sumOf(before0, name, labels);
    assert.equal(delta('switchboard_connections'), 1, 'one more connection');
    assert.equal(delta('switchboard_connections', { transport: 'websocket' }), 1);
    assert.equal(delta('switchboard_handshakes_total', { outcome: 'ok' }), 1);
    assert.equal(delta('switchboard_client_events_total', { event: 'subscribe', outcome: 'ok' }), 1);
    assert.equal(delta('switchboard_subscriptions'), 1);
    assert.equal(delta('switchboard_publications_total', { source: 'http' }), 1, 'one publication over the HTTP API');
    assert.equal(delta('switchboard_deliveries_total'), 1, 'delivered to one subscriber');
    assert.equal(delta('switchboard_delivery_latency_seconds_count'), 1, 'one latency observation');
    assert.ok(delta('switchboard_delivery_latency_seconds_sum') >= 0);
    assert.equal(sumOf(after1, 'switchboard_ready'), 1);
    assert.equal(sumOf(after1, 'switchboard_draining'), 0);
    // Every sample carries the node label the dashboards group by.
    for (const s of after1) assert.equal(s.labels.node, node.id, `${s.name} has node="${node.id}"`);
  });

  test('the connection count falls back when the client leaves, and the reason is counted', async () => {
    const reasonsBefore = sumOf(parseSamples(await scrape(`${node.internalUrl}/metrics`)), 'switchboard_disconnects_total');
    client!.disconnect();
    client = undefined;
    const now = await waitFor(
      async () => {
        const s = parseSamples(await scrape(`${node.internalUrl}/metrics`));
        return sumOf(s, 'switchboard_connections') === sumOf(before0, 'switchboard_connections') ? s : undefined;
      },
      { what: 'switchboard_connections back to its value before the test' },
    );
    assert.equal(sumOf(now, 'switchboard_disconnects_total') - reasonsBefore, 1);
  });

  test('every switchboard_*, nodejs_* and process_* metric the dashboards and alerts query is on /metrics', async () => {
    const types = metricTypes(nodeText);
    const missing: string[] = [];
    let checked = 0;
    for (const { where, expr } of await allQueries()) {
      for (const name of metricNames(expr, ['switchboard_', 'nodejs_', 'process_'])) {
        checked++;
        if (!isExposed(name, types)) missing.push(`${name} (${where})`);
      }
    }
    assert.ok(checked > 50, `checked ${checked} references`);
    assert.deepEqual([...new Set(missing)], [], 'metrics queried but not exposed');
  });

  test("every haproxy_* metric the dashboards and alerts query is in HAProxy's exporter, for backend nodes", async () => {
    const types = metricTypes(haproxyText);
    const missing: string[] = [];
    let checked = 0;
    for (const { where, expr } of await allQueries()) {
      for (const name of metricNames(expr, ['haproxy_'])) {
        checked++;
        if (!isExposed(name, types)) missing.push(`${name} (${where})`);
      }
    }
    assert.ok(checked > 20, `checked ${checked} references`);
    assert.deepEqual([...new Set(missing)], [], 'HAProxy metrics queried but not exported');
    // The label values the alert selects on: the backend of haproxy.cfg is `nodes`, with our node UP.
    const samples = parseSamples(haproxyText);
    const backendDown = alertRules(await loadRules()).find((r) => r.alert === 'HAProxyBackendDown');
    const proxy = /proxy="([^"]+)"/.exec(backendDown.expr)?.[1];
    assert.equal(sumOf(samples, 'haproxy_backend_active_servers', { proxy: proxy! }), 1, `backend ${proxy} has one active server`);
    assert.equal(sumOf(samples, 'haproxy_server_status', { proxy: proxy!, server: node.id, state: 'UP' }), 1);
    assert.ok(sumOf(samples, 'haproxy_frontend_http_requests_total', { proxy: 'edge' }) >= 2, 'the traffic went through HAProxy');
  });

  test('promtool check rules passes on the alerts, and promtool check metrics on the scrape', (t) => {
    if (!requireOptional(t, 'promtool', PROMTOOL_INSTALL)) return;
    const rules = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
    assert.equal(rules.status, 0, rules.stdout + rules.stderr);
    // Exit 3 is lint findings, 1 a format error. prom-client's own default metrics have findings
    // (gauges named *_total), which are not ours to fix; Switchboard's metrics must have none.
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: nodeText, encoding: 'utf8' });
    assert.ok(lint.status === 0 || lint.status === 3, `promtool check metrics: exit ${lint.status}\n${lint.stdout}${lint.stderr}`);
    const ours = `${lint.stdout}${lint.stderr}`.split('\n').filter((l) => l.includes('switchboard_'));
    assert.deepEqual(ours, [], 'lint findings on switchboard_* metrics');
    const others = `${lint.stdout}${lint.stderr}`.split('\n').filter((l) => l.trim() !== '');
    for (const l of others) assert.match(l, /^(nodejs_|process_)/, `only prom-client defaults may have findings: ${l}`);
  });
});
