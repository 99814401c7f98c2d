// Parses the environment (and CLI flag overrides) once at start-up into a validated, frozen Config.
import { formatIssues } from '../core/issues.js';
import { FIELDS, defaultNodeId, type Config, type FieldName } from './schema.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Values that take precedence over the environment: CLI flags, or an embedding program's options. */
export type ConfigOverrides = { [K in FieldName]?: unknown };

/**
 * Builds the configuration from `env` with `overrides` on top. Empty env strings count as unset.
 * Throws ConfigError naming every bad field, its env variable and the reason.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigOverrides = {}): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(FIELDS) as [FieldName, (typeof FIELDS)[FieldName]][]) {
    const raw = overrides[name] !== undefined ? overrides[name] : env[spec.env] === '' ? undefined : env[spec.env];
    const r = spec.schema.safeParse(raw);
    if (r.success) out[name] = r.data;
    else problems.push(`${spec.env}=${shown(spec.env, raw)}: ${formatIssues(r.error)}`);
  }
  out.nodeId ??= defaultNodeId();
  const c = out as Config;
  if (problems.length === 0) {
    if (c.port !== 0 && c.port === c.internalPort) problems.push(`INTERNAL_PORT=${c.internalPort}: must differ from PORT`);
    if (c.pingIntervalMs + c.pingTimeoutMs >= c.idleTimeoutSeconds * 1000)
      problems.push(
        `WS_IDLE_TIMEOUT_S=${c.idleTimeoutSeconds}: must exceed PING_INTERVAL_MS + PING_TIMEOUT_MS (${c.pingIntervalMs + c.pingTimeoutMs} ms)`,
      );
    if (c.canaryTimeoutMs < c.canaryIntervalMs)
      problems.push(`CANARY_TIMEOUT_MS=${c.canaryTimeoutMs}: must be at least CANARY_INTERVAL_MS (${c.canaryIntervalMs})`);
    problems.push(...redisProblems(c));
    if (c.adminUi && (!c.adminUiUsername || !c.adminUiPasswordHash))
      problems.push('ADMIN_UI: needs ADMIN_UI_USERNAME and ADMIN_UI_PASSWORD_HASH (the admin view is never open without credentials)');
    if (c.webhookSecret === undefined && c.backendUrl !== undefined)
      problems.push('WEBHOOK_SECRET: required when BACKEND_URL is set (the backend must be able to verify calls)');
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(c);
}

/** Settings that only make sense together; a stray one is refused rather than silently ignored. */
function redisProblems(c: Config): string[] {
  const out: string[] = [];
  if (c.redisSentinels && !c.redisSentinelName)
    out.push('REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master group the sentinels watch)');
  if (!c.redisSentinels) {
    for (const [env, v] of [
      ['REDIS_SENTINEL_NAME', c.redisSentinelName],
      ['REDIS_SENTINEL_USERNAME', c.redisSentinelUsername],
      ['REDIS_SENTINEL_PASSWORD', c.redisSentinelPassword],
      ['REDIS_SENTINEL_TLS', c.redisSentinelTls || undefined],
    ] as const)
      if (v !== undefined) out.push(`${env}: has no effect without REDIS_SENTINELS`);
  }
  if (c.redisSentinelUsername && !c.redisSentinelPassword) out.push('REDIS_SENTINEL_USERNAME: needs REDIS_SENTINEL_PASSWORD');
  if (c.redisUsername && !c.redisPassword) out.push('REDIS_USERNAME: needs REDIS_PASSWORD');
  const anyRedis = c.redisUrl || c.redisSentinels || c.redisClusterNodes;
  if (!anyRedis && (c.redisPassword || c.redisUsername))
    out.push('REDIS_PASSWORD/REDIS_USERNAME: have no effect without REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES');
  // Two sources of credentials for the same connection: which one wins would be a guess.
  if (c.redisPassword || c.redisUsername) {
    const inUrl = [c.redisClusterNodes ? undefined : c.redisSentinels ? undefined : c.redisUrl, ...(c.redisClusterNodes ?? [])].filter(
      (u): u is string => !!u && urlHasCredentials(u),
    );
    if (inUrl.length) out.push('REDIS_PASSWORD/REDIS_USERNAME: the Redis URL carries credentials too; set them in one place');
  }
  for (const u of [c.redisUrl, ...(c.redisClusterNodes ?? [])]) {
    if (u === undefined) continue;
    try {
      new URL(u);
    } catch {
      out.push(`${u.startsWith('rediss') ? 'rediss' : 'redis'} URL "${redactUrl(u)}": not a valid URL`);
    }
  }
  return out;
}

function urlHasCredentials(u: string): boolean {
  try {
    const url = new URL(u);
    return url.password !== '' || url.username !== '';
  } catch {
    return false;
  }
}

/** A URL with its password masked, for logs and errors. */
export function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.password) url.password = '***';
    return url.toString().replace(/\/$/, '');
  } catch {
    return u.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** Secrets never reach an error message (it ends up in logs): passwords hidden, URLs redacted. */
function shown(env: string, raw: unknown): string {
  if (/PASSWORD|SECRET|API_KEYS/.test(env)) return '(hidden)';
  if (typeof raw === 'string' && /rediss?:\/\//.test(raw))
    return JSON.stringify(
      raw
        .split(',')
        .map((u) => redactUrl(u.trim()))
        .join(','),
    );
  return JSON.stringify(raw);
}
