// PromQL that operators run, checked by promtool: the alert rules fire on the situations they name
// and stay quiet otherwise (`promtool test rules` over synthetic series), the rules file loads, and
// every dashboard query parses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireOptional } from '../helpers/prereq.js';
import { alertRules, allPanels, loadDashboards, loadRules, rulesFile } from '../helpers/ops.js';

const PROMTOOL_INSTALL = 'apt-get install -y prometheus';
const J = 'job="switchboard"';

interface Case {
  /** Series in promtool's expanding notation, sampled every minute. */
  series: Record<string, string>;
  evalTime: string;
  /** Label sets of the alerts expected to fire at evalTime (rule labels included). */
  firing: Record<string, string>[];
}

/** Per alert: what should fire, and series that look alike but must not. */
const CASES: Record<string, Case[]> = {
  SwitchboardNodeDown: [
    {
      series: {
        'up{job="switchboard",instance="n1:9090"}': '1 1 0x5',
        'up{job="switchboard",instance="n2:9090"}': '1x7',
        // Another job's target being down is not a Switchboard node.
        'up{job="haproxy",instance="h1:8404"}': '0x7',
      },
      evalTime: '5m',
      firing: [{ severity: 'warning', job: 'switchboard', instance: 'n1:9090' }],
    },
    // A scrape missed once does not page.
    { series: { 'up{job="switchboard",instance="n1:9090"}': '1 0 1 1 1 1' }, evalTime: '5m', firing: [] },
  ],
  SwitchboardNodeNotReady: [
    {
      series: {
        [`switchboard_ready{${J},node="a"}`]: '0x10',
        [`switchboard_draining{${J},node="a"}`]: '0x10',
        // Draining nodes are unready on purpose.
        [`switchboard_ready{${J},node="b"}`]: '0x10',
        [`switchboard_draining{${J},node="b"}`]: '1x10',
        [`switchboard_ready{${J},node="c"}`]: '1x10',
        [`switchboard_draining{${J},node="c"}`]: '0x10',
      },
      evalTime: '5m',
      firing: [{ severity: 'warning', job: 'switchboard', node: 'a' }],
    },
    // A blip shorter than `for` does not page.
    {
      series: { [`switchboard_ready{${J},node="a"}`]: '1 0 1 1 1 1', [`switchboard_draining{${J},node="a"}`]: '0x5' },
      evalTime: '5m',
      firing: [],
    },
  ],
  SwitchboardBusCanaryFailing: [
    {
      series: {
        [`switchboard_bus_canary_failures_total{${J},node="a"}`]: '0+1x20',
        [`switchboard_bus_canary_failures_total{${J},node="b"}`]: '3x20',
      },
      evalTime: '15m',
      firing: [{ severity: 'critical', job: 'switchboard', node: 'a' }],
    },
  ],
  SwitchboardDeliveryGaps: [
    {
      series: {
        [`switchboard_bus_gaps_total{${J},node="a"}`]: '0 0 0 0 4 4 4 4 4 4',
        [`switchboard_bus_gaps_total{${J},node="b"}`]: '2x10',
      },
      evalTime: '6m',
      firing: [{ severity: 'warning', job: 'switchboard', node: 'a' }],
    },
    // Old gaps age out.
    { series: { [`switchboard_bus_gaps_total{${J},node="a"}`]: '0 4x30' }, evalTime: '25m', firing: [] },
  ],
  SwitchboardRedisShardFailed: [
    {
      // Every node sees the same failed shard; one alert for the deployment.
      series: {
        [`switchboard_bus_shards{${J},node="a",state="failed"}`]: '0 0 1x10',
        [`switchboard_bus_shards{${J},node="b",state="failed"}`]: '0 0 1x10',
        [`switchboard_bus_shards{${J},node="a",state="ready"}`]: '3 3 2x10',
      },
      evalTime: '6m',
      firing: [{ severity: 'critical', job: 'switchboard' }],
    },
    // A failover that completes within the minute does not page.
    { series: { [`switchboard_bus_shards{${J},node="a",state="failed"}`]: '0 1 0x10' }, evalTime: '6m', firing: [] },
  ],
  SwitchboardChannelStateLost: [
    {
      series: {
        [`switchboard_bus_epoch_resets_total{${J},node="a",reason="state_lost"}`]: '0 0 0 3x10',
        [`switchboard_bus_epoch_resets_total{${J},node="a",reason="sequence_reused"}`]: '0x13',
        [`switchboard_bus_epoch_resets_total{${J},node="b",reason="state_lost"}`]: '0x13',
      },
      evalTime: '5m',
      firing: [{ severity: 'warning', job: 'switchboard', node: 'a' }],
    },
    // Old resets age out.
    { series: { [`switchboard_bus_epoch_resets_total{${J},node="a",reason="state_lost"}`]: '0 2x30' }, evalTime: '25m', firing: [] },
  ],
  SwitchboardDeliveryLatencyHigh: [
    {
      // 10 deliveries/s, all between 250 ms and 500 ms.
      series: {
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="0.1"}`]: '0x20',
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="0.25"}`]: '0x20',
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="0.5"}`]: '0+600x20',
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="+Inf"}`]: '0+600x20',
        [`switchboard_delivery_latency_seconds_count{${J},node="a"}`]: '0+600x20',
      },
      evalTime: '18m',
      firing: [{ severity: 'warning', job: 'switchboard' }],
    },
    {
      // Fast deliveries.
      series: {
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="0.1"}`]: '0+600x20',
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="0.25"}`]: '0+600x20',
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="0.5"}`]: '0+600x20',
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="+Inf"}`]: '0+600x20',
        [`switchboard_delivery_latency_seconds_count{${J},node="a"}`]: '0+600x20',
      },
      evalTime: '18m',
      firing: [],
    },
    {
      // Slow, but one delivery a minute: too little traffic to page on.
      series: {
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="0.25"}`]: '0x20',
        [`switchboard_delivery_latency_seconds_bucket{${J},node="a",le="+Inf"}`]: '0+1x20',
        [`switchboard_delivery_latency_seconds_count{${J},node="a"}`]: '0+1x20',
      },
      evalTime: '18m',
      firing: [],
    },
  ],
  SwitchboardWebhookErrors: [
    {
      series: {
        [`switchboard_webhook_requests_total{${J},node="a",hook="connect",outcome="ok"}`]: '0+60x15',
        [`switchboard_webhook_requests_total{${J},node="a",hook="connect",outcome="timeout"}`]: '0+30x15',
        [`switchboard_webhook_requests_total{${J},node="a",hook="subscribe",outcome="ok"}`]: '0+600x15',
        [`switchboard_webhook_requests_total{${J},node="a",hook="subscribe",outcome="403"}`]: '0+1x15',
      },
      evalTime: '12m',
      firing: [{ severity: 'warning', job: 'switchboard', hook: 'connect' }],
    },
  ],
  SwitchboardSlowConsumerClosesSpiking: [
    {
      series: {
        [`switchboard_disconnects_total{${J},node="a",reason="slow_consumer"}`]: '0+120x15',
        [`switchboard_disconnects_total{${J},node="b",reason="slow_consumer"}`]: '0+60x15',
      },
      evalTime: '12m',
      firing: [{ severity: 'warning', job: 'switchboard' }],
    },
    // Other reasons don't count.
    { series: { [`switchboard_disconnects_total{${J},node="a",reason="transport close"}`]: '0+600x15' }, evalTime: '12m', firing: [] },
  ],
  SwitchboardDrainStuck: [
    {
      series: {
        [`switchboard_draining{${J},node="a"}`]: '0 0 1x10',
        // A normal drain: the node is gone within a minute.
        [`switchboard_draining{${J},node="b"}`]: '0 0 1',
      },
      evalTime: '10m',
      firing: [{ severity: 'warning', job: 'switchboard', node: 'a' }],
    },
  ],
  HAProxyBackendDown: [
    {
      series: {
        'haproxy_backend_active_servers{job="haproxy",instance="h1",proxy="nodes"}': '3 3 0x5',
        'haproxy_backend_active_servers{job="haproxy",instance="h2",proxy="nodes"}': '3x7',
        // A backend without servers of its own (HAProxy's sid table) is not an outage.
        'haproxy_backend_active_servers{job="haproxy",instance="h1",proxy="sb_sessions"}': '0x7',
      },
      evalTime: '5m',
      firing: [{ severity: 'critical', job: 'haproxy', instance: 'h1', proxy: 'nodes' }],
    },
  ],
};

test('promtool check rules accepts k8s/alerts/switchboard-rules.yml', (t) => {
  if (!requireOptional(t, 'promtool', PROMTOOL_INSTALL)) return;
  const r = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /SUCCESS: \d+ rules found/);
});

test('every alert fires on its situation and stays quiet on look-alikes (promtool test rules)', async (t) => {
  if (!requireOptional(t, 'promtool', PROMTOOL_INSTALL)) return;
  const rules = await loadRules();
  const alerts = alertRules(rules);
  assert.deepEqual(alerts.map((a) => a.alert).sort(), Object.keys(CASES).sort(), 'a case for every alert');
  const dir = mkdtempSync(join(tmpdir(), 'sb-alerts-'));
  try {
    // The same rules without annotations: promtool compares annotations verbatim, and their
    // wording is not what this test is about (k8s.test.ts checks that they are there).
    const bare = { groups: rules.groups.map((g: any) => ({ ...g, rules: g.rules.map(({ annotations: _a, ...r }: any) => r) })) };
    writeFileSync(join(dir, 'rules.json'), JSON.stringify(bare));
    const tests = Object.entries(CASES).flatMap(([alertname, cases]) =>
      cases.map((c) => ({
        interval: '1m',
        input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
        alert_rule_test: [{ eval_time: c.evalTime, alertname, exp_alerts: c.firing.map((labels) => ({ exp_labels: labels })) }],
      })),
    );
    // JSON is YAML: promtool reads both files as they are.
    writeFileSync(join(dir, 'tests.json'), JSON.stringify({ rule_files: ['rules.json'], evaluation_interval: '1m', tests }));
    const r = spawnSync('promtool', ['test', 'rules', join(dir, 'tests.json')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool test rules failed:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every dashboard query is valid PromQL once Grafana has filled in its variables', (t) => {
  if (!requireOptional(t, 'promtool', PROMTOOL_INSTALL)) return;
  const rules: { record: string; expr: string }[] = [];
  for (const { json } of loadDashboards()) {
    for (const p of allPanels(json)) {
      for (const tg of p.targets ?? []) {
        const expr = (tg.expr as string).replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$(\w+)/g, '.*');
        rules.push({ record: `dashboard:${json.uid.replace(/-/g, '_')}:${p.id}_${tg.refId}`, expr });
      }
    }
  }
  assert.ok(rules.length > 100);
  const dir = mkdtempSync(join(tmpdir(), 'sb-dashboards-'));
  try {
    const file = join(dir, 'dashboards.json');
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboards', rules }] }));
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool rejected a dashboard query:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
