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
    else problems.push(`${spec.env}=${JSON.stringify(raw)}: ${formatIssues(r.error)}`);
  }
  out.nodeId ??= defaultNodeId();
  const c = out as Config;
  if (problems.length === 0) {
    if (c.port !== 0 && c.port === c.internalPort) problems.push(`INTERNAL_PORT=${c.internalPort}: must differ from PORT`);
    if (c.pingIntervalMs + c.pingTimeoutMs >= c.idleTimeoutSeconds * 1000)
      problems.push(`WS_IDLE_TIMEOUT_S=${c.idleTimeoutSeconds}: must exceed PING_INTERVAL_MS + PING_TIMEOUT_MS (${c.pingIntervalMs + c.pingTimeoutMs} ms)`);
    if (c.canaryTimeoutMs < c.canaryIntervalMs) problems.push(`CANARY_TIMEOUT_MS=${c.canaryTimeoutMs}: must be at least CANARY_INTERVAL_MS (${c.canaryIntervalMs})`);
    if (c.webhookSecret === undefined && c.backendUrl !== undefined) problems.push('WEBHOOK_SECRET: required when BACKEND_URL is set (the backend must be able to verify calls)');
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(c);
}
