// Environment variables that look like ours but that no field reads: a typo (`ALLOWED_ORIGNS`) would
// otherwise leave a setting at its default without a word. Start-up warns about each one.
import { FIELDS } from './schema.js';

/** Prefixes only Switchboard's settings use; any other name under them is probably a mistake. */
const OUR_PREFIXES = [
  'SWITCHBOARD_',
  'REDIS_',
  'WEBHOOK_',
  'JWT_',
  'CANARY_',
  'DRAIN_',
  'HISTORY_',
  'SSE_',
  'CONNECTIONS_',
  'HANDSHAKES_',
  'IDEMPOTENCY_',
];

// Kubernetes' service links (REDIS_SERVICE_HOST, REDIS_PORT_6379_TCP_ADDR, REDIS_PORT=tcp://…) are set for
// every service in the namespace unless enableServiceLinks is false; they are nobody's typo.
const SERVICE_LINK = /^[A-Z0-9_]+_(SERVICE_(HOST|PORT)(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$/;

export interface UnknownEnv {
  name: string;
  /** The known name it is closest to, when it is close enough to be a typo of it. */
  like?: string;
}

/** Names in `env` that look like Switchboard settings but are not one, sorted. */
export function unknownEnv(env: NodeJS.ProcessEnv, known: readonly string[] = Object.values(FIELDS).map((f) => f.env)): UnknownEnv[] {
  const knownSet = new Set(known);
  const out: UnknownEnv[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (knownSet.has(name) || SERVICE_LINK.test(name) || (/^[A-Z0-9_]+_PORT$/.test(name) && /^(tcp|udp|sctp):\/\//.test(value ?? '')))
      continue;
    const like = closest(name, known);
    if (like !== undefined || OUR_PREFIXES.some((p) => name.startsWith(p))) out.push(like === undefined ? { name } : { name, like });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The known name within a typo's reach of `name` (case ignored): 1 edit for short names, 2 for longer ones. */
function closest(name: string, known: readonly string[]): string | undefined {
  const upper = name.toUpperCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const reach = k.length <= 8 ? 1 : 2;
    const d = distance(upper, k, reach);
    if (d <= reach && d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

/** Levenshtein distance, giving up (returning limit + 1) once it must exceed `limit`. */
function distance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      rowMin = Math.min(rowMin, row[j]!);
    }
    if (rowMin > limit) return limit + 1;
    prev = row;
  }
  return prev[b.length]!;
}
