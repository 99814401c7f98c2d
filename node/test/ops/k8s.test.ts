// The Kubernetes manifests, dashboards and alert rules, as operators rely on them: rendered with
// `kubectl kustomize` (offline) and checked object by object.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../helpers/node.js';
import { requireOptional } from '../helpers/prereq.js';
import { parseYaml } from '../helpers/yaml.js';
import {
  allPanels,
  alertRules,
  dashboardExprs,
  findObject,
  k8sDir,
  loadDashboards,
  loadRules,
  renderK8s,
  withoutServerDiscovery,
} from '../helpers/ops.js';

const NAMESPACE = 'switchboard';
const NODE_LABELS = { 'app.kubernetes.io/name': 'switchboard', 'app.kubernetes.io/component': 'node' };
const HAPROXY_LABELS = { 'app.kubernetes.io/name': 'switchboard', 'app.kubernetes.io/component': 'haproxy' };
const REDIS_LABELS = { 'app.kubernetes.io/name': 'switchboard', 'app.kubernetes.io/component': 'redis' };
const REQUIRED_ALERTS = [
  'SwitchboardNodeDown',
  'SwitchboardNodeNotReady',
  'SwitchboardBusCanaryFailing',
  'SwitchboardDeliveryGaps',
  'SwitchboardRedisShardFailed',
  'SwitchboardChannelStateLost',
  'SwitchboardDeliveryLatencyHigh',
  'SwitchboardWebhookErrors',
  'SwitchboardSlowConsumerClosesSpiking',
  'SwitchboardDrainStuck',
  'HAProxyBackendDown',
];

/** The rendered objects of k8s/ (base) or k8s/overlays/local; skips where kubectl is missing. */
const render = (t: TestContext, which: 'base' | 'local') => renderK8s(t, which === 'base' ? '' : 'overlays/local');
const find = findObject;
const workloads = (objs: any[]) => objs.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind));
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);
/** A ConfigMap as it is rendered (its name carries kustomize's hash suffix). */
const configMap = (objs: any[], base: string) => {
  const cm = objs.find((o) => o.kind === 'ConfigMap' && (o.metadata.name === base || o.metadata.name.startsWith(`${base}-`)));
  assert.ok(cm, `ConfigMap ${base} is rendered`);
  return cm;
};
/** The seconds of a `sleep N` command, else NaN. */
const sleepSeconds = (cmd: string[] | undefined) => (cmd?.[0] === 'sleep' ? Number(cmd[1]) : NaN);

for (const which of ['base', 'local'] as const) {
  describe(`kubectl kustomize ${which === 'base' ? 'k8s' : 'k8s/overlays/local'}`, () => {
    test('renders offline, every object in namespace switchboard', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const kinds = new Set(objs.map((o) => o.kind));
      for (const k of [
        'Namespace',
        'ConfigMap',
        'Secret',
        'StatefulSet',
        'Deployment',
        'Service',
        'PodDisruptionBudget',
        'NetworkPolicy',
        'ServiceMonitor',
        'PrometheusRule',
      ]) {
        assert.ok(kinds.has(k), `renders a ${k}`);
      }
      find(objs, 'Namespace', NAMESPACE);
      for (const o of objs)
        if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, NAMESPACE, `${o.kind}/${o.metadata.name} namespace`);
      const names = objs.map((o) => `${o.kind}/${o.metadata.name}`);
      assert.equal(new Set(names).size, names.length, 'no object rendered twice');
    });

    test('nodes: named ports, /healthz liveness and /readyz readiness on the internal port, NODE_ID from the pod name', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const sts = find(objs, 'StatefulSet', 'switchboard-node');
      const c = sts.spec.template.spec.containers[0];
      assert.deepEqual(
        c.ports.map((p: any) => [p.name, p.containerPort]),
        [
          ['public', 3000],
          ['internal', 9090],
        ],
      );
      assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'internal' });
      assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'internal' });
      const nodeId = c.env.find((e: any) => e.name === 'NODE_ID');
      assert.equal(nodeId?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
      assert.equal(c.command, undefined, "the image's CMD starts the server");
      // envFrom names resolve to rendered objects (kustomize rewrote the hashed ConfigMap name).
      for (const src of c.envFrom) {
        if (src.configMapRef) find(objs, 'ConfigMap', src.configMapRef.name);
        if (src.secretRef) find(objs, 'Secret', src.secretRef.name);
      }
      assert.ok(
        c.envFrom.findIndex((s: any) => s.secretRef) > c.envFrom.findIndex((s: any) => s.configMapRef),
        'Secret keys override ConfigMap keys',
      );
      const image: string = c.image;
      assert.match(image, which === 'base' ? /^switchboard:\d+\.\d+\.\d+$/ : /^switchboard:dev$/);
      if (which === 'local') assert.equal(c.imagePullPolicy, 'Never');
    });

    test('nodes: the grace period outlasts preStop, the drain window and the drain watchdog', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const sts = find(objs, 'StatefulSet', 'switchboard-node');
      const pod = sts.spec.template.spec;
      const c = pod.containers[0];
      const preStop = sleepSeconds(c.lifecycle?.preStop?.exec?.command);
      assert.ok(preStop > 0 && preStop < 30, `preStop sleeps a few seconds (got ${JSON.stringify(c.lifecycle?.preStop)})`);
      const cmName = c.envFrom.find((s: any) => s.configMapRef).configMapRef.name;
      const env = find(objs, 'ConfigMap', cmName).data;
      assert.ok(env.DRAIN_TIMEOUT_MS, 'DRAIN_TIMEOUT_MS is set explicitly in the ConfigMap');
      const drain = Number(env.DRAIN_TIMEOUT_MS) / 1000;
      const watchdog = Number(env.DRAIN_WATCHDOG_MS ?? 10000) / 1000;
      assert.ok(drain > 0 && Number.isFinite(watchdog));
      const delay = Number(env.DRAIN_DELAY_MS ?? 2000) / 1000;
      const grace = pod.terminationGracePeriodSeconds;
      assert.ok(
        grace > preStop + delay + drain + watchdog,
        `terminationGracePeriodSeconds ${grace} > preStop ${preStop} + delay ${delay} + drain ${drain} + watchdog ${watchdog}`,
      );
      assert.equal(env.PORT, '3000');
      assert.equal(env.INTERNAL_PORT, '9090');
      assert.match(env.REDIS_URL, /^redis:\/\/switchboard-redis:6379$/);
      find(objs, 'Service', 'switchboard-redis');
    });

    test('every workload is hardened: non-root, read-only root, no capabilities, no token, resources', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const all = workloads(objs);
      assert.deepEqual(all.map((w) => `${w.kind}/${w.metadata.name}`).sort(), [
        'Deployment/switchboard-haproxy',
        'StatefulSet/switchboard-node',
        'StatefulSet/switchboard-redis',
      ]);
      for (const w of all) {
        const name = `${w.kind}/${w.metadata.name}`;
        const pod = w.spec.template.spec;
        assert.equal(pod.automountServiceAccountToken, false, `${name} automountServiceAccountToken`);
        assert.equal(pod.securityContext?.runAsNonRoot, true, `${name} runAsNonRoot`);
        assert.ok(Number.isInteger(pod.securityContext?.runAsUser) && pod.securityContext.runAsUser > 0, `${name} numeric non-root uid`);
        assert.ok(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${name} selector matches its pods`);
        for (const c of pod.containers) {
          const sc = c.securityContext ?? {};
          assert.equal(sc.readOnlyRootFilesystem, true, `${name} readOnlyRootFilesystem`);
          assert.equal(sc.allowPrivilegeEscalation, false, `${name} allowPrivilegeEscalation`);
          assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${name} drops ALL capabilities`);
          assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${name} requests cpu and memory`);
          assert.ok(c.resources?.limits?.memory, `${name} limits memory`);
          assert.ok(c.readinessProbe, `${name} readiness probe`);
          assert.ok(c.livenessProbe, `${name} liveness probe`);
        }
      }
      const node = find(objs, 'StatefulSet', 'switchboard-node').spec.template.spec;
      assert.equal(node.securityContext.runAsUser, 10001);
      // The Dockerfile's user is the same uid, so files in the image belong to whoever runs it.
      const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
      assert.match(dockerfile, /^USER 10001(:10001)?$/m);
    });

    test('nodes and HAProxy spread across zones and hosts', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      for (const [kind, name, labels] of [
        ['StatefulSet', 'switchboard-node', NODE_LABELS],
        ['Deployment', 'switchboard-haproxy', HAPROXY_LABELS],
      ] as const) {
        const spread: any[] = find(objs, kind, name).spec.template.spec.topologySpreadConstraints;
        assert.deepEqual(spread.map((s: any) => s.topologyKey).sort(), ['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
        for (const s of spread) assert.ok(matches(s.labelSelector.matchLabels, labels), `${name} spreads its own pods`);
      }
    });

    test('HAProxy resolves each node by its pod name through the headless Service', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const sts = find(objs, 'StatefulSet', 'switchboard-node');
      const svc = find(objs, 'Service', sts.spec.serviceName);
      assert.equal(svc.spec.clusterIP, 'None', 'headless');
      assert.ok(matches(svc.spec.selector, sts.spec.template.metadata.labels), 'selects the nodes');
      assert.deepEqual(svc.spec.ports.map((p: any) => [p.name, p.port, p.targetPort]).sort(), [
        ['internal', 9090, 'internal'],
        ['public', 3000, 'public'],
      ]);
      const haproxy = find(objs, 'Deployment', 'switchboard-haproxy');
      const hc = haproxy.spec.template.spec.containers[0];
      const envOf = (n: string) => hc.env.find((e: any) => e.name === n);
      assert.equal(envOf('POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
      assert.equal(envOf('SB_NODES_SERVICE')?.value, `${svc.metadata.name}.$(POD_NAMESPACE).svc.cluster.local`);
      assert.ok(
        hc.env.findIndex((e: any) => e.name === 'POD_NAMESPACE') < hc.env.findIndex((e: any) => e.name === 'SB_NODES_SERVICE'),
        'POD_NAMESPACE is defined before it is referenced',
      );
      const servers = configMap(objs, 'switchboard-haproxy').data['servers.cfg'] as string;
      assert.match(servers, /^resolvers kubernetes\n\s+parse-resolv-conf$/m);
      const lines = [...servers.matchAll(/^\s+server (\S+) "([^"]+)" (.*)$/gm)];
      assert.ok(lines.length >= 3);
      const ids = new Set<string>();
      lines.forEach((m, i) => {
        assert.equal(m[2], `${sts.metadata.name}-${i}.\${SB_NODES_SERVICE}:3000`, `slot ${i + 1} is pod ${i}`);
        const opts = m[3]!;
        assert.match(opts, /\bresolvers kubernetes\b/);
        assert.match(opts, /\binit-addr none\b/, 'a pod that does not exist yet does not stop HAProxy from starting');
        assert.match(opts, /\bcheck port 9090\b/, 'health-checked on the internal port (/readyz)');
        const id = /\bid (\d+)\b/.exec(opts)?.[1];
        assert.equal(/\bcookie (\d+)\b/.exec(opts)?.[1], id, 'the sticky cookie is the server id');
        ids.add(id!);
      });
      assert.equal(ids.size, lines.length, 'server ids are unique');
      const hpa = objs.find((o) => o.kind === 'HorizontalPodAutoscaler');
      const max = hpa ? hpa.spec.maxReplicas : sts.spec.replicas;
      assert.ok(lines.length >= max, `${lines.length} server slots cover up to ${max} nodes`);
    });

    test('HAProxy runs haproxy/haproxy.cfg unchanged apart from server discovery, and it loads', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const cm = configMap(objs, 'switchboard-haproxy');
      const original = readFileSync(join(repoRoot, 'haproxy/haproxy.cfg'), 'utf8');
      const copy = readFileSync(join(k8sDir, 'haproxy/haproxy.cfg'), 'utf8');
      assert.equal(cm.data['haproxy.cfg'], copy);
      assert.equal(
        withoutServerDiscovery(copy),
        withoutServerDiscovery(original),
        'k8s/haproxy/haproxy.cfg differs from haproxy/haproxy.cfg beyond server lines: copy it again',
      );

      const deploy = find(objs, 'Deployment', 'switchboard-haproxy');
      const pod = deploy.spec.template.spec;
      const c = pod.containers[0];
      assert.deepEqual(
        c.ports.map((p: any) => [p.name, p.containerPort]),
        [
          ['http', 8080],
          ['https', 8443],
          ['metrics', 8404],
        ],
      );
      const env = Object.fromEntries(c.env.filter((e: any) => 'value' in e).map((e: any) => [e.name, e.value]));
      assert.equal(env.SB_BIND_ADDR, '0.0.0.0');
      assert.equal(env.SB_STATS_BIND_ADDR, '0.0.0.0');
      // A soft stop (the image's SIGUSR1) lets connections finish until hard-stop-after: the pod
      // must live that long after its preStop.
      const hardStop = env.SB_HARD_STOP_AFTER ?? /presetenv SB_HARD_STOP_AFTER\s+(\S+)/.exec(copy)?.[1];
      assert.match(hardStop ?? '', /^\d+s$/, 'hard-stop-after in seconds');
      const preStop = sleepSeconds(c.lifecycle?.preStop?.exec?.command);
      assert.ok(
        pod.terminationGracePeriodSeconds > preStop + parseInt(hardStop!, 10),
        `HAProxy grace ${pod.terminationGracePeriodSeconds} > preStop ${preStop} + hard-stop-after ${hardStop}`,
      );
      // TLS from the Secret: the certificate and its key under the names HAProxy looks for.
      const tlsVol = pod.volumes.find((v: any) => v.secret?.secretName === 'switchboard-tls');
      assert.ok(tlsVol, 'mounts the Secret switchboard-tls');
      const tlsMount = c.volumeMounts.find((m: any) => m.name === tlsVol.name);
      const items = Object.fromEntries(tlsVol.secret.items.map((i: any) => [i.key, i.path]));
      assert.equal(env.SB_TLS_CERT, `${tlsMount.mountPath}/${items['tls.crt']}`);
      assert.equal(items['tls.key'], `${items['tls.crt']}.key`, "HAProxy loads the key from '<crt>.key'");

      // Load the rendered files the way the pod does, checked by haproxy -c.
      if (!requireOptional(t, 'haproxy', 'apt-get install -y haproxy')) return;
      if (!requireOptional(t, 'openssl', 'apt-get install -y openssl')) return;
      const dir = mkdtempSync(join(tmpdir(), 'sb-k8s-haproxy-'));
      try {
        const cfgVol = pod.volumes.find((v: any) => v.configMap?.name === cm.metadata.name);
        assert.ok(cfgVol, 'mounts the haproxy ConfigMap');
        const local = (p: string) => join(dir, p);
        for (const m of c.volumeMounts.filter((m: any) => m.name === cfgVol.name)) {
          mkdirSync(dirname(local(m.mountPath)), { recursive: true });
          writeFileSync(local(m.mountPath), cm.data[m.subPath]);
        }
        mkdirSync(local(tlsMount.mountPath), { recursive: true });
        const key = local(`${tlsMount.mountPath}/${items['tls.key']}`);
        const crt = local(`${tlsMount.mountPath}/${items['tls.crt']}`);
        const ssl = spawnSync(
          'openssl',
          ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=switchboard.test'],
          { encoding: 'utf8' },
        );
        assert.equal(ssl.status, 0, ssl.stderr);
        // The image's entrypoint runs `haproxy -W -db <args>`; the -f paths move into the temp dir.
        const args = (c.args as string[]).map((a, i, all) => (all[i - 1] === '-f' ? local(a) : a));
        const r = spawnSync('haproxy', ['-c', ...args], {
          encoding: 'utf8',
          env: { PATH: process.env.PATH, ...env, SB_TLS_CERT: crt, SB_NODES_SERVICE: `switchboard-nodes.${NAMESPACE}.svc.cluster.local` },
        });
        assert.equal(r.status, 0, `haproxy -c failed:\n${r.stdout}${r.stderr}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('disruption budgets and autoscaling', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      for (const w of workloads(objs).filter((w) => w.metadata.name !== 'switchboard-redis')) {
        const pdb = objs.find(
          (o) => o.kind === 'PodDisruptionBudget' && matches(o.spec.selector.matchLabels, w.spec.template.metadata.labels),
        );
        assert.ok(pdb, `a PodDisruptionBudget covers ${w.metadata.name}`);
        assert.ok(
          pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable < w.spec.replicas,
          `${pdb.metadata.name} lets one pod go at a time`,
        );
      }
      const hpas = objs.filter((o) => o.kind === 'HorizontalPodAutoscaler');
      if (which === 'base') {
        assert.equal(hpas.length, 1);
        const hpa = hpas[0];
        assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'switchboard-node' });
        assert.ok(hpa.spec.minReplicas >= 2, `minReplicas ${hpa.spec.minReplicas} >= 2`);
        assert.ok(hpa.spec.maxReplicas >= hpa.spec.minReplicas, 'maxReplicas >= minReplicas');
        assert.ok(hpa.spec.metrics.length > 0);
        assert.ok(find(objs, 'StatefulSet', 'switchboard-node').spec.replicas >= 2);
        assert.ok(find(objs, 'Deployment', 'switchboard-haproxy').spec.replicas >= 2);
      } else {
        assert.equal(hpas.length, 0, 'no autoscaler locally');
        for (const w of workloads(objs)) assert.equal(w.spec.replicas, 1, `${w.metadata.name}: one replica`);
      }
    });

    test('network policies: HAProxy alone reaches the public port, Prometheus and labelled GRIP publishers the internal one, nodes Redis', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
      const deny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0);
      assert.ok(deny && deny.spec.policyTypes.includes('Ingress') && !deny.spec.ingress, 'default deny for ingress');
      /** The ingress rules of policies selecting pods with these labels that open this port. */
      const sourcesFor = (labels: Record<string, string>, port: string | number) =>
        policies
          .filter((p) => p !== deny && matches(p.spec.podSelector.matchLabels ?? {}, labels))
          .flatMap((p) => p.spec.ingress ?? [])
          .filter((r: any) => !r.ports || r.ports.some((p: any) => p.port === port));
      const monitoring = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } };
      const fromHaproxy = { podSelector: { matchLabels: HAPROXY_LABELS } };
      const fromNodes = { podSelector: { matchLabels: NODE_LABELS } };

      const publicRules = sourcesFor(NODE_LABELS, 'public');
      assert.ok(publicRules.length > 0);
      for (const r of publicRules) assert.deepEqual(r.from, [fromHaproxy], 'public port: HAProxy only');
      const internalFrom = sourcesFor(NODE_LABELS, 'internal').map((r: any) => r.from);
      for (const from of internalFrom) assert.ok(from?.length, 'internal port: never open to all');
      // Keyless GRIP publishing (INTERNAL_GRIP_PUBLISH) is for labelled publisher pods only.
      const gripPublishers = { namespaceSelector: {}, podSelector: { matchLabels: { 'switchboard.io/grip-publisher': 'true' } } };
      assert.deepEqual(
        internalFrom.flat().sort((a: any, b: any) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        [monitoring, fromHaproxy, gripPublishers].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        'internal port: Prometheus, HAProxy health checks and labelled GRIP publishers',
      );
      for (const r of sourcesFor(HAPROXY_LABELS, 'metrics')) assert.deepEqual(r.from, [monitoring], 'exporter: Prometheus only');
      assert.ok(
        sourcesFor(HAPROXY_LABELS, 'https').some((r: any) => !r.from),
        'HAProxy https is open',
      );
      const redisRules = sourcesFor(REDIS_LABELS, 6379);
      assert.ok(redisRules.length > 0);
      for (const r of redisRules) assert.deepEqual(r.from, [fromNodes], 'Redis: nodes only');
    });

    test('ServiceMonitors scrape a named port that the Service they select exposes', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const monitors = objs.filter((o) => o.kind === 'ServiceMonitor');
      assert.equal(monitors.length, 2);
      const scraped = new Set<string>();
      for (const sm of monitors) {
        assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
        const svcs: any[] = objs.filter((o) => o.kind === 'Service' && matches(sm.spec.selector.matchLabels, o.metadata.labels ?? {}));
        assert.equal(svcs.length, 1, `${sm.metadata.name} selects exactly one Service`);
        const svc = svcs[0];
        for (const ep of sm.spec.endpoints) {
          assert.ok(
            svc.spec.ports.some((p: any) => p.name === ep.port),
            `${svc.metadata.name} exposes port ${ep.port}`,
          );
          assert.equal(ep.path, '/metrics');
          assert.deepEqual(
            ep.relabelings,
            [{ targetLabel: 'job', replacement: svc.metadata.name === 'switchboard-nodes' ? 'switchboard' : 'haproxy' }],
            'the job label the alert rules select on',
          );
          scraped.add(`${svc.metadata.name}:${ep.port}`);
        }
      }
      assert.deepEqual([...scraped].sort(), ['switchboard-haproxy-metrics:metrics', 'switchboard-nodes:internal']);
      const lb = find(objs, 'Service', 'switchboard-haproxy');
      assert.ok(
        !lb.spec.ports.some((p: any) => p.port === 8404 || p.targetPort === 'metrics'),
        'the exporter is not on the public Service',
      );
    });

    test('the PrometheusRule and the dashboards ConfigMaps carry the files unchanged', async (t) => {
      const objs = await render(t, which);
      if (!objs) return;
      const rule = find(objs, 'PrometheusRule', 'switchboard');
      assert.equal(rule.apiVersion, 'monitoring.coreos.com/v1');
      assert.deepEqual(rule.spec.groups, (await loadRules()).groups);
      const dashboards = objs.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
      const files = loadDashboards();
      assert.equal(dashboards.length, files.length, 'one ConfigMap per dashboard');
      for (const { file } of files) {
        const cm = dashboards.find((d) => file in (d.data ?? {}));
        assert.ok(cm, `${file} is provisioned`);
        assert.equal(cm.data[file], readFileSync(join(k8sDir, 'dashboards', file), 'utf8'));
      }
    });
  });
}

describe('alert rules', () => {
  test('k8s/alerts/prometheusrule.yaml holds exactly the groups of switchboard-rules.yml', async () => {
    const plain = await loadRules();
    const crd = await parseYaml(readFileSync(join(k8sDir, 'alerts/prometheusrule.yaml'), 'utf8'));
    assert.equal(crd.kind, 'PrometheusRule');
    assert.deepEqual(crd.spec.groups, plain.groups);
    assert.deepEqual(Object.keys(plain), ['groups']);
  });

  test('every alert that operators need is there, with severity, summary, description and runbook', async () => {
    const rules = alertRules(await loadRules());
    assert.deepEqual(rules.map((r) => r.alert).sort(), [...REQUIRED_ALERTS].sort());
    for (const r of rules) {
      assert.ok(['warning', 'critical'].includes(r.labels?.severity), `${r.alert} severity`);
      for (const a of ['summary', 'description', 'runbook'])
        assert.ok(typeof r.annotations?.[a] === 'string' && r.annotations[a].length > 10, `${r.alert} annotations.${a}`);
      assert.match(r.for, /^\d+[smh]$/, `${r.alert} for`);
    }
  });
});

describe('dashboards', () => {
  const dashboards = loadDashboards();

  test('the five dashboards are there', () => {
    assert.deepEqual(
      dashboards.map((d) => d.file),
      [
        'switchboard-bus.json',
        'switchboard-haproxy.json',
        'switchboard-node.json',
        'switchboard-overview.json',
        'switchboard-webhooks.json',
      ],
    );
    const uids = dashboards.map((d) => d.json.uid);
    assert.equal(new Set(uids).size, uids.length, 'unique uids');
  });

  for (const { file, json } of dashboards) {
    test(`${file}: unique panel ids, a datasource variable every query uses, a PromQL expr per target`, () => {
      assert.ok(json.title && json.uid && json.schemaVersion >= 30, 'title, uid, schemaVersion');
      assert.equal(json.id, undefined, 'no instance-specific id: imports anywhere');
      const panels = allPanels(json);
      assert.ok(panels.length >= 8, 'has panels');
      const ids = panels.map((p) => p.id);
      assert.ok(
        ids.every((id) => Number.isInteger(id)),
        'every panel has an id',
      );
      assert.equal(new Set(ids).size, ids.length, `unique panel ids in ${file}`);
      const vars = json.templating.list;
      const ds = vars.find((v: any) => v.type === 'datasource');
      assert.equal(ds?.query, 'prometheus', 'a Prometheus datasource variable');
      const dsRef = `\${${ds.name}}`;
      for (const p of panels.filter((p) => p.type !== 'row')) {
        assert.equal(p.datasource?.uid, dsRef, `panel "${p.title}" uses the datasource variable`);
        assert.ok(p.targets?.length, `panel "${p.title}" has queries`);
        for (const tg of p.targets) {
          assert.equal(tg.datasource?.uid, dsRef);
          assert.ok(typeof tg.expr === 'string' && tg.expr.length > 0, `panel "${p.title}" target ${tg.refId} has an expr`);
        }
        assert.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the grid`);
      }
      for (const v of vars.filter((v: any) => v.type === 'query'))
        assert.equal(v.datasource?.uid, dsRef, `variable ${v.name} uses the datasource variable`);
      // Every $variable a query uses is defined.
      const defined = new Set(['__rate_interval', '__interval', '__range', ...vars.map((v: any) => v.name)]);
      for (const expr of dashboardExprs(json)) {
        for (const m of expr.matchAll(/\$(\w+)/g)) assert.ok(defined.has(m[1]!), `$${m[1]} in ${expr} is defined`);
      }
    });
  }

  test('the HAProxy dashboard reads only haproxy_* metrics; the others only Switchboard and Node.js metrics', () => {
    for (const { file, json } of dashboards) {
      const exprs = dashboardExprs(json).join('\n');
      if (file === 'switchboard-haproxy.json') assert.doesNotMatch(exprs, /switchboard_/);
      else assert.doesNotMatch(exprs, /haproxy_/);
    }
  });
});

describe('deployment files', () => {
  test('the Dockerfile builds on a glibc base, installs production dependencies only and runs the server as non-root', () => {
    const df = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    const froms = [...df.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(froms.length >= 2 && froms.every((f) => f === 'node:20-bookworm-slim'), `glibc bookworm stages (got ${froms})`);
    assert.match(df, /RUN npm ci[^\n]*\n(?:.*\n)*?RUN npm run build/);
    assert.match(df, /RUN npm ci --omit=dev/);
    assert.match(df, /COPY --from=build \/app\/dist\/node\/src/);
    assert.match(df, /^CMD \["node", "dist\/node\/src\/main\.js", "listen"\]$/m);
    const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', 'dist', '.git']) assert.ok(ignore.includes(p), `.dockerignore lists ${p}`);
  });

  test('the example Secret names API_KEYS, JWT_SECRET and WEBHOOK_SECRET', () => {
    const text = readFileSync(join(k8sDir, 'nodes/secret.example.yaml'), 'utf8');
    for (const k of ['API_KEYS', 'JWT_SECRET', 'WEBHOOK_SECRET']) assert.match(text, new RegExp(`^\\s*#?\\s*${k}:`, 'm'));
  });
});
