// bus-capacity: what the Redis bus costs and how it spreads. Publications go to `channels` channels (HTTP API,
// round-robin over nodes A and B); each channel has one subscriber, half on A, half on B; node C has none. Run over
// one redis-server and over a Redis Cluster of 3 masters + 3 replicas (started here, on free ports). Figures per
// mode: Redis CPU per publication (in total and per shard), each shard's share of publications, and node C's CPU
// per publication of channels it does not serve (minus its idle CPU; it receives none of them).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { io, type Socket } from 'socket.io-client';
import { channelSlot } from '../../../node/src/bus/slots.js';
import { round } from '../aggregate.js';
import { sleep } from '../clock.js';
import { redisArgs, SWITCHBOARD_BENCH_ENV } from '../cluster.js';
import { cpuSeconds, FatalError, freePort, waitFor, type Managed } from '../proc.js';
import type { Ctx } from '../session.js';
import { evaluate } from '../thresholds.js';
import { eachRound, finish, type Runner } from './common.js';

const MAIN_JS = fileURLToPath(new URL('../../../node/src/main.js', import.meta.url));
type Mode = 'one-redis' | 'cluster';

interface Topology {
  /** Masters by port, with the pid whose CPU is theirs. */
  masters: { port: number; pid: number }[];
  ownerOfSlot(slot: number): number;
  env: Record<string, string>;
  stop(): Promise<void>;
}

async function ping(port: number): Promise<boolean> {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
    retryStrategy: () => null,
  });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } finally {
    r.disconnect();
  }
}

function spawnRedis(ctx: Ctx, port: number, args: string[]): Managed {
  return ctx.registry.spawn(`redis ${port}`, 'redis-server', redisArgs(port, args));
}

async function oneRedis(ctx: Ctx): Promise<Topology> {
  const port = await freePort();
  const m = spawnRedis(ctx, port, []);
  await waitFor(() => ping(port), `redis-server on ${port}`, 10_000, ctx.signal);
  return {
    masters: [{ port, pid: m.proc.pid! }],
    ownerOfSlot: () => port,
    env: { REDIS_URL: `redis://127.0.0.1:${port}` },
    stop: () => m.stop(),
  };
}

/** A port whose cluster-bus port (+10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p > 55_000 || taken.has(p)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = net
        .createServer()
        .once('error', () => resolve(false))
        .listen(p + 10_000, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) {
      taken.add(p);
      return p;
    }
  }
}

async function redisCluster(ctx: Ctx): Promise<Topology> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-cluster-'));
  const procs = new Map<number, Managed>();
  const stop = async () => {
    await Promise.all([...procs.values()].map((m) => m.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const taken = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const port = await clusterPort(taken);
      mkdirSync(join(dir, String(port)));
      procs.set(
        port,
        spawnRedis(ctx, port, [
          '--dir',
          join(dir, String(port)),
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
          '--cluster-require-full-coverage',
          'no',
        ]),
      );
    }
    for (const port of procs.keys()) await waitFor(() => ping(port), `cluster node ${port}`, 10_000, ctx.signal);
    await promisify(execFile)('redis-cli', [
      '--cluster',
      'create',
      ...[...procs.keys()].map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
    const first = [...procs.keys()][0]!;
    const owners = new Array<number>(16384).fill(0);
    await waitFor(
      async () => {
        for (const port of procs.keys()) {
          const r = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
          r.on('error', () => {});
          try {
            await r.connect();
            if (!/cluster_state:ok/.test(String(await r.cluster('INFO')))) return false;
          } finally {
            r.disconnect();
          }
        }
        return true;
      },
      'the Redis Cluster to be ok',
      30_000,
      ctx.signal,
    );
    const r = new Redis({ port: first });
    try {
      for (const [from, to, [, port]] of (await r.cluster('SLOTS')) as unknown as [number, number, [string, number]][])
        for (let s = from; s <= to; s++) owners[s] = port;
    } finally {
      r.disconnect();
    }
    const masters = [...new Set(owners)].sort((a, b) => a - b).map((port) => ({ port, pid: procs.get(port)!.proc.pid! }));
    if (masters.length !== 3 || owners.includes(0))
      throw new Error(`expected 3 masters covering every slot, got ${masters.map((m) => m.port).join(',')}`);
    return {
      masters,
      ownerOfSlot: (s) => owners[s]!,
      env: { REDIS_CLUSTER_NODES: [...procs.keys()].map((p) => `redis://127.0.0.1:${p}`).join(',') },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Calls and microseconds of EVALSHA (the publish script) on one Redis, from INFO commandstats. */
async function scriptStats(port: number): Promise<{ calls: number; usec: number }> {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  r.on('error', () => {});
  try {
    const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(String(await r.info('commandstats')));
    return { calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0) };
  } finally {
    r.disconnect();
  }
}

interface Node {
  url: string;
  internalUrl: string;
  pid: number;
  managed: Managed;
}

async function startNode(ctx: Ctx, name: string, env: Record<string, string>): Promise<Node> {
  const port = await freePort();
  const internalPort = await freePort();
  const managed = ctx.registry.spawn(`switchboard ${name}`, process.execPath, [MAIN_JS, 'listen'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(port),
      HOST: '127.0.0.1',
      INTERNAL_PORT: String(internalPort),
      NODE_ID: `bench-bus-${name}`,
      API_KEYS: ctx.apiKey,
      LOG_LEVEL: 'warn',
      NODE_ENV: 'production',
      ...SWITCHBOARD_BENCH_ENV,
      ...env,
    },
  });
  let dead = false;
  void managed.exited.then(() => (dead = true));
  await waitFor(
    async () => {
      if (dead) throw new FatalError(`switchboard ${name} exited early: ${managed.output().slice(-2000)}`);
      const res = await fetch(`http://127.0.0.1:${internalPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 200;
    },
    `switchboard ${name} /readyz`,
    30_000,
    ctx.signal,
  );
  return { url: `http://127.0.0.1:${port}`, internalUrl: `http://127.0.0.1:${internalPort}`, pid: managed.proc.pid!, managed };
}

async function received(n: Node): Promise<number> {
  const text = await (await fetch(`${n.internalUrl}/metrics`)).text();
  return Number(/^switchboard_bus_received_total(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? NaN);
}

interface Sums {
  seconds: number;
  published: number;
  errors: number;
  lost: number;
  redisCpu: number;
  /** What Redis spent over the same time with no publications (measured in the idle window). */
  redisIdleCpu: number;
  perShard: { published: number; cpu: number; idle: number; scriptUs: number; scriptCalls: number }[];
  idleNodeCpu: number;
  idleNodeReceived: number;
  subscriberNodesCpu: number;
  subscriberNodesReceived: number;
}

/** One round of one mode: topology, three nodes, subscribers, an idle window, a warm-up, the measured window. */
async function measure(ctx: Ctx, mode: Mode, p: Parameters<Runner<'bus-capacity'>>[0]['params'], r: number, sums: Sums) {
  const label = `bus-capacity · ${mode} · round ${r + 1}/${p.rounds}`;
  ctx.progress.phase(`${label} · starting Redis`);
  const topo = mode === 'cluster' ? await redisCluster(ctx) : await oneRedis(ctx);
  const nodes: Node[] = [];
  const sockets: Socket[] = [];
  try {
    ctx.progress.phase(`${label} · starting nodes`);
    nodes.push(
      ...(await Promise.all(
        ['a', 'b', 'c'].map((name) => startNode(ctx, name, { ...topo.env, MAX_SUBSCRIPTIONS: String(p.channelsPerConnection) })),
      )),
    );
    const [a, b, c] = nodes as [Node, Node, Node];
    const channels = Array.from(
      { length: p.channels },
      (_, i) => `${p.channelPrefix}:${ctx.runId}:bus${r}${mode === 'cluster' ? 'c' : 's'}:${i}`,
    );
    const shardOf = channels.map((ch) => topo.masters.findIndex((m) => m.port === topo.ownerOfSlot(channelSlot(ch))));
    let delivered = 0;
    ctx.progress.phase(`${label} · subscribing ${p.channels} channels`);
    for (const [k, node] of [a, b].entries()) {
      const mine = channels.filter((_, i) => i % 2 === k);
      for (let i = 0; i < mine.length; i += p.channelsPerConnection) {
        const s = io(node.url, { transports: ['websocket'], forceNew: true, reconnection: false });
        sockets.push(s);
        s.on(p.event, () => delivered++);
        await new Promise<void>((resolve, reject) => s.once('connect', () => resolve()).once('connect_error', reject));
        const acks = await Promise.all(
          mine
            .slice(i, i + p.channelsPerConnection)
            .map((ch) => s.timeout(30_000).emitWithAck('subscribe', ch) as Promise<{ ok: boolean; error?: { message: string } }>),
        );
        const bad = acks.find((x) => !x.ok);
        if (bad) throw new Error(`subscribe refused: ${bad.error?.message}`);
      }
    }
    const data = { pad: 'x'.repeat(p.payloadBytes) };
    let cursor = 0;
    let inflight = 0;
    let published = 0;
    let errors = 0;
    let warmed = 0;
    const perShard = topo.masters.map(() => 0);
    const publishFor = async (seconds: number, count: boolean) => {
      const end = Date.now() + seconds * 1000;
      let due = 0;
      let k = 0;
      let last = Date.now();
      while (Date.now() < end) {
        const now = Date.now();
        due += ((now - last) / 1000) * p.publishRate;
        last = now;
        while (due >= p.batch && inflight < 64) {
          due -= p.batch;
          const idx = Array.from({ length: p.batch }, () => cursor++ % channels.length);
          inflight++;
          const via = k++ % 2 ? b : a;
          fetch(`${via.url}/api/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${ctx.apiKey}` },
            body: JSON.stringify({ channels: idx.map((i) => channels[i]), event: p.event, data }),
          })
            .then(async (res) => {
              await res.arrayBuffer();
              if (!count) return void (res.status === 200 && (warmed += idx.length));
              if (res.status !== 200) return void (errors += idx.length);
              published += idx.length;
              for (const i of idx) perShard[shardOf[i]!]!++;
            })
            .catch(() => count && (errors += idx.length))
            .finally(() => inflight--);
        }
        await sleep(5, ctx.signal);
      }
      await waitFor(() => inflight === 0, 'publishes in flight', 30_000, ctx.signal);
    };
    // Node C's idle CPU first, so what the load adds to it can be told apart.
    ctx.progress.phase(`${label} · idle window`);
    const idleSeconds = Math.max(p.warmupSeconds, 1);
    const c0 = cpuSeconds(c.pid);
    const redisIdle0 = topo.masters.map((m) => cpuSeconds(m.pid));
    const ti = Date.now();
    await sleep(idleSeconds * 1000, ctx.signal);
    const idleDt = (Date.now() - ti) / 1000;
    const idleRate = (cpuSeconds(c.pid) - c0) / idleDt;
    // Redis's own background (canaries, position checks of quiet channels, node heartbeats), per master.
    const redisIdleRate = topo.masters.map((m, i) => (cpuSeconds(m.pid) - redisIdle0[i]!) / idleDt);
    ctx.progress.phase(`${label} · warm-up`);
    await publishFor(p.warmupSeconds, false);
    // The window starts once the warm-up's publications have all arrived, so they are not counted in it.
    await waitFor(() => delivered >= warmed, 'the warm-up deliveries', 30_000, ctx.signal).catch(() => undefined);
    ctx.progress.phase(`${label} · measuring`);
    const seconds = p.durationSeconds / p.rounds;
    const redis0 = topo.masters.map((m) => cpuSeconds(m.pid));
    const script0 = await Promise.all(topo.masters.map((m) => scriptStats(m.port)));
    const cpu0 = nodes.map((n) => cpuSeconds(n.pid));
    const recv0 = await Promise.all(nodes.map(received));
    const delivered0 = delivered;
    const t0 = Date.now();
    await publishFor(seconds, true);
    const dt = (Date.now() - t0) / 1000;
    const redis1 = topo.masters.map((m) => cpuSeconds(m.pid));
    const script1 = await Promise.all(topo.masters.map((m) => scriptStats(m.port)));
    const cpu1 = nodes.map((n) => cpuSeconds(n.pid));
    await waitFor(() => delivered - delivered0 >= published, `${published} deliveries`, 15_000, ctx.signal).catch(() => undefined);
    const recv1 = await Promise.all(nodes.map(received));
    sums.seconds += dt;
    sums.published += published;
    sums.errors += errors;
    sums.lost += Math.max(0, published - (delivered - delivered0));
    sums.redisCpu += redis1.reduce((x, v, i) => x + v - redis0[i]!, 0);
    sums.redisIdleCpu += redisIdleRate.reduce((x, v) => x + v * dt, 0);
    topo.masters.forEach((_, i) => {
      sums.perShard[i] ??= { published: 0, cpu: 0, idle: 0, scriptUs: 0, scriptCalls: 0 };
      sums.perShard[i]!.scriptUs += script1[i]!.usec - script0[i]!.usec;
      sums.perShard[i]!.scriptCalls += script1[i]!.calls - script0[i]!.calls;
      sums.perShard[i]!.published += perShard[i]!;
      sums.perShard[i]!.cpu += redis1[i]! - redis0[i]!;
      sums.perShard[i]!.idle += redisIdleRate[i]! * dt;
    });
    sums.idleNodeCpu += cpu1[2]! - cpu0[2]! - idleRate * dt;
    sums.idleNodeReceived += recv1[2]! - recv0[2]!;
    sums.subscriberNodesCpu += cpu1[0]! - cpu0[0]! + cpu1[1]! - cpu0[1]!;
    sums.subscriberNodesReceived += recv1[0]! - recv0[0]! + recv1[1]! - recv0[1]!;
    ctx.progress.log(
      `${label}: ${Math.round(published / dt)} publications/s, Redis ${((sums.redisCpu / sums.published) * 1e6).toFixed(1)} µs/publication, node C received ${recv1[2]! - recv0[2]!}, lost ${Math.max(0, published - (delivered - delivered0))}`,
    );
  } finally {
    for (const s of sockets) s.disconnect();
    await Promise.all(nodes.map((n) => n.managed.stop()));
    await topo.stop();
  }
}

export const runBusCapacity: Runner<'bus-capacity'> = async ({ ctx, scenario, params: p, systems }) => {
  if (!systems.includes('switchboard')) return [];
  const sums = new Map<Mode, Sums>();
  const failures = await eachRound(ctx, ['switchboard'], p.rounds, async (_system, r) => {
    for (const mode of r % 2 ? [...p.modes].reverse() : p.modes) {
      const s = sums.get(mode) ?? {
        seconds: 0,
        published: 0,
        errors: 0,
        lost: 0,
        redisCpu: 0,
        redisIdleCpu: 0,
        perShard: [],
        idleNodeCpu: 0,
        idleNodeReceived: 0,
        subscriberNodesCpu: 0,
        subscriberNodesReceived: 0,
      };
      sums.set(mode, s);
      await measure(ctx, mode, p, r, s);
    }
  });
  if (failures.has('switchboard')) return [failures.get('switchboard')!];
  const figures: Record<string, number | null> = {};
  let seconds = 0;
  let published = 0;
  let lost = 0;
  let errors = 0;
  for (const [mode, s] of sums) {
    const k = mode === 'cluster' ? 'cluster' : 'oneRedis';
    const per = (v: number) => (s.published > 0 ? round((v / s.published) * 1e6, 2) : null);
    figures[`${k}.publicationsPerSecond`] = s.seconds > 0 ? Math.round(s.published / s.seconds) : null;
    figures[`${k}.redisCpuUsPerPublication`] = per(s.redisCpu);
    figures[`${k}.redisCpuUsPerPublicationNetOfIdle`] = per(s.redisCpu - s.redisIdleCpu);
    s.perShard.forEach((x, i) => {
      const net = x.cpu - x.idle;
      figures[`${k}.shard${i + 1}.redisCpuUsPerPublication`] = x.published > 0 ? round((net / x.published) * 1e6, 2) : null;
      // Redis's own timing of the publish script (INFO commandstats: EVALSHA), canaries included.
      figures[`${k}.shard${i + 1}.scriptUsPerCall`] = x.scriptCalls > 0 ? round(x.scriptUs / x.scriptCalls, 2) : null;
      figures[`${k}.shard${i + 1}.sharePct`] = s.published > 0 ? round((x.published / s.published) * 100, 1) : null;
      // What one shard could take at one core (net of its background): the capacity model's per-shard rate.
      figures[`${k}.shard${i + 1}.publicationsPerCoreSecond`] = net > 0 ? Math.round(x.published / net) : null;
    });
    figures[`${k}.idleNodeCpuUsPerPublication`] = per(s.idleNodeCpu);
    figures[`${k}.idleNodeBusReceived`] = s.idleNodeReceived;
    figures[`${k}.subscriberNodesCpuUsPerPublication`] = per(s.subscriberNodesCpu);
    figures[`${k}.subscriberNodesBusReceivedPerPublication`] = s.published > 0 ? round(s.subscriberNodesReceived / s.published, 3) : null;
    figures[`${k}.lost`] = s.lost;
    seconds += s.seconds;
    published += s.published;
    lost += s.lost;
    errors += s.errors;
  }
  const metrics = {
    sb_messages_lost: { count: lost, rate: seconds > 0 ? lost / seconds : 0 },
    sb_publish_errors: { count: errors, rate: seconds > 0 ? errors / seconds : 0 },
    sb_deliveries: { count: published - lost, rate: seconds > 0 ? (published - lost) / seconds : 0 },
    sb_connect_errors: { count: 0, rate: 0 },
  };
  figures.lost = lost;
  return [
    finish({
      system: 'switchboard',
      seconds: round(seconds, 2),
      metrics,
      figures,
      thresholds: evaluate(scenario.thresholds, metrics),
      errors: [],
    }),
  ];
};
