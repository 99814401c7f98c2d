// The Redis choices of k8s/: the single Redis (base), a Redis Cluster and a Sentinel set (components, applied
// through k8s/overlays/redis-cluster and redis-sentinel): what they render, and that the nodes' settings they
// produce pass the node's own configuration check and name exactly the pods the StatefulSets run.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { redisConnectOptions } from '../../src/bus/redis-connect.js';
import { findObject, renderK8s } from '../helpers/ops.js';

const render = (t: TestContext, overlay: '' | 'redis-cluster' | 'redis-sentinel') => renderK8s(t, overlay && join('overlays', overlay));
const find = findObject;
/** The nodes' settings as the environment they see (the ConfigMap's name carries kustomize's hash). */
const nodeEnv = (objs: any[]): Record<string, string> => {
  const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('switchboard-config'));
  assert.ok(cm, 'the nodes ConfigMap is rendered');
  return cm.data;
};
/** The headless Service that gives the StatefulSet's pods their names. */
const podDomain = (objs: any[], sts: any) => {
  const svc = find(objs, 'Service', sts.spec.serviceName);
  assert.equal(svc.spec.clusterIP, 'None', `${svc.metadata.name} is headless`);
  assert.deepEqual(svc.spec.selector, sts.spec.selector.matchLabels, `${svc.metadata.name} selects the StatefulSet's pods`);
  return svc.metadata.name;
};
const script = (c: any) => [...(c.command ?? []), ...(c.args ?? [])].join(' ');
const mib = (q: string) => (q.endsWith('Gi') ? Number(q.slice(0, -2)) * 1024 : q.endsWith('Mi') ? Number(q.slice(0, -2)) : NaN);

describe('Redis on Kubernetes', () => {
  for (const overlay of ['', 'redis-cluster', 'redis-sentinel'] as const) {
    test(`${overlay || 'the base'}: every Redis data container sets maxmemory below its memory limit, with volatile-ttl`, async (t) => {
      const objs = await render(t, overlay);
      if (!objs) return;
      const data = objs
        .filter((o) => o.kind === 'StatefulSet')
        .flatMap((o) => o.spec.template.spec.containers.map((c: any) => ({ owner: o.metadata.name, c })))
        .filter(({ c }) => c.image.startsWith('redis:') && c.ports?.some((p: any) => p.name === 'redis'));
      assert.equal(data.length, 1, 'one kind of Redis data pod per variant');
      for (const { owner, c } of data) {
        const s = script(c);
        const m = /--maxmemory"?,? "?(\d+)mb/.exec(s);
        assert.ok(m, `${owner}: --maxmemory set`);
        assert.match(s, /--maxmemory-policy"?,? "?volatile-ttl/, `${owner}: volatile-ttl`);
        assert.ok(
          Number(m![1]) < mib(c.resources.limits.memory),
          `${owner}: maxmemory ${m![1]}mb under the limit ${c.resources.limits.memory}`,
        );
      }
      const singles = objs.filter((o) => o.metadata.name === 'switchboard-redis');
      assert.equal(
        singles.length,
        overlay ? 0 : 3,
        overlay ? 'the single Redis is replaced' : 'the single Redis: StatefulSet, Service, NetworkPolicy',
      );
    });
  }

  test('Redis Cluster: 6 pods, a bootstrap Job, and REDIS_CLUSTER_NODES naming each pod (cluster mode in the node)', async (t) => {
    const objs = await render(t, 'redis-cluster');
    if (!objs) return;
    const sts = find(objs, 'StatefulSet', 'switchboard-redis-cluster');
    assert.equal(sts.spec.replicas, 6);
    const domain = podDomain(objs, sts);
    const redis = sts.spec.template.spec.containers[0];
    assert.match(script(redis), /--cluster-enabled yes/);
    assert.match(script(redis), /--cluster-require-full-coverage no/);
    const job = find(objs, 'Job', 'switchboard-redis-cluster-bootstrap');
    const bootstrap = script(job.spec.template.spec.containers[0]);
    assert.match(bootstrap, /redis-cli --cluster create/);
    assert.match(bootstrap, /--cluster-replicas 1/);
    assert.match(bootstrap, /for i in 0 1 2 3 4 5/, 'the Job waits for and uses all 6 pods');

    const cfg = loadConfig(nodeEnv(objs));
    const o = redisConnectOptions(cfg)!;
    assert.equal(o.target.mode, 'cluster');
    assert.deepEqual(o.ignored, [], 'no leftover REDIS_URL');
    assert.deepEqual(
      o.target.mode === 'cluster' && o.target.nodes,
      Array.from({ length: 6 }, (_, i) => `redis://${sts.metadata.name}-${i}.${domain}:6379`),
    );

    const policy = find(objs, 'NetworkPolicy', 'switchboard-redis-cluster');
    const fromNodes = policy.spec.ingress.filter((r: any) =>
      r.from.some((f: any) => f.podSelector?.matchLabels?.['app.kubernetes.io/component'] === 'node'),
    );
    assert.ok(
      fromNodes.some((r: any) => r.ports.some((p: any) => p.port === 6379)),
      'nodes reach 6379',
    );
    assert.ok(
      policy.spec.ingress.some((r: any) => r.ports.some((p: any) => p.port === 16379)),
      'the cluster bus is open between the Redis pods',
    );
  });

  test('Sentinel: 3 pods of a data node and a sentinel, REDIS_SENTINELS naming each sentinel and the group they monitor', async (t) => {
    const objs = await render(t, 'redis-sentinel');
    if (!objs) return;
    const sts = find(objs, 'StatefulSet', 'switchboard-redis-sentinel');
    assert.equal(sts.spec.replicas, 3);
    const domain = podDomain(objs, sts);
    const containers = Object.fromEntries(sts.spec.template.spec.containers.map((c: any) => [c.name, c]));
    assert.deepEqual(Object.keys(containers).sort(), ['redis', 'sentinel']);
    const monitor = /sentinel monitor (\S+) \S+ 6379 (\d+)/.exec(script(containers.sentinel));
    assert.ok(monitor, 'the sentinel monitors a master');

    const cfg = loadConfig(nodeEnv(objs));
    const o = redisConnectOptions(cfg)!;
    assert.equal(o.target.mode, 'sentinel');
    assert.deepEqual(o.ignored, [], 'no leftover REDIS_URL');
    if (o.target.mode !== 'sentinel') return;
    assert.equal(o.target.name, monitor![1], 'REDIS_SENTINEL_NAME is the monitored group');
    assert.ok(Number(monitor![2]) <= sts.spec.replicas / 2 + 1, `quorum ${monitor![2]} reachable with one pod down`);
    assert.deepEqual(
      o.target.sentinels,
      Array.from({ length: 3 }, (_, i) => ({ host: `${sts.metadata.name}-${i}.${domain}`, port: 26379 })),
    );
    assert.ok(containers.sentinel.ports.some((p: any) => p.containerPort === 26379));

    const policy = find(objs, 'NetworkPolicy', 'switchboard-redis-sentinel');
    const ports = policy.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port));
    assert.ok(ports.includes(6379) && ports.includes(26379), 'nodes reach the data nodes and the sentinels');
  });
});
