// Starts a private Redis Cluster (3 masters + 3 replicas of Debian's redis-server) on free ports for one test file,
// with the drills the failover tests need; always stops every process it started and removes its folders.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { waitFor } from './ports.js';
import {
  command,
  freeClusterPort,
  faults,
  killRedis,
  launchRedis,
  parseInfo,
  removeDir,
  tempDir,
  waitPing,
  type RedisProcess,
} from './redis-process.js';

export interface ClusterNodeView {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** For a replica: the id of its master. */
  masterId?: string;
  failed: boolean;
  /** Slot ranges, inclusive. */
  slots: [number, number][];
}

export interface TestRedisCluster {
  /** Every process, in start order (the first three start as masters, but failovers move roles). */
  nodes: RedisProcess[];
  /** `redis://127.0.0.1:p` of every node. */
  seeds: string[];
  /** Comma-separated seeds, as REDIS_CLUSTER_NODES takes them. */
  seedList: string;
  /** The cluster as a live node sees it. */
  topology(): Promise<ClusterNodeView[]>;
  /** Port of the master that owns `slot`. */
  masterOfSlot(slot: number): Promise<number>;
  /** Port of the master that owns the slot of `key` (hash tags included). */
  masterOfKey(key: string): Promise<number>;
  keySlot(key: string): Promise<number>;
  /** Port of a connected replica of the master on `masterPort`. */
  replicaOf(masterPort: number): Promise<number>;
  /** kill -9. */
  kill(port: number): Promise<void>;
  /** SIGSTOP: the process hangs with its sockets open. */
  pause(port: number): void;
  /** SIGCONT. */
  resume(port: number): void;
  /** Starts a killed node again from its folder (nodes.conf): it rejoins, as a replica if it lost its slots. */
  restart(port: number): Promise<void>;
  /** Planned switchover: CLUSTER FAILOVER on a replica, resolved once it is master and the cluster is ok again. */
  failover(replicaPort: number): Promise<void>;
  /** After losing the master on `oldMasterPort`: waits until another node owns its slots; returns that node's port. */
  waitPromoted(oldMasterPort: number): Promise<number>;
  /**
   * Every slot served, every live node says cluster_state:ok; with `replicas` (default true) every master also has
   * a replica whose link is up.
   */
  waitHealthy(opts?: { replicas?: boolean }): Promise<void>;
  command(port: number, ...args: (string | number)[]): Promise<unknown>;
  stop(): Promise<void>;
}

export interface StartRedisClusterOptions {
  /** cluster-node-timeout: how long a silent master takes to be failed over. @default 1000 */
  nodeTimeoutMs?: number;
  /** Extra redis-server arguments for every node. */
  args?: string[];
  /** @default 30000 */
  timeoutMs?: number;
}

function parseNodes(text: string): ClusterNodeView[] {
  const out: ClusterNodeView[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 8) continue;
    const flags = f[2]!.split(',');
    const port = Number(f[1]!.split('@')[0]!.split(':').pop());
    const slots: [number, number][] = [];
    for (const s of f.slice(8)) {
      if (s.startsWith('[')) continue; // a slot being migrated
      const [a, b] = s.split('-');
      slots.push([Number(a), Number(b ?? a)]);
    }
    out.push({
      id: f[0]!,
      port,
      role: flags.includes('master') ? 'master' : 'replica',
      ...(f[3] !== '-' ? { masterId: f[3] } : {}),
      failed: flags.includes('fail') || flags.includes('fail?') || flags.includes('noaddr'),
      slots,
    });
  }
  return out;
}

export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<TestRedisCluster> {
  const nodeTimeout = opts.nodeTimeoutMs ?? 1000;
  const timeout = opts.timeoutMs ?? 30_000;
  const root = tempDir('redis-cluster');
  const taken = new Set<number>();
  const nodes: RedisProcess[] = [];
  const args = [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    'nodes.conf',
    '--cluster-node-timeout',
    String(nodeTimeout),
    // One failed shard must not stop the others from serving.
    '--cluster-require-full-coverage',
    'no',
    // A replica of a master that hung (SIGSTOP) may take over whatever its last contact.
    '--cluster-replica-validity-factor',
    '0',
    '--repl-diskless-sync-delay',
    '0',
    '--enable-debug-command',
    'local',
    '--loglevel',
    'warning',
    ...(opts.args ?? []),
  ];
  const dirOf = new Map<number, string>();
  const start = (port: number) => {
    const p = launchRedis(port, dirOf.get(port)!, args);
    const i = nodes.findIndex((n) => n.port === port);
    if (i >= 0) nodes[i] = p;
    else nodes.push(p);
    return p;
  };
  const live = () => nodes.filter((n) => n.running());
  const byPort = (port: number) => {
    const n = nodes.find((x) => x.port === port);
    if (!n) throw new Error(`no cluster node on ${port}`);
    return n;
  };
  const topology = async (): Promise<ClusterNodeView[]> => {
    for (const n of live()) {
      const text = await command(n.port, ['CLUSTER', 'NODES'], 1000).catch(() => undefined);
      if (typeof text === 'string') return parseNodes(text);
    }
    throw new Error('no live cluster node answers');
  };
  const masterOfSlot = async (slot: number) => {
    const m = (await topology()).find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!m) throw new Error(`no live master owns slot ${slot}`);
    return m.port;
  };
  const keySlot = async (key: string) => Number(await command(live()[0]!.port, ['CLUSTER', 'KEYSLOT', key]));
  const allOk = async () => {
    for (const n of live()) {
      const info = parseInfo(String(await command(n.port, ['CLUSTER', 'INFO'], 1000)));
      if (info.cluster_state !== 'ok') return false;
    }
    return true;
  };
  const waitHealthy = async ({ replicas = true } = {}) => {
    await waitFor(
      async () => {
        if (!(await allOk())) return false;
        const topo = await topology();
        const masters = topo.filter((n) => n.role === 'master' && !n.failed && n.slots.length > 0);
        const covered = masters.reduce((sum, m) => sum + m.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
        if (covered !== 16384) return false;
        if (!replicas) return true;
        for (const m of masters) {
          let up = false;
          for (const r of topo.filter((x) => x.masterId === m.id && !x.failed)) {
            const info = parseInfo(String(await command(r.port, ['INFO', 'replication'], 1000).catch(() => '')));
            if (info.master_link_status === 'up') up = true;
          }
          if (!up) return false;
        }
        return true;
      },
      { timeout, interval: 100, what: 'the Redis Cluster to be ok with every replica attached' },
    );
  };

  const cluster: TestRedisCluster = {
    nodes,
    seeds: [],
    seedList: '',
    topology,
    masterOfSlot,
    keySlot,
    async masterOfKey(key) {
      return masterOfSlot(await keySlot(key));
    },
    async replicaOf(masterPort) {
      const topo = await topology();
      const m = topo.find((n) => n.port === masterPort && n.role === 'master');
      const r = m && topo.find((n) => n.masterId === m.id && !n.failed);
      if (!r) throw new Error(`the master on ${masterPort} has no live replica`);
      return r.port;
    },
    ...faults(byPort),
    async restart(port) {
      await killRedis(byPort(port));
      await waitPing(start(port), `cluster node ${port} restarted`);
    },
    async failover(replicaPort) {
      // A manual failover the master does not confirm within 5 s is abandoned by Redis: ask again after that.
      let askedAt = 0;
      await waitFor(
        async () => {
          if (parseInfo(String(await command(replicaPort, ['INFO', 'replication'], 1000))).role === 'master') return true;
          if (Date.now() - askedAt > 6000) {
            askedAt = Date.now();
            await command(replicaPort, ['CLUSTER', 'FAILOVER']);
          }
          return false;
        },
        { timeout, what: `replica ${replicaPort} to become master\n${byPort(replicaPort).output().slice(-3000)}` },
      );
      await waitFor(allOk, { timeout, what: 'cluster_state:ok after the failover' });
    },
    async waitPromoted(oldMasterPort) {
      const before = (await topology()).find((n) => n.port === oldMasterPort);
      const slot = before?.slots[0]?.[0];
      if (slot === undefined) throw new Error(`${oldMasterPort} owned no slots`);
      return waitFor(
        async () => {
          const owner = await masterOfSlot(slot).catch(() => undefined);
          return owner !== undefined && owner !== oldMasterPort && (await allOk()) ? owner : undefined;
        },
        { timeout, interval: 100, what: `a replica to take over the slots of ${oldMasterPort}` },
      );
    },
    waitHealthy,
    command: (port, ...a) => command(port, a),
    async stop() {
      await Promise.all(nodes.map((n) => killRedis(n)));
      removeDir(root);
    },
  };

  try {
    for (let i = 0; i < 6; i++) {
      const port = await freeClusterPort(taken);
      const dir = `${root}/${port}`;
      mkdirSync(dir);
      dirOf.set(port, dir);
      start(port);
    }
    await Promise.all(nodes.map((n) => waitPing(n, `cluster node ${n.port}`)));
    cluster.seeds.push(...nodes.map((n) => `redis://127.0.0.1:${n.port}`));
    cluster.seedList = cluster.seeds.join(',');
    await createCluster(nodes.map((n) => n.port));
    await waitHealthy();
  } catch (err) {
    const logs = nodes.map((n) => `--- ${n.port}\n${n.output().slice(-1500)}`).join('\n');
    await cluster.stop();
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
  return cluster;
}

function createCluster(ports: number[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const p = spawn(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((x) => `127.0.0.1:${x}`), '--cluster-replicas', '1', '--cluster-yes'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', (err) => reject(new Error(`cannot run redis-cli (apt-get install -y redis-tools): ${err.message}`)));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create failed (${code}):\n${out}`))));
  });
}
