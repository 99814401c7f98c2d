// Summarises V8 .cpuprofile files (SB_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench …): the top
// functions by self time, self time per package or Switchboard folder, and the share of named suspects (a rate
// limiter, prom-client, zod, JSON, Redis) so a claim about the hot path is a number.
//   node dist/loadtest/harness/tools/cpuprofile-top.js DIR-or-FILES… [--top 30] [--windows bench/results/<run>.json [--system switchboard]]
// With --windows, only samples inside that run's measured windows count (profiles and harness share CLOCK_MONOTONIC).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { profileFiles } from './profile-files.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a frame's code lives: a package, a Switchboard folder, Node's internals, or V8's pseudo-frames. */
export function placeOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : `(native) ${fn || 'anonymous'}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const src = url.indexOf('/node/src/');
  if (src >= 0) return `switchboard/${url.slice(src + '/node/src/'.length).split('/')[0]}`;
  const lt = url.indexOf('/loadtest/');
  if (lt >= 0) return 'loadtest';
  return url.replace(/^file:\/\//, '');
}

/** Suspects named in issue 16, matched on place and function name. */
const SUSPECTS: Array<{ name: string; match: (place: string, fn: string) => boolean }> = [
  { name: 'rate limiter (rate-limiter-flexible)', match: (p) => p === 'rate-limiter-flexible' },
  {
    name: 'promises / microtasks',
    match: (p, fn) =>
      /^\(native\) (Promise|then|resolve|runMicrotasks)|processTicksAndRejections/.test(`${p} ${fn}`) ||
      (p === 'node:internal' && /Promise|Microtask|processTicks/.test(fn)),
  },
  { name: 'prom-client', match: (p) => p === 'prom-client' },
  { name: 'zod', match: (p) => p === 'zod' },
  {
    name: 'JSON.stringify / JSON.parse',
    match: (_p, fn) => fn === 'stringify' || fn === 'parse' || fn === 'JSONStringify' || fn === 'JSONParse',
  },
  {
    name: 'ioredis (client work)',
    match: (p) => p === 'ioredis' || p === 'redis-parser' || p === 'standard-as-callback' || p === 'cluster-key-slot',
  },
  { name: 'redis-adapter', match: (p) => p === '@socket.io/redis-adapter' },
  {
    name: 'socket.io / engine.io / parser',
    match: (p) => ['socket.io', 'engine.io', 'socket.io-parser', 'socket.io-adapter', 'engine.io-parser'].includes(p),
  },
  { name: 'pino', match: (p) => p.startsWith('pino') || p === 'sonic-boom' },
  { name: 'garbage collector', match: (p) => p === '(garbage collector)' },
];

/** Windows on the shared monotonic clock (µs), as the harness records its measured windows. */
export type Windows = Array<[number, number]>;

function selfTimes(p: Profile, windows?: Windows): Map<number, number> {
  // Each sample's interval is charged to the node it landed in; with windows, only samples inside one count.
  const out = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (windows && !windows.some(([a, b]) => t >= a && t <= b)) continue;
    out.set(p.samples[i]!, (out.get(p.samples[i]!) ?? 0) + dt);
  }
  return out;
}

/** The measured windows of `system` in a bench result (every scenario, every round). */
export function windowsOf(resultJson: string, system = 'switchboard'): Windows {
  const r = JSON.parse(readFileSync(resultJson, 'utf8')) as {
    scenarios: Array<{ runs: Array<{ system: string; rounds?: Array<Record<string, number | null>> }> }>;
  };
  const out: Windows = [];
  for (const s of r.scenarios)
    for (const run of s.runs)
      if (run.system === system)
        for (const x of run.rounds ?? [])
          if (typeof x.window0Us === 'number' && typeof x.window1Us === 'number') out.push([x.window0Us, x.window1Us]);
  return out;
}

export function summarise(files: string[], top = 30, windows?: Windows): string {
  const byFn = new Map<string, number>();
  const byPlace = new Map<string, number>();
  const suspects = new Map<string, number>();
  const callers = new Map<string, Map<string, number>>();
  let total = 0;
  let idle = 0;
  const keyOf = (n: ProfileNode) => {
    const { functionName: fn, url, lineNumber } = n.callFrame;
    return `${fn || '(anonymous)'}  ${placeOf(url, fn)}${url ? `:${lineNumber + 1}` : ''}`;
  };
  for (const f of files) {
    const p = JSON.parse(readFileSync(f, 'utf8')) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    for (const [id, us] of selfTimes(p, windows)) {
      const n = nodes.get(id);
      if (!n) continue;
      const { functionName: fn, url, lineNumber } = n.callFrame;
      const place = placeOf(url, fn);
      if (place === '(idle)') {
        idle += us;
        continue;
      }
      total += us;
      const key = `${fn || '(anonymous)'}  ${place}${url ? `:${lineNumber + 1}` : ''}`;
      byFn.set(key, (byFn.get(key) ?? 0) + us);
      // Who called it (the nearest caller in JS, skipping natives): for natives and builtins that says why.
      let up = parent.get(id);
      while (up !== undefined && !nodes.get(up)?.callFrame.url && nodes.get(up)?.callFrame.functionName !== '(root)') up = parent.get(up);
      const by = up === undefined ? '(root)' : keyOf(nodes.get(up)!);
      const cm = callers.get(key) ?? new Map<string, number>();
      cm.set(by, (cm.get(by) ?? 0) + us);
      callers.set(key, cm);
      byPlace.set(place, (byPlace.get(place) ?? 0) + us);
      for (const s of SUSPECTS) if (s.match(place, fn)) suspects.set(s.name, (suspects.get(s.name) ?? 0) + us);
    }
  }
  const ms = (us: number) => (us / 1000).toFixed(0);
  const pct = (us: number) => `${((us / total) * 100).toFixed(1)} %`;
  const table = (title: string, m: Map<string, number>, n: number) => [
    `| ${title} | self ms | share of busy time |`,
    '|---|---:|---:|',
    ...[...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `| ${k.replace(/\|/g, '\\|')} | ${ms(v)} | ${pct(v)} |`),
  ];
  return [
    `${files.length} profile(s)${windows ? `, ${windows.length} measured window(s) only` : ''}: ${ms(total)} ms busy, ${ms(idle)} ms idle`,
    '',
    ...table('function (place:line)', byFn, top),
    '',
    'Callers (nearest JS frame) of the top ten:',
    '',
    ...[...byFn]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([k, v]) => {
        const list = [...(callers.get(k) ?? [])].sort((a, b) => b[1] - a[1]).slice(0, 3);
        return `- ${k}: ${list.map(([c, us]) => `${c} ${((us / v) * 100).toFixed(0)} %`).join('; ')}`;
      }),
    '',
    ...table('place (package, Switchboard folder, node internals)', byPlace, 20),
    '',
    ...table('suspect', suspects, SUSPECTS.length),
  ].join('\n');
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  const { values, positionals } = parseArgs({
    options: { top: { type: 'string', default: '30' }, windows: { type: 'string' }, system: { type: 'string', default: 'switchboard' } },
    allowPositionals: true,
  });
  const files = profileFiles(positionals, '.cpuprofile');
  if (files.length === 0) {
    process.stderr.write('usage: cpuprofile-top DIR-or-FILES… [--top N]\n');
    process.exit(2);
  }
  const windows = values.windows ? windowsOf(values.windows, values.system) : undefined;
  if (windows && windows.length === 0)
    throw new Error(`${values.windows}: no measured windows of ${values.system} (rounds without window0Us/window1Us)`);
  process.stdout.write(`${summarise(files, Number(values.top), windows)}\n`);
}
