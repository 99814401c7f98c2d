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
for (const bin of ['valgrind', 'callgrind_control', 'callgrind_annotate'])
  if (!hasBinary(bin)) throw new Error(`${bin} not found: apt-get install -y valgrind`);
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
    const run = async (count: number) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < count) await one(next++);
        }),
      );
      // Publications are delivered after the answer: wait for them, so each window holds its own deliveries.
      if (!rpcCall && !noSubscribers) await waitFor(() => received >= sent, 'the deliveries', 60_000);
    };
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

try {
  const systems = values.systems.split(',').map((name) => {
    const system = SYSTEMS.find((x) => x === name);
    if (!system) throw new Error(`--systems: one of ${SYSTEMS.join(', ')}, not ${name}`);
    return system;
  });
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
