// Every object `kubectl kustomize` renders from k8s/ and its overlays is valid against the Kubernetes API
// schemas (and the Prometheus Operator's for ServiceMonitor and PrometheusRule), unknown fields included:
// a typo that kustomize renders without a word fails here rather than at `kubectl apply`.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireOptional } from '../helpers/prereq.js';
import { KUBECTL_INSTALL, k8sDir, kustomize } from '../helpers/ops.js';
import { validateObject } from '../helpers/k8s-schema.js';

const overlays = join(k8sDir, 'overlays');
const targets = [
  k8sDir,
  ...readdirSync(overlays, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(overlays, e.name)),
];

const renders = new Map<string, Promise<any[]>>();
async function render(t: TestContext, dir: string): Promise<any[] | undefined> {
  if (!requireOptional(t, 'kubectl', KUBECTL_INSTALL)) return undefined;
  if (!renders.has(dir)) renders.set(dir, kustomize(dir));
  return renders.get(dir)!;
}

for (const dir of targets) {
  const name = dir === k8sDir ? 'k8s' : `k8s/${dir.slice(k8sDir.length + 1)}`;
  test(`kubectl kustomize ${name}: every object is valid against its API schema, with no unknown field`, async (t) => {
    const objs = await render(t, dir);
    if (!objs) return;
    assert.ok(objs.length > 10, `${objs.length} objects rendered`);
    const problems: string[] = [];
    for (const o of objs) for (const p of await validateObject(o)) problems.push(`${o.kind}/${o.metadata?.name}: ${p}`);
    assert.deepEqual(problems, []);
  });
}

describe('the schema check catches what kustomize lets through', () => {
  /** A rendered object of this kind, deep-copied, to break. */
  async function copyOf(t: TestContext, kind: string): Promise<any> {
    const objs = await render(t, k8sDir);
    if (!objs) return undefined;
    const o = objs.find((x) => x.kind === kind);
    assert.ok(o, `k8s renders a ${kind}`);
    assert.deepEqual(await validateObject(o), [], `the rendered ${kind} is valid to begin with`);
    return structuredClone(o);
  }

  test('a misspelt field (unknown to the schema, silently dropped by the API server)', async (t) => {
    const sts = await copyOf(t, 'StatefulSet');
    if (!sts) return;
    const c = sts.spec.template.spec.containers[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    assert.deepEqual(await validateObject(sts), ['/spec/template/spec/containers/0/readinesProbe is not a field of apps/v1 StatefulSet']);
  });

  test('a wrong type, a bad enum value and a missing required field', async (t) => {
    const deploy = await copyOf(t, 'Deployment');
    if (!deploy) return;
    deploy.spec.replicas = 'two';
    assert.match((await validateObject(deploy)).join('\n'), /\/spec\/replicas must be integer/);
    const svc = await copyOf(t, 'Service');
    svc.spec.ports[0].protocol = 'HTTP';
    assert.match((await validateObject(svc)).join('\n'), /\/spec\/ports\/0\/protocol must be equal to one of the allowed values/);
    const sts = await copyOf(t, 'StatefulSet');
    delete sts.spec.template.spec.containers;
    assert.match((await validateObject(sts)).join('\n'), /containers/);
  });

  test("the Prometheus Operator's kinds: a ServiceMonitor endpoint typo, a PrometheusRule without expr", async (t) => {
    const sm = await copyOf(t, 'ServiceMonitor');
    if (!sm) return;
    sm.spec.endpoints[0].scrapeIntervall = '5s';
    assert.deepEqual(await validateObject(sm), [
      '/spec/endpoints/0/scrapeIntervall is not a field of monitoring.coreos.com/v1 ServiceMonitor',
    ]);
    const rule = await copyOf(t, 'PrometheusRule');
    delete rule.spec.groups[0].rules[0].expr;
    assert.match((await validateObject(rule)).join('\n'), /expr/);
  });

  test('a kind without a schema is reported, not skipped', async () => {
    assert.match(
      String(
        await validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }).catch((e: Error) => e.message),
      ),
      /no schema for apiVersion example\.com\/v1, kind Widget/,
    );
  });
});
