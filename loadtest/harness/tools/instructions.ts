// Instructions one operation costs a server, counted by valgrind's callgrind: the same count for the same build and
// load whatever else the machine does, so an A/B of a few per cent (which the bench's CPU seconds cannot resolve on
// two shared cores) is one number against another. Counts the node process's user-space instructions only: the
// kernel's share of each send and receive is not in it.
// Starts its own Redis and one server under callgrind with instrumentation off, warms it up with real
// socket.io-clients, counts the instructions of the next N operations, and prints them per operation.
//   node dist/loadtest/harness/tools/instructions.js [--op rpc|rpc-webhook|publish|http-publish] [--systems switchboard,plain]
//        [--warm 12000] [--ops 5000] [--rounds 2] [--dist DIR]   (DIR: another build's dist/, for an A/B of two builds)
//        [--keep DIR]   (keeps each callgrind dump in DIR as <system>-<round>.callgrind, for callgrind_annotate --inclusive=yes;
//                        with --by-function also V8's perf map as <system>-<round>.perf.map, which names generated code)
//        [--no-subscribers]   (publish, http-publish: nobody subscribes, as on the fan-out's publishers' node)
//        [--by-function N]   (also prints each round's top N functions by self instructions per operation, V8's
//                             generated code named through its perf map: the server runs with --perf-basic-prof)
//        [--kernel]   (no valgrind: the server runs as in the bench; after the warm-up, user and system CPU per operation
//                      from /proc over one window of --ops, then system calls per operation by name under strace -c over
//                      another: the kernel's share, which instruction counts leave out) [--rate N] (operations/s, default 1000)
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import { DIST_ROOT, serverCommand, serverEnv, startRedis } from '../cluster.js';
import { freePort, hasBinary, Processes, waitFor } from '../proc.js';
import { functionTable } from './callgrind-functions.js';

const { values } = parseArgs({
  options: {
    op: { type: 'string', default: 'rpc' },
    systems: { type: 'string', default: 'switchboard,plain' },
    warm: { type: 'string', default: '12000' },
    ops: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '2' },
    dist: { type: 'string' },
    keep: { type: 'string' },
    'by-function': { type: 'string' },
    'no-subscribers': { type: 'boolean', default: false },
    kernel: { type: 'boolean', default: false },
    rate: { type: 'string', default: '1000' },
  },
});
const op = values.op;
const OPS = ['rpc', 'rpc-webhook', 'publish', 'http-publish'];
if (!OPS.includes(op)) throw new Error(`--op must be one of ${OPS.join(', ')}, not ${op}`);
/** rpc-webhook: the call goes to the bench backend (BACKEND_URL), as in the rpc scenario's webhook mode. */
const webhook = op === 'rpc-webhook';
const rpcCall = op === 'rpc' || webhook;
const [warm, ops, rounds] = [values.warm, values.ops, values.rounds].map(Number) as [number, number, number];
/** publish / http-publish to channels nobody on this server subscribes to: a publishers' node (node 1 of the fan-out). */
const noSubscribers = values['no-subscribers'] === true;
if (noSubscribers && (op === 'rpc' || op === 'rpc-webhook')) throw new Error('--no-subscribers is for --op publish or http-publish');
const byFunction = values['by-function'] === undefined ? 0 : Number(values['by-function']);
if (!Number.isInteger(byFunction) || byFunction < 0) throw new Error(`--by-function must be a count, not ${values['by-function']}`);
const kernel = values.kernel === true;
/** --kernel: operations per second sent (the bench's rpc sends 1,000 calls/s to each node). */
const rate = Number(values.rate);
if (!(rate > 0)) throw new Error(`--rate must be a positive number, not ${values.rate}`);
if (kernel && byFunction) throw new Error('--kernel counts no instructions: leave out --by-function');
for (const bin of kernel ? [] : ['valgrind', 'callgrind_control', 'callgrind_annotate'])
  if (!hasBinary(bin)) throw new Error(`${bin} not found: apt-get install -y valgrind`);
if (kernel && !hasBinary('strace')) throw new Error('strace not found: apt-get install -y strace');
const dist = values.dist ? resolve(values.dist) : DIST_ROOT;
const SYSTEMS = ['switchboard', 'plain', 'stock'] as const;
const API_KEY = 'instructions-key-0123456789abcdef';
const CHANNELS = 200;
const CLIENTS = 20;
/** Calls in flight at once: a steady trickle, so each wake-up carries about one operation (as at the bench's rates). */
const CONCURRENCY = 4;

const registry = new Processes();
process.on('exit', () => registry.killAll());
const redis = await startRedis({ registry }, 'instructions');
// The bench backend, in a process of its own (not counted): answers /connect and /rpc/<method> at once.
const backend = webhook ? await startBackend() : undefined;
const backendUrl = backend?.url;

async function startBackend() {
  const port = await freePort();
  const managed = registry.spawn('backend', process.execPath, [join(dist, 'loadtest/harness/backend.js')], {
    env: { PATH: process.env.PATH, PORT: String(port) },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200, 'the bench backend', 10_000);
  return { url, managed };
}
// callgrind_control finds the process by names valgrind derives from USER and HOST: the same on both sides (HOST is
// also the server's listen address, loopback either way).
const vgEnv = { USER: process.env.USER ?? 'bench', LOGNAME: process.env.USER ?? 'bench', HOST: '127.0.0.1' };

/**
 * The load, as the bench's clients make it: CLIENTS WebSocket clients (subscribed to CHANNELS channels unless
 * --no-subscribers) sending `op` CONCURRENCY at a time, or at `rate` per second. `run(n)` resolves once n operations
 * (and their deliveries) are done.
 */
async function driver(port: number, clients: Socket[]): Promise<(count: number, rate?: number) => Promise<void>> {
  for (let i = 0; i < CLIENTS; i++) {
    const c = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
    await new Promise<void>((res, rej) => (c.once('connect', res), c.once('connect_error', rej)));
    clients.push(c);
  }
  let received = 0;
  for (const c of clients) c.onAny(() => received++);
  for (let ch = 0; ch < (noSubscribers ? 0 : CHANNELS); ch++) {
    const a = (await clients[ch % CLIENTS]!.timeout(60_000).emitWithAck('subscribe', `bench:i${ch}`)) as { ok: boolean };
    if (!a.ok) throw new Error(`subscribe: ${JSON.stringify(a)}`);
  }
  let sent = 0;
  const one = async (n: number) => {
    if (rpcCall) {
      const a = (await clients[n % CLIENTS]!.timeout(60_000).emitWithAck('rpc', 'echo', { n, pad: 'x'.repeat(64) })) as {
        ok: boolean;
      };
      if (!a.ok) throw new Error(`rpc: ${JSON.stringify(a)}`);
      return;
    }
    if (op === 'publish') {
      // A client's publish with an ack, from a client that is not the channel's subscriber.
      const data = { n, t: Date.now(), pad: 'x'.repeat(100) };
      const a = (await clients[(n + 1) % CLIENTS]!.timeout(60_000).emitWithAck('publish', `bench:i${n % CHANNELS}`, 'm', data)) as {
        ok: boolean;
      };
      if (!a.ok) throw new Error(`publish: ${JSON.stringify(a)}`);
      sent++;
      return;
    }
    const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: `bench:i${n % CHANNELS}`, event: 'm', data: { n, t: Date.now(), pad: 'x'.repeat(100) } }),
    });
    if (res.status !== 200) throw new Error(`publish: ${res.status} ${await res.text()}`);
    sent++;
  };
  const run = async (count: number, rate?: number) => {
    let next = 0;
    if (rate) {
      // At a fixed rate, as the bench's clients send: each operation its own wake-up of the server.
      const t0 = performance.now();
      const pending: Promise<void>[] = [];
      while (next < count) {
        const due = t0 + (next * 1000) / rate;
        const now = performance.now();
        if (due > now) await new Promise((r) => setTimeout(r, due - now));
        pending.push(one(next++));
      }
      await Promise.all(pending);
    } else
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < count) await one(next++);
        }),
      );
    // Publications are delivered after the answer: wait for them, so each window holds its own deliveries.
    if (!rpcCall && !noSubscribers) await waitFor(() => received >= sent, 'the deliveries', 60_000);
  };
  return run;
}

async function measure(
  system: (typeof SYSTEMS)[number],
  round: number,
): Promise<{ perOp: number; compilerShare: number; functions: string[] }> {
  const [port, internalPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'sb-callgrind-'));
  const env = {
    ...serverEnv(system, webhook ? 'webhook' : 'embedded', {
      port,
      backendUrl,
      internalPort,
      redisPort: redis.port,
      nodeId: `instructions-${system}`,
      apiKey: API_KEY,
      root: dist,
    }),
    ...vgEnv,
  };
  const server = registry.spawn(
    `${system} under callgrind`,
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${dir}/out`,
      process.execPath,
      ...(byFunction ? ['--perf-basic-prof'] : []),
      ...serverCommand(system, dist),
    ],
    { env, stopGraceMs: 30_000 },
  );
  const control = (...a: string[]) => {
    const r = spawnSync('callgrind_control', [...a, String(server.proc.pid)], { env: { ...process.env, ...vgEnv }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`callgrind_control ${a.join(' ')}: ${r.stderr || r.stdout}`);
  };
  const clients: Socket[] = [];
  try {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`).catch(() => undefined))?.status === 200,
      `${system} under valgrind`,
      120_000,
    );
    const run = await driver(port, clients);
    await run(warm);
    control('-i', 'on');
    await run(ops);
    control('-i', 'off');
    control('-d');
    await server.stop();
    const out = readdirSync(dir).find((f) => /^out\.\d+$/.test(f));
    if (!out) throw new Error(`no callgrind dump in ${dir}: ${server.output().slice(-2000)}`);
    const totals = Number(/^totals: (\d+)/m.exec(readFileSync(join(dir, out), 'utf8'))?.[1]);
    // V8's optimizing compiler still at work in the window means the warm-up was too short for this build.
    const annotated = spawnSync('callgrind_annotate', ['--threshold=100', join(dir, out)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    let compiler = 0;
    for (const line of annotated.stdout.split('\n')) {
      const m = /^\s*([\d,]+) .*(compiler::|[Mm]aglev)/.exec(line);
      if (m) compiler += Number(m[1]!.replace(/,/g, ''));
    }
    if (values.keep) {
      mkdirSync(values.keep, { recursive: true });
      copyFileSync(join(dir, out), join(values.keep, `${system}-${round}.callgrind`));
    }
    const perfMap = `/tmp/perf-${server.proc.pid}.map`;
    const functions = byFunction ? functionTable(join(dir, out), perfMap, ops, byFunction) : [];
    // Kept beside the dump: with it, callgrind_annotate's "???:0x…" lines of generated code can be named afterwards.
    if (byFunction && values.keep) copyFileSync(perfMap, join(values.keep, `${system}-${round}.perf.map`));
    if (byFunction) rmSync(perfMap, { force: true });
    return { perOp: totals / ops, compilerShare: compiler / totals, functions };
  } finally {
    for (const c of clients) c.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU seconds (user, system) of one process so far, from /proc. */
function cpuOf(pid: number): { user: number; sys: number } {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  const hz = 100;
  return { user: Number(f[11]) / hz, sys: Number(f[12]) / hz };
}

/** --kernel: user and system CPU per operation over one window, then system calls per operation under strace over another. */
async function measureKernel(system: (typeof SYSTEMS)[number]): Promise<{ userUs: number; sysUs: number; calls: Map<string, number> }> {
  const [port, internalPort] = [await freePort(), await freePort()];
  const env = serverEnv(system, webhook ? 'webhook' : 'embedded', {
    port,
    backendUrl,
    internalPort,
    redisPort: redis.port,
    nodeId: `kernel-${system}`,
    apiKey: API_KEY,
    root: dist,
  });
  const server = registry.spawn(system, process.execPath, serverCommand(system, dist), { env });
  const clients: Socket[] = [];
  try {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`).catch(() => undefined))?.status === 200,
      system,
      30_000,
    );
    const run = await driver(port, clients);
    await run(warm);
    const pid = server.proc.pid!;
    const c0 = cpuOf(pid);
    await run(ops, rate);
    const c1 = cpuOf(pid);
    const dir = mkdtempSync(join(tmpdir(), 'sb-strace-'));
    const tracer = registry.spawn('strace', 'strace', ['-c', '-f', '-U', 'name,calls', '-o', join(dir, 'out'), '-p', String(pid)]);
    // strace prints "Process N attached" (one line per thread) once it holds the process.
    await waitFor(() => /attached/.test(tracer.output()), 'strace attached', 10_000);
    await run(ops, rate);
    tracer.proc.kill('SIGINT');
    await new Promise((r) => tracer.proc.once('exit', r));
    const calls = new Map<string, number>();
    for (const line of readFileSync(join(dir, 'out'), 'utf8').split('\n')) {
      const m = /^\s*(\w+)\s+(\d+)\s*$/.exec(line);
      if (m && m[1] !== 'total') calls.set(m[1]!, Number(m[2]) / ops);
    }
    rmSync(dir, { recursive: true, force: true });
    return { userUs: ((c1.user - c0.user) / ops) * 1e6, sysUs: ((c1.sys - c0.sys) / ops) * 1e6, calls };
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
}

try {
  const systems = values.systems.split(',').map((name) => {
    const system = SYSTEMS.find((x) => x === name);
    if (!system) throw new Error(`--systems: one of ${SYSTEMS.join(', ')}, not ${name}`);
    return system;
  });
  if (kernel) {
    const results: ({ round: number; system: string } & Awaited<ReturnType<typeof measureKernel>>)[] = [];
    for (let round = 1; round <= rounds; round++)
      for (const system of systems) {
        const r = await measureKernel(system);
        results.push({ round, system, ...r });
        console.error(`${round} ${system}: user ${r.userUs.toFixed(1)} µs, system ${r.sysUs.toFixed(1)} µs per operation`);
      }
    const names = [...new Set(results.flatMap((r) => [...r.calls.keys()]))].sort(
      (a, b) => Math.max(...results.map((r) => r.calls.get(b) ?? 0)) - Math.max(...results.map((r) => r.calls.get(a) ?? 0)),
    );
    console.log(`CPU and system calls per ${op} at ${rate}/s, ${ops} operations per window after ${warm} to warm up; build ${dist}\n`);
    console.log(`| round | system | user µs | system µs | ${names.join(' | ')} |`);
    console.log(`|---|---|---:|---:|${names.map(() => '---:').join('|')}|`);
    for (const r of results)
      console.log(
        `| ${r.round} | ${r.system} | ${r.userUs.toFixed(1)} | ${r.sysUs.toFixed(1)} | ${names.map((n) => (r.calls.get(n) ?? 0).toFixed(2)).join(' | ')} |`,
      );
    process.exit(0);
  }
  const rows: string[] = [];
  const functionTables: string[] = [];
  for (let round = 1; round <= rounds; round++)
    for (const system of systems) {
      const r = await measure(system, round);
      rows.push(`| ${round} | ${system} | ${Math.round(r.perOp).toLocaleString('en-US')} | ${(r.compilerShare * 100).toFixed(1)} % |`);
      console.error(rows.at(-1));
      if (r.functions.length)
        functionTables.push(
          `\n${system}, round ${round}: top ${r.functions.length} functions by self instructions per operation\n`,
          '| instructions | function |',
          '|---:|---|',
          ...r.functions,
        );
    }
  const what = rpcCall
    ? `${webhook ? 'webhook' : 'embedded'} rpc call (echo, 64-byte pad)`
    : `${op === 'publish' ? 'client publication (Socket.IO, with ack)' : 'HTTP publication'} (${noSubscribers ? 'no subscriber on the server' : 'one subscriber each'}, ${CHANNELS} channels)`;
  console.log(`Instructions per ${what}, ${ops} counted after ${warm} to warm up; build ${dist}\n`);
  console.log('| round | system | instructions per operation | of them in V8’s compiler |');
  console.log('|---|---|---:|---:|');
  for (const row of rows) console.log(row);
  for (const line of functionTables) console.log(line);
} finally {
  await backend?.managed.stop();
  await redis.managed.stop();
}
