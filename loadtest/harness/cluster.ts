// Starts what the harness measures: per system a private redis-server and N server processes on free ports, plus the
// webhook backend for the rpc scenario. Everything started here is stopped here.
import net from 'node:net';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FatalError, cpuSeconds, freePort, rssKiB, waitFor, type Managed, type Processes } from './proc.js';

export const SYSTEMS = ['switchboard', 'plain', 'stock', 'ceiling'] as const;
export type SystemName = (typeof SYSTEMS)[number];

/** `embedded`: rpc answered in-process (Switchboard loads the bench app); `webhook`: through BACKEND_URL. */
export type Variant = 'embedded' | 'webhook';

const dist = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));
export const SERVER_JS: Record<SystemName, string> = {
  switchboard: dist('node/src/main.js'),
  plain: dist('loadtest/baselines/plain.js'),
  stock: dist('loadtest/baselines/stock.js'),
  ceiling: dist('loadtest/baselines/ceiling.js'),
};
const SERVER_ARGS: Record<SystemName, string[]> = { switchboard: ['listen'], plain: [], stock: [], ceiling: [] };
const BENCH_APP_JS = dist('loadtest/harness/bench-app.js');
const BACKEND_JS = dist('loadtest/harness/backend.js');

/**
 * What Switchboard nodes get besides the shared environment: the bench channels open to any client (the baselines
 * have no rules), and the per-connection and per-address limits out of the way, since every client here comes from
 * a handful of loopback addresses and one publisher connection carries the whole publish rate. The limit checks
 * still run; they just never trip. `--node-env` overrides any of these.
 */
export const SWITCHBOARD_BENCH_ENV: Record<string, string> = {
  CHANNEL_RULES: JSON.stringify([{ prefix: 'bench:', subscribe: 'anyone', publish: 'anyone' }]),
  EVENTS_PER_SECOND: '1000000',
  CONNECTIONS_PER_IP: '1000000',
  HANDSHAKES_PER_SECOND_PER_IP: '1000000',
};

export function systemAvailable(system: SystemName): boolean {
  return existsSync(SERVER_JS[system]);
}

export interface ServerNode {
  index: number;
  port: number;
  internalPort: number;
  /** http://127.0.0.1:<port> */
  url: string;
  pid: number;
  managed: Managed;
}

export interface Cluster {
  system: SystemName;
  variant: Variant;
  redis: { port: number; pid: number; managed: Managed };
  nodes: ServerNode[];
  /** CPU seconds (utime + stime) of the server processes, and of redis. */
  cpu(): { nodes: number; perNode: number[]; redis: number };
  rss(node: number): number;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  nodes: number;
  apiKey: string;
  /** Extra environment for Switchboard nodes (`--node-env K=V`). */
  switchboardEnv: Record<string, string>;
  registry: Processes;
  signal?: AbortSignal;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(500);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      s.destroy();
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => (resolve(false), s.destroy()));
  });
}

async function startRedis(opts: ClusterOptions, tag: string) {
  const port = await freePort();
  const managed = opts.registry.spawn(`redis ${tag}`, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning']);
  let dead = false;
  void managed.exited.then(() => (dead = true));
  await waitFor(
    async () => {
      if (dead) throw new FatalError(`redis-server exited: ${managed.output() || 'is redis-server installed? apt-get install -y redis-server'}`);
      return ping(port);
    },
    `redis-server on ${port}`,
    10_000,
    opts.signal,
  );
  return { port, pid: managed.proc.pid!, managed };
}

async function startNode(system: SystemName, variant: Variant, index: number, redisPort: number, backendUrl: string | undefined, opts: ClusterOptions): Promise<ServerNode> {
  const port = await freePort();
  const internalPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: String(port),
    HOST: '127.0.0.1',
    INTERNAL_PORT: String(internalPort),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    NODE_ID: `bench-${system}-${index + 1}`,
    API_KEYS: opts.apiKey,
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
  };
  if (variant === 'webhook') {
    env.BACKEND_URL = backendUrl;
    // Switchboard signs every webhook; the bench backend does not check, but the key is required.
    env.WEBHOOK_SECRET = 'bench-webhook-secret';
  }
  if (system === 'switchboard') {
    if (variant === 'embedded') env.SWITCHBOARD_APP = BENCH_APP_JS;
    Object.assign(env, SWITCHBOARD_BENCH_ENV, opts.switchboardEnv);
  }
  // SB_BENCH_NODE_ARGS: extra flags for the server processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile.
  const nodeArgs = (process.env.SB_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const managed = opts.registry.spawn(`${system} node ${index + 1}`, process.execPath, [...nodeArgs, SERVER_JS[system], ...SERVER_ARGS[system]], { env });
  let dead = false;
  void managed.exited.then(() => (dead = true));
  try {
    await waitFor(
      async () => {
        if (dead) throw new FatalError(`exited early (code ${managed.proc.exitCode})`);
        const res = await fetch(`http://127.0.0.1:${internalPort}/readyz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return res.status === 200;
      },
      `${system} node ${index + 1} /readyz`,
      30_000,
      opts.signal,
    );
  } catch (err) {
    await managed.stop();
    throw new Error(`${(err as Error).message}\n--- ${system} node ${index + 1} output ---\n${managed.output().slice(-4000)}`);
  }
  return { index, port, internalPort, url: `http://127.0.0.1:${port}`, pid: managed.proc.pid!, managed };
}

export async function startCluster(system: SystemName, variant: Variant, backendUrl: string | undefined, opts: ClusterOptions): Promise<Cluster> {
  if (!systemAvailable(system)) throw new Error(`${SERVER_JS[system]} is missing: run \`npm run build\``);
  const redis = await startRedis(opts, system);
  const nodes: ServerNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.managed.stop()));
    await redis.managed.stop();
  };
  try {
    // One at a time: on two cores a parallel start only makes each slower to become ready.
    for (let i = 0; i < opts.nodes; i++) nodes.push(await startNode(system, variant, i, redis.port, backendUrl, opts));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    system,
    variant,
    redis,
    nodes,
    cpu() {
      const perNode = nodes.map((n) => cpuSeconds(n.pid));
      return { nodes: perNode.reduce((a, b) => a + b, 0), perNode, redis: cpuSeconds(redis.pid) };
    },
    rss: (i) => rssKiB(nodes[i]!.pid),
    stop,
  };
}

/** The rpc webhook backend (backend.ts) in its own process, so its CPU is nobody's server CPU. */
export async function startBackend(registry: Processes, signal?: AbortSignal): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const managed = registry.spawn('backend', process.execPath, [BACKEND_JS], { env: { PATH: process.env.PATH, PORT: String(port) } });
  await waitFor(
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.ok;
    },
    'webhook backend',
    10_000,
    signal,
  );
  return { url: `http://127.0.0.1:${port}`, stop: () => managed.stop() };
}

/** Hands out clusters by (system, variant); with `reuse` a cluster lives until stopAll, else until release. */
export class Clusters {
  private live = new Map<string, Cluster>();
  private backend: { url: string; stop(): Promise<void> } | undefined;

  constructor(
    private readonly opts: ClusterOptions,
    private readonly reuse: boolean,
  ) {}

  async get(system: SystemName, variant: Variant = 'embedded'): Promise<Cluster> {
    const key = `${system}/${variant}`;
    const have = this.live.get(key);
    if (have) return have;
    let backendUrl: string | undefined;
    if (variant === 'webhook') {
      this.backend ??= await startBackend(this.opts.registry, this.opts.signal);
      backendUrl = this.backend.url;
    }
    const c = await startCluster(system, variant, backendUrl, this.opts);
    this.live.set(key, c);
    return c;
  }

  /** Stops the clusters unless they are reused across scenarios. */
  async release(): Promise<void> {
    if (!this.reuse) await this.stopAll();
  }

  async stopAll(): Promise<void> {
    const all = [...this.live.values()];
    this.live.clear();
    await Promise.all(all.map((c) => c.stop()));
    await this.backend?.stop();
    this.backend = undefined;
  }
}
