// The Origin policy (ALLOWED_ORIGINS) and the CORS answers that go with it, one check shared by Socket.IO,
// the HTTP API, GRIP and SSE.
import type { Metrics } from '../metrics/metrics.js';
import { SbError } from '../core/errors.js';
import { TrustedProxies } from '../core/client-ip.js';

/** `(lower-case request headers, peer address) → allowed`. */
export type OriginCheck = (headers: Readonly<Record<string, string | undefined>>, peer: string) => boolean;

export interface OriginPolicyOptions {
  /** ALLOWED_ORIGINS: origins allowed besides the request's own; `['*']` allows any. @default undefined (own origin only) */
  allowedOrigins?: readonly string[];
  /** TRUSTED_PROXIES: peers whose X-Forwarded-Host / X-Forwarded-Proto say what the request's own origin is. @default [] */
  trustedProxies: readonly string[];
  /** CORS_CREDENTIALS: answer cross-origin requests with `Access-Control-Allow-Credentials: true`. @default false */
  corsCredentials?: boolean;
  /** Told once when a refusal looks like a TLS-terminating proxy that is not in TRUSTED_PROXIES. */
  warn?: (message: string) => void;
}

/** Request headers a cross-origin page may send (the API key, JSON, idempotency, SSE resume). */
export const CORS_ALLOWED_HEADERS = 'authorization, content-type, idempotency-key, last-event-id';

/** `scheme://host[:port]` with the default port dropped and the host lower-cased; undefined when not an origin. */
export function normalizeOrigin(value: string): string | undefined {
  try {
    const u = new URL(value);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.origin === 'null') return undefined;
    return u.origin;
  } catch {
    return undefined;
  }
}

const first = (v: string | undefined) => v?.split(',')[0]!.trim() || undefined;

/**
 * Secure by default: a request with an `Origin` (a browser) passes when it is the request's own origin — as the
 * client saw it, through HAProxy's X-Forwarded-Proto/-Host when the peer is a trusted proxy — or listed in
 * ALLOWED_ORIGINS, or when ALLOWED_ORIGINS is `*`. A request without `Origin` is not from a browser page
 * (curl, a backend, an app) and passes: the hole this closes is a page on another site using the victim's cookies.
 */
export class OriginPolicy {
  readonly mode: 'same-origin' | 'list' | 'any';
  private readonly listed: Set<string>;
  private readonly trusted: TrustedProxies;
  private readonly credentials: boolean;
  private warned = false;

  constructor(private readonly opts: OriginPolicyOptions) {
    const list = opts.allowedOrigins ?? [];
    this.mode = list.includes('*') ? 'any' : list.length ? 'list' : 'same-origin';
    this.listed = new Set(list.filter((o) => o !== '*').map((o) => normalizeOrigin(o) ?? o));
    this.trusted = new TrustedProxies(opts.trustedProxies);
    this.credentials = opts.corsCredentials ?? false;
  }

  /** One line for the start-up log. */
  describe(): string {
    if (this.mode === 'any') return 'any origin (ALLOWED_ORIGINS=*)';
    if (this.mode === 'list') return `own origin and ${[...this.listed].join(', ')} (ALLOWED_ORIGINS)`;
    return 'own origin only: cross-origin browser requests are refused (ALLOWED_ORIGINS unset)';
  }

  /** The origin the client addressed: scheme and host, from a trusted proxy's forwarded headers or the request. */
  ownOrigin(headers: Readonly<Record<string, string | undefined>>, peer: string): string | undefined {
    const viaProxy = this.trusted.has(peer.startsWith('::ffff:') ? peer.slice(7) : peer);
    const host = (viaProxy && first(headers['x-forwarded-host'])) || headers.host;
    const proto = (viaProxy && first(headers['x-forwarded-proto'])) || 'http';
    return host ? normalizeOrigin(`${proto}://${host}`) : undefined;
  }

  allows: OriginCheck = (headers, peer) => {
    const origin = headers.origin;
    if (origin === undefined) return true;
    if (this.mode === 'any') return true;
    const o = normalizeOrigin(origin);
    if (o === undefined) return false;
    const own = this.ownOrigin(headers, peer);
    if (this.listed.has(o) || o === own) return true;
    if (!this.warned && own !== undefined && new URL(o).host === new URL(own).host) {
      // Same host, other scheme: most likely HTTPS ends at a proxy whose X-Forwarded-Proto is not believed.
      this.warned = true;
      this.opts.warn?.(
        `refused Origin ${o} for a request that reached this node as ${own}: if a proxy terminates TLS, add it to TRUSTED_PROXIES (or list the origin in ALLOWED_ORIGINS)`,
      );
    }
    return false;
  };

  /** Headers for the answer to an allowed request that carries an Origin (the browser then lets the page read it). */
  corsHeaders(headers: Readonly<Record<string, string | undefined>>): Record<string, string> {
    const origin = headers.origin;
    if (origin === undefined) return {};
    return {
      'access-control-allow-origin': origin,
      vary: 'Origin',
      ...(this.credentials ? { 'access-control-allow-credentials': 'true' } : {}),
    };
  }

  /** The answer to a preflight (OPTIONS) of an allowed origin. */
  preflightHeaders(headers: Readonly<Record<string, string | undefined>>): Record<string, string> {
    return {
      ...this.corsHeaders(headers),
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': CORS_ALLOWED_HEADERS,
      'access-control-max-age': '600',
    };
  }
}

/** A bare check (tests, tools): `createOriginCheck(list, trustedProxies)`. */
export function createOriginCheck(allowed: readonly string[] | undefined, trustedProxies: readonly string[] = []): OriginCheck {
  return new OriginPolicy({ allowedOrigins: allowed, trustedProxies }).allows;
}

/** For HTTP routes: throws `forbidden` (403) and counts the rejection when the Origin is not allowed. */
export function assertOrigin(policy: OriginPolicy, req: { headers: Record<string, string>; remoteAddress: string }, metrics: Metrics) {
  // No Origin header (a server-side caller): allowed, and the peer address (a system call to read) is not needed.
  if (req.headers.origin === undefined || policy.allows(req.headers, req.remoteAddress)) return;
  metrics.rejections.inc({ reason: 'origin' });
  throw new SbError('forbidden', `origin ${req.headers.origin} is not allowed (ALLOWED_ORIGINS)`);
}
