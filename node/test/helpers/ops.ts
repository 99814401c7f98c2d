// Reads the ops files (k8s/, dashboards, alert rules, HAProxy config) for the tests that check them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { repoRoot } from './node.js';
import { requireOptional } from './prereq.js';
import { parseYaml, parseYamlDocuments } from './yaml.js';

export const k8sDir = join(repoRoot, 'k8s');
export const dashboardsDir = join(k8sDir, 'dashboards');
export const rulesFile = join(k8sDir, 'alerts/switchboard-rules.yml');
export const KUBECTL_INSTALL = 'apt-get install -y kubectl (a kubectl with kustomize v5, 1.27 or later)';

/** `kubectl kustomize <dir>`, parsed: every object it renders. */
export async function kustomize(dir: string): Promise<any[]> {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.error?.message ?? r.stderr}`);
  return parseYamlDocuments(r.stdout);
}

const renders = new Map<string, Promise<any[]>>();
/** k8s/<sub> (k8s/ itself for '') rendered by kustomize, once per test file; undefined (test skipped) without kubectl. */
export async function renderK8s(t: TestContext, sub = ''): Promise<any[] | undefined> {
  if (!requireOptional(t, 'kubectl', KUBECTL_INSTALL)) return undefined;
  const dir = sub ? join(k8sDir, sub) : k8sDir;
  if (!renders.has(dir)) renders.set(dir, kustomize(dir));
  return renders.get(dir)!;
}

/** The rendered object of that kind and name; the test fails when there is none. */
export function findObject(objs: any[], kind: string, name: string): any {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is rendered`);
  return o;
}

export interface Dashboard {
  file: string;
  json: any;
}

export function loadDashboards(): Dashboard[] {
  return readdirSync(dashboardsDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, json: JSON.parse(readFileSync(join(dashboardsDir, file), 'utf8')) }));
}

/** Every panel of a dashboard, including those nested in collapsed rows. */
export function allPanels(dashboard: any): any[] {
  const out: any[] = [];
  const walk = (panels: any[] | undefined) => {
    for (const p of panels ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

/** Every PromQL expression a dashboard runs: panel targets and template-variable queries. */
export function dashboardExprs(dashboard: any): string[] {
  const exprs: string[] = [];
  for (const p of allPanels(dashboard)) for (const t of p.targets ?? []) if (t.expr) exprs.push(t.expr);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (q) exprs.push(q);
  }
  return exprs;
}

export async function loadRules(): Promise<any> {
  return parseYaml(readFileSync(rulesFile, 'utf8'));
}

export function alertRules(rules: any): any[] {
  return rules.groups.flatMap((g: any) => g.rules);
}

/**
 * Metric names in a PromQL expression (Grafana variables and label values excluded) whose name
 * starts with one of the prefixes.
 */
export function metricNames(expr: string, prefixes = ['switchboard_', 'haproxy_', 'nodejs_', 'process_']): string[] {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  const names = new Set<string>();
  for (const m of noStrings.matchAll(/(?<![$\w:])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    if (prefixes.some((p) => m[0].startsWith(p))) names.add(m[0]);
  }
  return [...names];
}

/** Metric families of a Prometheus text exposition: name → type (from the # TYPE lines). */
export function metricTypes(exposition: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const line of exposition.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (m) types.set(m[1]!, m[2]!);
  }
  return types;
}

/** Whether `name` can be queried given the families: a histogram `x` answers `x_bucket`, `x_sum`, `x_count`. */
export function isExposed(name: string, types: Map<string, string>): boolean {
  if (types.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!m) return false;
  const t = types.get(m[1]!);
  return t === 'histogram' || (t === 'summary' && m[2] !== 'bucket');
}

/**
 * HAProxy configuration with server discovery taken out: `server` / `server-template` lines and
 * `resolvers` sections. What remains must be the same in haproxy/ and k8s/.
 */
export function withoutServerDiscovery(cfg: string): string {
  const out: string[] = [];
  let inResolvers = false;
  for (const line of cfg.split('\n')) {
    const section = /^(global|defaults|frontend|backend|listen|resolvers|peers|userlist|program|http-errors|ring|mailers|cache)\b/.exec(
      line,
    );
    if (section) inResolvers = section[1] === 'resolvers';
    if (inResolvers) continue;
    if (/^\s*(server|server-template)\s/.test(line)) continue;
    out.push(line.trimEnd());
  }
  return out.join('\n').trimEnd() + '\n';
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
export function parseSamples(exposition: string): Sample[] {
  const out: Sample[] = [];
  for (const line of exposition.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function sumOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
