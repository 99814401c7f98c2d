// Starts what the harness measures: per system a private redis-server and N server processes on free ports, plus the
// webhook backend for the rpc scenario. Everything started here is stopped here.
import net from 'node:net';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FatalError, cpuSeconds, freeLowPort, freePort, hasBinary, rssKiB, waitFor, type Managed, type Processes } from './proc.js';

export const SYSTEMS = ['switchboard', 'plain', 'stock', 'ceiling', 'pushpin'] as const;
export type SystemName = (typeof SYSTEMS)[number];
/** The systems that speak Socket.IO (every scenario but sse-fanout) … */
export const SOCKETIO_SYSTEMS: readonly SystemName[] = ['switchboard', 'plain', 'stock', 'ceiling'];
/** … and those that serve SSE fed by publishes (sse-fanout). */
export const SSE_SYSTEMS: readonly SystemName[] = ['switchboard', 'pushpin'];

/** `embedded`: rpc answered in-process (Switchboard loads the bench app); `webhook`: through BACKEND_URL. */
export type Variant = 'embedded' | 'webhook';

/** The build the harness runs from (this dist/); a tool may point serverCommand/serverEnv at another one. */
export const DIST_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dist = (rel: string, root = DIST_ROOT) => join(root, rel);
const SERVER_JS: Record<Exclude<SystemName, 'pushpin'>, string> = {
  switchboard: 'node/src/main.js',
  plain: 'loadtest/baselines/plain.js',
  stock: 'loadtest/baselines/stock.js',
  ceiling: 'loadtest/baselines/ceiling.js',
};
const SERVER_ARGS: Record<Exclude<SystemName, 'pushpin'>, string[]> = { switchboard: ['listen'], plain: [], stock: [], ceiling: [] };

/** The script and arguments that start one server of `system` from the build at `root`. */
export function serverCommand(system: Exclude<SystemName, 'pushpin'>, root = DIST_ROOT): string[] {
  return [dist(SERVER_JS[system], root), ...SERVER_ARGS[system]];
}

/** A server process's environment: its ports, Redis, the API key; Switchboard's bench settings and app on top. */
export function serverEnv(
  system: Exclude<SystemName, 'pushpin'>,
  variant: Variant,
  o: { port: number; internalPort: number; redisPort: number; nodeId: string; apiKey: string; backendUrl?: string; root?: string },
  switchboardEnv: Record<string, string> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: String(o.port),
    HOST: '127.0.0.1',
    INTERNAL_PORT: String(o.internalPort),
    REDIS_URL: `redis://127.0.0.1:${o.redisPort}`,
    NODE_ID: o.nodeId,
    API_KEYS: o.apiKey,
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
  };
  if (variant === 'webhook') {
    env.BACKEND_URL = o.backendUrl;
    // Switchboard signs every webhook; the bench backend does not check, but the key is required.
    env.WEBHOOK_SECRET = 'bench-webhook-secret-0123456789abcdef';
  }
  if (system === 'switchboard') {
    if (variant === 'embedded') env.SWITCHBOARD_APP = dist('loadtest/harness/bench-app.js', o.root);
    Object.assign(env, SWITCHBOARD_BENCH_ENV, switchboardEnv);
  }
  return env;
}
const BACKEND_JS = dist('loadtest/harness/backend.js');

/**
 * What Switchboard nodes get besides the shared environment: the bench channels open to any client (the baselines
 * have no rules), and the per-connection and per-address limits out of the way, since every client here comes from
 * a handful of loopback addresses and one publisher connection carries the whole publish rate. The limit checks
 * still run; they just never trip. No load balancer stands in front, so stopping skips the drain delay (and a
 * profiled node writes its .cpuprofile before the harness's 3 s stop deadline). `--node-env` overrides any of these.
 */
export const SWITCHBOARD_BENCH_ENV: Record<string, string> = {
  DRAIN_DELAY_MS: '0',
  DRAIN_TIMEOUT_MS: '1000',
  CHANNEL_RULES: JSON.stringify([{ prefix: 'bench:', subscribe: 'anyone', publish: 'anyone' }]),
  EVENTS_PER_SECOND: '1000000',
  // Load clients publish from one address without a user: not the demo page's abuse this limit is for.
  ANONYMOUS_PUBLISHES_PER_SECOND_PER_IP: '1000000',
  CONNECTIONS_PER_IP: '1000000',
  HANDSHAKES_PER_SECOND_PER_IP: '1000000',
};

/** Why `system` cannot run here (not built, not installed), or undefined when it can. */
export function systemMissing(system: SystemName): string | undefined {
  if (system === 'pushpin') {
    if (!hasBinary('pushpin')) return 'pushpin: not installed (apt-get install -y pushpin)';
    return existsSync(BACKEND_JS) ? undefined : 'pushpin: the GRIP backend is not built (run `npm run build`)';
  }
  return existsSync(dist(SERVER_JS[system])) ? undefined : `${system}: server not built (run \`npm run build\`)`;
}

export interface ServerNode {
  index: number;
  port: number;
  internalPort: number;
  /** http://127.0.0.1:<port> */
  url: string;
  /** Where publications are POSTed, when not `url` (Pushpin's publish port). */
  publishUrl?: string;
  pid: number;
  /** Processes that count as part of this node besides `pid`'s tree (Pushpin's GRIP backend). */
  extraPids?: number[];
  managed: Managed;
}

export interface Cluster {
  system: SystemName;
  variant: Variant;
  /** Absent for Pushpin, which needs none. */
  redis?: { port: number; pid: number; managed: Managed };
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

/** A bench redis-server's arguments: loopback, nothing on disk, warnings only; `extra` (cluster mode, …) on top. */
export function redisArgs(port: number, extra: string[] = []): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', ...extra];
}

/** A bench redis-server on a free port, once it answers PING; fails naming the install command when it can't start. */
export async function startRedis(opts: Pick<ClusterOptions, 'registry' | 'signal'>, tag: string) {
  const port = await freePort();
  const managed = opts.registry.spawn(`redis ${tag}`, 'redis-server', redisArgs(port));
  let dead = false;
  void managed.exited.then(() => (dead = true));
  await waitFor(
    async () => {
      if (dead)
        throw new FatalError(`redis-server exited: ${managed.output() || 'is redis-server installed? apt-get install -y redis-server'}`);
      return ping(port);
    },
    `redis-server on ${port}`,
    10_000,
    opts.signal,
  );
  return { port, pid: managed.proc.pid!, managed };
}

async function startNode(
  system: Exclude<SystemName, 'pushpin'>,
  variant: Variant,
  index: number,
  redisPort: number,
  backendUrl: string | undefined,
  opts: ClusterOptions,
): Promise<ServerNode> {
  const port = await freePort();
  const internalPort = await freePort();
  const env = serverEnv(
    system,
    variant,
    { port, internalPort, redisPort, nodeId: `bench-${system}-${index + 1}`, apiKey: opts.apiKey, backendUrl },
    opts.switchboardEnv,
  );
  // SB_BENCH_NODE_ARGS: extra flags for the server processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile.
  const nodeArgs = (process.env.SB_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // A profiled node writes its profile on the way out: give it time before SIGKILL.
  const stopGraceMs = nodeArgs.some((a) => a.startsWith('--cpu-prof') || a.startsWith('--heap-prof')) ? 60_000 : 3000;
  const managed = opts.registry.spawn(`${system} node ${index + 1}`, process.execPath, [...nodeArgs, ...serverCommand(system)], {
    env,
    stopGraceMs,
  });
  // SB_BENCH_NODE_OUTPUT=DIR: each server's whole output in DIR/<system>-<n>-<pid>.log (e.g. with --trace-gc in
  // SB_BENCH_NODE_ARGS); otherwise only its last 16 KiB is kept, for the error of a node that fails to start.
  const outDir = process.env.SB_BENCH_NODE_OUTPUT;
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    const log = createWriteStream(join(outDir, `${system}-${index + 1}-${managed.proc.pid}.log`));
    managed.proc.stdout?.pipe(log, { end: false });
    managed.proc.stderr?.pipe(log, { end: false });
    void managed.exited.then(() => log.end());
  }
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

const nodeCpu = (n: ServerNode) => [n.pid, ...(n.extraPids ?? [])].reduce((a, p) => a + cpuSeconds(p), 0);
const nodeRss = (n: ServerNode) => [n.pid, ...(n.extraPids ?? [])].reduce((a, p) => a + rssKiB(p), 0);

export async function startCluster(
  system: SystemName,
  variant: Variant,
  backendUrl: string | undefined,
  opts: ClusterOptions,
): Promise<Cluster> {
  const missing = systemMissing(system);
  if (missing) throw new Error(missing);
  if (system === 'pushpin') return startPushpin(opts);
  const redis = await startRedis(opts, system);
  const nodes: ServerNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.managed.stop()));
    await redis.managed.stop();
  };
  try {
    // One at a time: on two cores a parallel start only makes each slower to become ready.
    for (let i = 0; i < opts.nodes; i++)
      nodes.push(await startNode(system as Exclude<SystemName, 'pushpin'>, variant, i, redis.port, backendUrl, opts));
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
      const perNode = nodes.map(nodeCpu);
      return { nodes: perNode.reduce((a, b) => a + b, 0), perNode, redis: cpuSeconds(redis.pid) };
    },
    rss: (i) => nodeRss(nodes[i]!),
    stop,
  };
}

/**
 * Pushpin 1.36 as one node: its runner (condure, zurl, pushpin-proxy, pushpin-handler) with its own config, ports
 * and runtime folder in a temp folder, routing every request to the bench backend (backend.ts), which answers
 * `GET /sse?channel=…` with GRIP hold headers. Publications go to Pushpin's publish port (`POST /publish/`). The
 * runner leads its own process group, so nothing of it outlives the harness. Tuning: logs at warning (Switchboard
 * runs at warn). The handler's publish rate limit (message_rate) stays at its default, 2,500 publications/s (each
 * reaching every stream of its channel): any higher setting (10,000 or more) made Pushpin 1.36 hold every delivery
 * for seconds here, and the old 1,000,000 let nothing through within a 5 s round.
 */
async function startPushpin(opts: ClusterOptions): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-pushpin-'));
  const ports: number[] = [];
  // Below the ephemeral range: Pushpin binds them seconds later, by when an outgoing connection may hold one.
  while (ports.length < 6) {
    const p = await freeLowPort();
    if (!ports.includes(p)) ports.push(p);
  }
  const [httpPort, publishPort, pushIn, pushInSub, command, backendPort] = ports as [number, number, number, number, number, number];
  const backend = opts.registry.spawn('pushpin backend', process.execPath, [BACKEND_JS], {
    env: { PATH: process.env.PATH, PORT: String(backendPort) },
  });
  writeFileSync(join(dir, 'routes'), `* 127.0.0.1:${backendPort}\n`);
  writeFileSync(
    join(dir, 'pushpin.conf'),
    [
      '[global]',
      'include={libdir}/internal.conf',
      `rundir=${dir}`,
      'ipc_prefix=sbbench-',
      'port_offset=0',
      'stats_connection_ttl=120',
      '[runner]',
      // Debian's config leaves zurl to a system service; here the runner starts its own.
      'services=condure,zurl,pushpin-proxy,pushpin-handler',
      `http_port=${httpPort}`,
      `logdir=${dir}`,
      'log_level=1',
      'client_buffer_size=8192',
      'client_maxconn=200000',
      '[proxy]',
      `routesfile=${join(dir, 'routes')}`,
      `zurl_out_specs=ipc://${dir}/sbbench-zurl-in`,
      `zurl_out_stream_specs=ipc://${dir}/sbbench-zurl-in-stream`,
      `zurl_in_specs=ipc://${dir}/sbbench-zurl-out`,
      'sig_key=bench-not-secret',
      'updates_check=off',
      '[handler]',
      `push_in_spec=tcp://127.0.0.1:${pushIn}`,
      `push_in_sub_specs=tcp://127.0.0.1:${pushInSub}`,
      'push_in_sub_connect=false',
      'push_in_http_addr=127.0.0.1',
      `push_in_http_port=${publishPort}`,
      'push_in_http_max_body_size=1000000',
      `stats_spec=ipc://${dir}/sbbench-stats`,
      `command_spec=tcp://127.0.0.1:${command}`,
      'message_wait=5000',
      'connection_subscription_max=20',
      'subscription_linger=60',
      '',
    ].join('\n'),
  );
  const managed = opts.registry.spawn('pushpin', 'pushpin', ['--config', join(dir, 'pushpin.conf'), '--merge-output'], {
    group: true,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  const stop = async () => {
    await managed.stop();
    await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  let dead = false;
  void managed.exited.then(() => (dead = true));
  const ok = async (url: string, init?: RequestInit) => {
    if (dead) throw new FatalError(`pushpin exited: ${managed.output().slice(-2000)}`);
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  };
  try {
    await waitFor(() => ok(`http://127.0.0.1:${httpPort}/healthz`), 'pushpin proxying to the backend', 30_000, opts.signal);
    await waitFor(
      () =>
        ok(`http://127.0.0.1:${publishPort}/publish/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"items":[]}',
        }),
      'pushpin publish port',
      30_000,
      opts.signal,
    );
    // The whole chain, as a stream will use it: the proxy hands a GRIP hold to the handler, which answers 200. Right
    // after start the handler may not have taken its first hold yet (a loaded machine saw `SSE 500` then).
    await waitFor(
      async () => {
        if (dead) throw new FatalError(`pushpin exited: ${managed.output().slice(-2000)}`);
        const ac = new AbortController();
        const t = setTimeout(() => ac.abort(), 2000);
        try {
          const res = await fetch(`http://127.0.0.1:${httpPort}/sse?channel=bench:ready`, {
            headers: { accept: 'text/event-stream' },
            signal: ac.signal,
          });
          return res.status === 200;
        } finally {
          clearTimeout(t);
          ac.abort();
        }
      },
      'pushpin holding an SSE stream',
      30_000,
      opts.signal,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const node: ServerNode = {
    index: 0,
    port: httpPort,
    internalPort: 0,
    url: `http://127.0.0.1:${httpPort}`,
    publishUrl: `http://127.0.0.1:${publishPort}`,
    pid: managed.proc.pid!,
    extraPids: [backend.proc.pid!],
    managed,
  };
  return {
    system: 'pushpin',
    variant: 'embedded',
    nodes: [node],
    cpu() {
      const perNode = [nodeCpu(node)];
      return { nodes: perNode[0]!, perNode, redis: 0 };
    },
    rss: () => nodeRss(node),
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

  /** `nodes`: this many nodes instead of the run's (sse-fanout and idle measure one node). */
  async get(system: SystemName, variant: Variant = 'embedded', nodes = this.opts.nodes): Promise<Cluster> {
    const key = `${system}/${variant}/${nodes}`;
    const have = this.live.get(key);
    if (have) return have;
    let backendUrl: string | undefined;
    if (variant === 'webhook') {
      this.backend ??= await startBackend(this.opts.registry, this.opts.signal);
      backendUrl = this.backend.url;
    }
    const c = await startCluster(system, variant, backendUrl, { ...this.opts, nodes });
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
