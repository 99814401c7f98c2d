// Runs Debian's Prometheus on a free port with the configuration scripts/prometheus-config.mjs writes (the
// one `scripts/cluster up --monitoring` uses), and asks its HTTP API; always stopped.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './node.js';
import { freePort, waitFor } from './ports.js';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export interface StartPrometheusOptions {
  /** host:port of every node's internal port. */
  nodes: string[];
  /** host:port of HAProxy's exporter. */
  haproxy?: string;
  /** Scrape and rule evaluation interval. @default '1s' */
  interval?: string;
  /** Every alert's `for:` in the rendered rules copy (scripts/prometheus-config.mjs --alert-for). */
  alertFor?: string;
}

export interface PromSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

export interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

export interface TestPrometheus {
  url: string;
  proc: ChildProcess;
  output(): string;
  /** GET /api/v1/<path> → data, throwing on an error answer. */
  api<T = any>(path: string, params?: Record<string, string | string[]>): Promise<T>;
  /** An instant query's vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  queryRange(expr: string, start: number, end: number, step: number): Promise<PromSeries[]>;
  alerts(): Promise<PromAlert[]>;
  stop(): Promise<void>;
}

export async function startPrometheus(opts: StartPrometheusOptions): Promise<TestPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-prometheus-'));
  const interval = opts.interval ?? '1s';
  const args = ['--out', dir, '--nodes', opts.nodes.join(','), '--scrape-interval', interval];
  if (opts.haproxy) args.push('--haproxy', opts.haproxy);
  if (opts.alertFor) args.push('--alert-for', opts.alertFor);
  const gen = spawnSync(process.execPath, [join(repoRoot, 'scripts/prometheus-config.mjs'), ...args], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`scripts/prometheus-config.mjs failed: ${gen.stderr}`);
  const port = await freePort();
  let out = '';
  const proc = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(proc);
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;

  const api = async (path: string, params: Record<string, string | string[]> = {}) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) q.append(k, x);
    const res = await fetch(`${url}/api/v1/${path}?${q}`);
    const body = (await res.json()) as { status: string; data: any; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  };
  const p: TestPrometheus = {
    url,
    proc,
    output: () => out,
    api,
    query: async (expr) => (await api('query', { query: expr })).result,
    queryRange: async (expr, start, end, step) =>
      (await api('query_range', { query: expr, start: String(start), end: String(end), step: String(step) })).result,
    alerts: async () => (await api('alerts')).alerts,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      running.delete(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    // Ready, then every target scraped once (Prometheus applies new targets a few seconds after it starts).
    const targets = opts.nodes.length + (opts.haproxy ? 1 : 0);
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`prometheus exited (${proc.exitCode}):\n${out}`);
        const active: { health: string }[] = (await api('targets', { state: 'active' })).activeTargets;
        return active.length === targets && active.every((t) => t.health === 'up');
      },
      { timeout: 30_000, interval: 200, what: `prometheus on ${port} scraping ${targets} targets` },
    );
  } catch (err) {
    await p.stop();
    throw err;
  }
  return p;
}
