// What an idle subscribed connection costs in memory, object by object: starts one Switchboard node (or another
// system) with --heapsnapshot-signal, connects N1 then N2 WebSocket clients each subscribed to one of C channels,
// takes a heap snapshot at each, and prints per constructor / closure / type the count and bytes added per
// connection, tagged by where the class is defined (switchboard, socket.io/engine.io, ioredis …), beside RSS and
// JS-heap growth per connection (RSS minus heap ≈ native: uWS, buffers).
//   node dist/loadtest/harness/tools/heap-per-connection.js [--system switchboard] [--from 1000] [--to 10000] [--channels 100] [--settle 20]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sleep } from '../clock.js';
import { Clusters, SOCKETIO_SYSTEMS, type SystemName } from '../cluster.js';
import { Processes } from '../proc.js';
import { Progress } from '../progress.js';
import { PubSubSession, type Ctx } from '../session.js';
import { Addresses, WorkerPool } from '../workers.js';
import { diff, readSnapshot, retainerDiff } from './heapsnapshot.js';

const { values } = parseArgs({
  options: {
    system: { type: 'string', default: 'switchboard' },
    from: { type: 'string', default: '1000' },
    to: { type: 'string', default: '10000' },
    channels: { type: 'string', default: '100' },
    top: { type: 'string', default: '25' },
    settle: { type: 'string', default: '20' },
    workers: { type: 'string', default: '4' },
  },
});
const system = values.system as SystemName;
if (!SOCKETIO_SYSTEMS.includes(system)) throw new Error(`--system: one of ${SOCKETIO_SYSTEMS.join(', ')}`);
const [from, to, channels, top] = [values.from, values.to, values.channels, values.top].map(Number) as [number, number, number, number];

const root = fileURLToPath(new URL('../../../../', import.meta.url));

/** Class names by origin, read from the sources: a constructor in a snapshot is tagged with where it is defined. */
function origins(): Map<string, string> {
  const out = new Map<string, string>();
  const scan = (dir: string, tag: string, ext: RegExp) => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { recursive: true }) as string[];
    } catch {
      return;
    }
    for (const f of entries) {
      if (!ext.test(f) || f.includes('.d.ts')) continue;
      const text = readFileSync(join(dir, f), 'utf8');
      for (const m of text.matchAll(/\bclass\s+([A-Za-z_$][\w$]*)/g)) if (!out.has(m[1]!)) out.set(m[1]!, tag);
    }
  };
  scan(join(root, 'node/src'), 'switchboard', /\.ts$/);
  for (const [pkg, tag] of [
    ['socket.io/dist', 'socket.io'],
    ['socket.io-adapter/dist', 'socket.io'],
    ['socket.io-parser/build/cjs', 'socket.io'],
    ['engine.io/build', 'engine.io'],
    ['@socket.io/redis-adapter/dist', 'redis-adapter'],
    ['ioredis/built', 'ioredis'],
    ['rate-limiter-flexible/lib', 'rate-limiter'],
    ['prom-client/lib', 'prom-client'],
    ['pino/lib', 'pino'],
  ] as const)
    scan(join(root, 'node_modules', pkg), tag, /\.js$/);
  return out;
}

async function snapshot(dir: string, pid: number, url: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  // Node writes the snapshot synchronously on its main thread: once it answers HTTP again, the file is complete.
  for (;;) {
    await sleep(500);
    const fresh = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (fresh.length === 0) continue;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
    } catch {
      continue;
    }
    const file = join(dir, fresh[0]!);
    const size = statSync(file).size;
    await sleep(500);
    if (statSync(file).size === size) return file;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'sb-heap-'));
process.env.SB_BENCH_NODE_ARGS = `${process.env.SB_BENCH_NODE_ARGS ?? ''} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`;
const registry = new Processes();
process.on('exit', () => registry.killAll());
const progress = new Progress(process.stderr);
const clusters = new Clusters({ nodes: 1, apiKey: `heap-${randomBytes(8).toString('hex')}`, switchboardEnv: {}, registry }, true);
const pool = await WorkerPool.start(Number(values.workers), registry);
try {
  const ctx: Ctx = {
    pool,
    clusters,
    registry,
    addresses: new Addresses(),
    progress,
    signal: new AbortController().signal,
    apiKey: 'unused',
    runId: randomBytes(3).toString('hex'),
    smoke: false,
  };
  const cluster = await clusters.get(system, 'embedded', 1);
  const node = cluster.nodes[0]!;
  // The internal port answers for the three Socket.IO systems; any HTTP answer shows the main thread is free again.
  const probe = node.internalPort ? `http://127.0.0.1:${node.internalPort}/healthz` : `${node.url}/`;
  const open = async (n: number, tag: string) => {
    const s = new PubSubSession(ctx, {
      label: tag,
      cluster,
      subscribers: n,
      subscriberNodes: [0],
      plan: { prefix: `bench:heap:${ctx.runId}:${tag}`, channels, perClient: 1 },
      publisherNode: 0,
      publishVia: 'http',
      event: 'bench',
      payloadBytes: 0,
      strictSeq: false,
    });
    await s.open();
    if (s.connectErrors || s.subscribeErrors)
      throw new Error(`${tag}: ${s.connectErrors} connect and ${s.subscribeErrors} subscribe errors: ${s.errors.join('; ')}`);
    return s;
  };
  progress.phase(`${system}: ${from} connections`);
  // Handshake garbage is collected before RSS is read (the snapshot itself counts live objects only).
  const settleMs = Number(values.settle) * 1000;
  await open(from, 'a');
  await sleep(settleMs);
  // RSS after the first snapshot: writing it grows the heap, and that growth must not count as the connections'.
  const fileA = await snapshot(dir, node.pid, probe);
  await sleep(settleMs);
  const rssA = cluster.rss(0);
  progress.phase(`${system}: ${to} connections`);
  await open(to - from, 'b');
  await sleep(settleMs);
  const rssB = cluster.rss(0);
  const fileB = await snapshot(dir, node.pid, probe);
  progress.end();
  const a = readSnapshot(fileA);
  const b = readSnapshot(fileB);
  const per = to - from;
  const tags = origins();
  const rows = diff(a, b, per);
  const kib = (x: number) => (x / 1024).toFixed(3);
  const out = [
    `${system}: ${from} → ${to} idle WebSocket connections, each subscribed to one of ${channels} channels`,
    `RSS growth per connection: ${kib(((rssB - rssA) * 1024) / per)} KiB; JS heap (snapshot self sizes) per connection: ${kib((b.totalBytes - a.totalBytes) / per)} KiB; the rest is native (uWS, socket buffers, allocator) — RSS here is rough (snapshots grow it); the idle scenario measures it cleanly`,
    '',
    '| what | origin | count per connection | bytes per connection | share of heap growth |',
    '|---|---|---:|---:|---:|',
  ];
  const heapGrowth = b.totalBytes - a.totalBytes;
  for (const r of rows.slice(0, top)) {
    const name = r.key.replace(/^\((closure|native|hidden|object shape)\) /, '');
    const origin = tags.get(name) ?? (r.key.startsWith('(') ? '' : 'node/other');
    out.push(
      `| ${r.key.replace(/\|/g, '\\|')} | ${origin} | ${r.countPer.toFixed(2)} | ${r.bytesPer.toFixed(0)} | ${((r.bytes / heapGrowth) * 100).toFixed(1)} % |`,
    );
  }
  out.push('', 'What holds them (first strong retainer, `Owner.property`; `[]` an element), per connection:', '');
  for (const r of rows.slice(0, 12)) {
    const holders = retainerDiff(a, b, r.key, per)
      .filter((x) => x.countPer >= 0.5)
      .slice(0, 5)
      .map((x) => `${x.key} ×${x.countPer.toFixed(1)} (${x.bytesPer.toFixed(0)} B)`);
    out.push(`- ${r.key}: ${holders.join('; ') || '–'}`);
  }
  const byOrigin = new Map<string, number>();
  for (const r of rows) {
    const name = r.key.replace(/^\((closure|native|hidden|object shape)\) /, '');
    const o =
      tags.get(name) ??
      (r.key.startsWith('(closure)') ? 'closures' : r.key.startsWith('(') ? r.key.replace(/\) .*/, ')') : 'other objects');
    byOrigin.set(o, (byOrigin.get(o) ?? 0) + r.bytes);
  }
  out.push('', '| origin (constructors defined there; closures, strings, arrays by type) | bytes per connection |', '|---|---:|');
  for (const [o, bytes] of [...byOrigin].sort((x, y) => y[1] - x[1]).slice(0, 15)) out.push(`| ${o} | ${(bytes / per).toFixed(0)} |`);
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await clusters.stopAll().catch(() => undefined);
  await pool.stop().catch(() => undefined);
  registry.killAll();
  rmSync(dir, { recursive: true, force: true });
}
