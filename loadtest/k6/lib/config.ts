// Targets from the environment and scenario parameters from loadtest/scenarios/<name>.json (the same files the
// harness runs), with a profile (SB_PROFILE) and ad-hoc overrides (SB_PARAMS, a JSON object) merged on top.
import type { ParamsOf, ScenarioName, ScenarioOf } from '../../harness/scenarios.ts';

function required(name: string): string {
  const v = __ENV[name];
  if (!v) throw new Error(`set ${name} (see loadtest/README.md), e.g. SB_URL=wss://localhost:8443`);
  return v;
}

const url = required('SB_URL');

/** Where the scripts connect and publish. Every target comes from __ENV. */
export const env = {
  /** Socket.IO base URL: `wss://host:8443` (the Engine.IO path is appended). */
  url,
  /** Subscribers' and publishers' URLs when they must differ (e.g. straight to node 2 and node 1). */
  subUrl: __ENV.SB_URL_SUB || url,
  pubUrl: __ENV.SB_URL_PUB || url,
  /** HTTP API base: `https://host:8443`; defaults to SB_URL with http(s). */
  api: (__ENV.SB_API || url.replace(/^ws/, 'http')).replace(/\/+$/, ''),
  apiKey: __ENV.SB_API_KEY || '',
  /** A JWT for the Socket.IO `auth` payload, when the cluster has JWT_SECRET set. */
  token: __ENV.SB_TOKEN || '',
  /** `1`: accept self-signed certificates (the local cluster's). */
  insecure: __ENV.SB_INSECURE === '1' || __ENV.SB_INSECURE === 'true',
  /** Sockets each VU holds (VUs are heavy; sockets are cheap). */
  socketsPerVu: Math.max(1, Number(__ENV.SB_SOCKETS_PER_VU || 50)),
  /** `base` (as written), `local`, or `smoke`. */
  profile: __ENV.SB_PROFILE || 'base',
};

/** Socket.IO `auth` for the connect packet. */
export function auth(): Record<string, unknown> | undefined {
  return env.token ? { token: env.token } : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: unknown, over: unknown): unknown {
  if (!isObject(base) || !isObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(out[k]) && isObject(v) ? merge(out[k], v) : v;
  return out;
}

/**
 * Reads the scenario definition. Must run in the init context (k6 `open()`); the path is resolved against this
 * module, so scripts work from any working directory.
 */
export function loadScenario<N extends ScenarioName>(name: N): { scenario: ScenarioOf<N>; params: ParamsOf<N> } {
  const scenario = JSON.parse(open(import.meta.resolve(`../../scenarios/${name}.json`))) as ScenarioOf<N>;
  if (scenario.name !== name) throw new Error(`scenarios/${name}.json holds "${scenario.name}"`);
  let params: unknown = scenario.params;
  if (env.profile === 'local' || env.profile === 'smoke') params = merge(params, scenario.profiles?.local ?? {});
  if (env.profile === 'smoke') params = merge(params, scenario.profiles?.smoke ?? {});
  if (__ENV.SB_PARAMS) params = merge(params, JSON.parse(__ENV.SB_PARAMS));
  // Defaults the schema fills in for the harness.
  params = merge({ warmupSeconds: 0, rounds: 1, event: 'bench', channelPrefix: 'bench' }, params);
  return { scenario, params: params as ParamsOf<N> };
}

/** The scenario's thresholds as k6 options (same metric names, same expressions). */
export function thresholds(s: { thresholds: Partial<Record<string, string[]>> }): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(s.thresholds)) if (v) out[k] = v;
  return out;
}

/** Channel `i` of a run: the run tag comes from setup() so every VU agrees on it. */
export function channel(prefix: string, run: string, i: number): string {
  return `${prefix}:k6:${run}:${i}`;
}

export function runTag(): string {
  return __ENV.SB_RUN || Date.now().toString(36);
}

export function padding(bytes: number): string {
  let s = '';
  while (s.length < bytes) s += 'xxxxxxxxxxxxxxxx';
  return s.slice(0, bytes);
}

/** Seconds as a k6 duration string. */
export const dur = (seconds: number) => `${Math.max(1, Math.ceil(seconds))}s`;
