// Starts a private Redis Sentinel set (a master, 2 replicas, 3 sentinels, quorum 2) on free ports for one test file,
// with the failover drills; always stops every process it started and removes its folders.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.js';
import { command, faults, killRedis, launchRedis, parseInfo, removeDir, tempDir, waitPing, type RedisProcess } from './redis-process.js';

export interface TestSentinel {
  /** Master group name. */
  name: string;
  /** Data nodes; the first starts as master. */
  data: RedisProcess[];
  sentinels: RedisProcess[];
  /** `127.0.0.1:p,…` of the sentinels, as REDIS_SENTINELS takes it. */
  sentinelList: string;
  /** REDIS_SENTINELS, REDIS_SENTINEL_NAME and the passwords (if any) for a node. */
  env: Record<string, string>;
  /** Port of the master the sentinels name now. */
  master(): Promise<number>;
  /** kill -9 of a data node. */
  kill(port: number): Promise<void>;
  pause(port: number): void;
  resume(port: number): void;
  /** Starts a killed data node again (empty: no persistence); the sentinels make it a replica of the current master. */
  restart(port: number): Promise<void>;
  /** Planned switchover: SENTINEL FAILOVER; resolves with the new master's port once it answers as master. */
  failover(): Promise<number>;
  /** After losing the master on `oldPort`: waits until the sentinels name another one and it answers as master. */
  waitNewMaster(oldPort: number): Promise<number>;
  /** The master named by every live sentinel, each seeing `replicas` live replicas (default: every other live data node). */
  waitSettled(replicas?: number): Promise<number>;
  /** One command on a data node (authenticated when the set has a password). */
  command(port: number, ...args: (string | number)[]): Promise<unknown>;
  stop(): Promise<void>;
}

export interface StartSentinelOptions {
  /** down-after-milliseconds. @default 1000 */
  downAfterMs?: number;
  /** failover-timeout. @default 5000 */
  failoverTimeoutMs?: number;
  /** @default 30000 */
  timeoutMs?: number;
  /** requirepass (and masterauth) of the data nodes. */
  password?: string;
  /** requirepass of the sentinels. */
  sentinelPassword?: string;
}

export async function startSentinel(opts: StartSentinelOptions = {}): Promise<TestSentinel> {
  const name = 'sbmaster';
  const downAfter = opts.downAfterMs ?? 1000;
  const failoverTimeout = opts.failoverTimeoutMs ?? 5000;
  const timeout = opts.timeoutMs ?? 30_000;
  const root = tempDir('redis-sentinel');
  const data: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const pw = opts.password;
  const spw = opts.sentinelPassword;
  const dataArgs = ['--repl-diskless-sync-delay', '0', '--loglevel', 'warning', ...(pw ? ['--requirepass', pw, '--masterauth', pw] : [])];
  const dataCmd = (port: number, args: (string | number)[]) => command(port, args, 1000, pw);
  const sentinelCmd = (port: number, args: (string | number)[]) => command(port, args, 1000, spw);

  const byPort = (port: number) => {
    const n = data.find((x) => x.port === port);
    if (!n) throw new Error(`no data node on ${port}`);
    return n;
  };
  const liveSentinels = () => sentinels.filter((s) => s.running());
  const named = async (s: RedisProcess) => {
    const addr = (await sentinelCmd(s.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name])) as [string, string] | null;
    return addr ? Number(addr[1]) : undefined;
  };
  const isMaster = async (port: number) =>
    parseInfo(String(await dataCmd(port, ['INFO', 'replication']).catch(() => ''))).role === 'master';
  const master = async () => {
    for (const s of liveSentinels()) {
      const p = await named(s).catch(() => undefined);
      if (p !== undefined) return p;
    }
    throw new Error('no sentinel names a master');
  };
  const waitNewMaster = (oldPort: number) =>
    waitFor(
      async () => {
        const p = await master().catch(() => undefined);
        return p !== undefined && p !== oldPort && (await isMaster(p)) ? p : undefined;
      },
      { timeout, interval: 100, what: `the sentinels to promote a replica in place of ${oldPort}` },
    );
  const waitSettled = (replicas?: number) =>
    waitFor(
      async () => {
        const m = await master();
        if (!(await isMaster(m))) return undefined;
        const want = replicas ?? data.filter((d) => d.running() && d.port !== m).length;
        for (const s of liveSentinels()) {
          if ((await named(s)) !== m) return undefined;
          const reps = (await sentinelCmd(s.port, ['SENTINEL', 'REPLICAS', name])) as string[][];
          const ok = reps.filter((r) => {
            const kv = Object.fromEntries(r.flatMap((_, i) => (i % 2 ? [] : [[r[i], r[i + 1]]])));
            return !/s_down|o_down|disconnected/.test(kv.flags ?? '') && kv['master-link-status'] === 'ok';
          });
          if (ok.length < want) return undefined;
          const others = (await sentinelCmd(s.port, ['SENTINEL', 'SENTINELS', name])) as unknown[];
          if (others.length < liveSentinels().length - 1) return undefined;
        }
        return m;
      },
      { timeout, interval: 100, what: 'the sentinels to agree on a master with its replicas attached' },
    );
  const startData = (port: number, replicaOf?: number) => {
    const dir = join(root, `data-${port}`);
    mkdirSync(dir, { recursive: true });
    const p = launchRedis(port, dir, [...dataArgs, ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf)] : [])]);
    const i = data.findIndex((d) => d.port === port);
    if (i >= 0) data[i] = p;
    else data.push(p);
    return p;
  };

  const s: TestSentinel = {
    name,
    data,
    sentinels,
    sentinelList: '',
    env: {},
    master,
    ...faults(byPort),
    async restart(port) {
      await killRedis(byPort(port));
      // Started as a replica of the current master: an empty node announcing itself as master would be a trap.
      await waitPing(startData(port, await master()), `data node ${port} restarted`, pw);
    },
    async failover() {
      const old = await master();
      await waitFor(
        async () =>
          (await sentinelCmd(liveSentinels()[0]!.port, ['SENTINEL', 'FAILOVER', name]).catch((e: Error) =>
            /INPROG/.test(e.message) ? false : Promise.reject(e),
          )) === 'OK',
        {
          timeout,
          what: 'SENTINEL FAILOVER to be accepted',
        },
      );
      return waitNewMaster(old);
    },
    waitNewMaster,
    waitSettled,
    command: (port, ...args) => dataCmd(port, args),
    async stop() {
      await Promise.all([...sentinels, ...data].map((p) => killRedis(p)));
      removeDir(root);
    },
  };

  try {
    const ports = [await freePort(), await freePort(), await freePort()];
    const m = startData(ports[0]!);
    await waitPing(m, 'sentinel-set master', pw);
    for (const p of ports.slice(1)) startData(p, ports[0]);
    await Promise.all(data.map((d) => waitPing(d, `data node ${d.port}`, pw)));
    await waitFor(async () => Number(parseInfo(String(await dataCmd(ports[0]!, ['INFO', 'replication']))).connected_slaves) === 2, {
      timeout,
      what: 'both replicas attached',
    });
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = join(root, `sentinel-${port}`);
      mkdirSync(dir);
      // Sentinel rewrites its config file as it learns: each one gets its own.
      const conf = join(dir, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `sentinel monitor ${name} 127.0.0.1 ${ports[0]} 2`,
          `sentinel down-after-milliseconds ${name} ${downAfter}`,
          `sentinel failover-timeout ${name} ${failoverTimeout}`,
          `sentinel parallel-syncs ${name} 1`,
          ...(pw ? [`sentinel auth-pass ${name} ${pw}`] : []),
          ...(spw ? [`requirepass ${spw}`, `sentinel sentinel-pass ${spw}`] : []),
          '',
        ].join('\n'),
      );
      const sp = launchRedis(port, dir, ['--sentinel', '--loglevel', 'warning'], conf);
      sentinels.push(sp);
    }
    await Promise.all(sentinels.map((x) => waitPing(x, `sentinel ${x.port}`, spw)));
    s.sentinelList = sentinels.map((x) => `127.0.0.1:${x.port}`).join(',');
    s.env = {
      REDIS_SENTINELS: s.sentinelList,
      REDIS_SENTINEL_NAME: name,
      ...(pw ? { REDIS_PASSWORD: pw } : {}),
      ...(spw ? { REDIS_SENTINEL_PASSWORD: spw } : {}),
    };
    await waitSettled(2);
  } catch (err) {
    const logs = [...data, ...sentinels].map((n) => `--- ${n.port}\n${n.output().slice(-1500)}`).join('\n');
    await s.stop();
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
  return s;
}
