// The latency histograms observed once per publication are Switchboard's own (no per-call label hashing); what a
// scrape shows must be exactly what prom-client's Histogram shows for the same observations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import client from 'prom-client';
import { createMetrics, LatencyHistogram } from '../../src/metrics/metrics.js';

const BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
// On a bound, between bounds, below the first, above the last, zero; and values a histogram must not take.
const VALUES = [0, 0.0005, 0.0007, 0.001, 0.003, 0.003, 0.04, 0.2, 1, 4.9, 5, 7.5, 120];

function registries() {
  const ours = new client.Registry();
  const theirs = new client.Registry();
  for (const r of [ours, theirs]) r.setDefaultLabels({ node: 'n-1' });
  const h = new LatencyHistogram('t_latency_seconds', 'Latency of a test', BOUNDS, ours);
  const p = new client.Histogram({ name: 't_latency_seconds', help: 'Latency of a test', buckets: BOUNDS, registers: [theirs] });
  return { ours, theirs, h, p };
}

test('a scrape shows the same text as prom-client’s histogram, before and after observations', async () => {
  const { ours, theirs, h, p } = registries();
  assert.equal(await ours.metrics(), await theirs.metrics());
  for (const v of VALUES) {
    h.observe(v);
    p.observe(v);
  }
  const text = await ours.metrics();
  assert.equal(text, await theirs.metrics());
  assert.match(text, /t_latency_seconds_bucket\{le="0.001",node="n-1"\} 4\n/);
  assert.match(text, /t_latency_seconds_bucket\{le="\+Inf",node="n-1"\} 13\n/);
  assert.match(text, /t_latency_seconds_count\{node="n-1"\} 13/);
  // As JSON (what an aggregating registry or a test reads), exemplars aside: ours never has one, prom-client's is null.
  const json = async (r: client.Registry) =>
    JSON.parse(JSON.stringify(await r.getMetricsAsJSON(), (k, v: unknown) => (k === 'exemplar' ? undefined : v))) as unknown;
  assert.deepEqual(await json(ours), await json(theirs));
});

test('a value that is not a finite number is not counted; reset empties it', async () => {
  const { ours, theirs, h, p } = registries();
  h.observe(0.002);
  p.observe(0.002);
  h.observe(Number.NaN);
  h.observe(Number.POSITIVE_INFINITY);
  assert.equal(await ours.metrics(), await theirs.metrics());
  ours.resetMetrics();
  theirs.resetMetrics();
  // prom-client's reset drops the series until the next observation; ours keeps zeros — both say nothing was seen.
  assert.match(await ours.metrics(), /t_latency_seconds_count\{node="n-1"\} 0/);
  h.observe(0.03);
  p.observe(0.03);
  assert.equal(await ours.metrics(), await theirs.metrics());
});

test('the node’s bus and delivery latency are these histograms, on its registry', async () => {
  const m = createMetrics('n-2');
  m.busLatency.observe(0.004);
  m.deliveryLatency.observe(0.006);
  m.deliveryLatency.observe(0.3);
  const text = await m.registry.metrics();
  assert.match(text, /# TYPE switchboard_bus_latency_seconds histogram/);
  assert.match(text, /switchboard_bus_latency_seconds_bucket\{le="0.005",node="n-2"\} 1\n/);
  assert.match(text, /switchboard_delivery_latency_seconds_bucket\{le="0.01",node="n-2"\} 1\n/);
  assert.match(text, /switchboard_delivery_latency_seconds_count\{node="n-2"\} 2\n/);
  assert.match(text, /switchboard_delivery_latency_seconds_sum\{node="n-2"\} 0.306\n/);
});
