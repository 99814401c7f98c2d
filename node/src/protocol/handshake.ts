// One handshake for every transport (Socket.IO and SSE): the client's address, the per-address handshake rate and
// connection slot, authentication (token, backend /connect, open mode), the per-user slot, the handshake metrics,
// and the token-expiry timer both transports close on.
import type { TokenClaims, TokenVerifier } from '../auth/tokens.js';
import type { ClientContext } from '../core/app.js';
import { clientIp, TrustedProxies } from '../core/client-ip.js';
import { SbError } from '../core/errors.js';
import type { Backend } from '../hooks/backend.js';
import type { ConnectionLimits, Held } from '../limits/connections.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';

export interface HandshakeOptions {
  /** Peers whose X-Forwarded-For names the client (TRUSTED_PROXIES). @default [] */
  trustedProxies: readonly string[];
  /** Request headers forwarded to `/connect` besides `cookie` (WEBHOOK_FORWARD_HEADERS). */
  webhookForwardHeaders: readonly string[];
  /** Slack after a token's `exp` before the connection closes with `token_expired` (TOKEN_REFRESH_GRACE_MS). @default 1000 */
  tokenRefreshGraceMs: number;
}

export interface HandshakeDeps {
  options: HandshakeOptions;
  verifier: TokenVerifier | undefined;
  backend: Backend | undefined;
  limits: ConnectionLimits;
  metrics: Metrics;
  log: Logger;
}

/** The address part of a handshake: counted against the rate and holding one per-address slot until released. */
export interface Admission extends Held {
  readonly ip: string;
}

/** Who the client is, and the per-user slot it holds until released. */
export interface Identity {
  ctx: ClientContext;
  /** The token's `exp` (seconds), if it has one. */
  tokenExp?: number;
  /** Channels the backend's `/connect` answer names: subscribed server-side. */
  autoJoin?: string[];
  /** The per-user slot; NOTHING_HELD without a user. */
  slot: Held;
}

export interface Credentials {
  ip: string;
  connectionId: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Socket.IO's `auth` payload (SSE: none). */
  auth: Record<string, unknown>;
  /** The token: `auth.token`, or the `token` query parameter. */
  token: unknown;
}

/** The slot of an anonymous identity: nothing held, one shared object. */
export const NOTHING_HELD: Held = Object.freeze({ release() {} });

export class Handshake {
  private readonly trusted: TrustedProxies;
  private readonly log: Logger;

  constructor(private readonly d: HandshakeDeps) {
    this.trusted = new TrustedProxies(d.options.trustedProxies);
    this.log = d.log.child({ module: 'handshake' });
  }

  clientIp(peer: string, forwardedFor: string | undefined): string {
    return clientIp(peer, forwardedFor, this.trusted);
  }

  /** First request of a connection (an Engine.IO handshake, an SSE request): rate and per-address slot. */
  async admit(ip: string): Promise<Admission> {
    try {
      await this.d.limits.handshake(ip);
      // The slot names the address it counts: it is the admission, no second object per connection.
      return (await this.d.limits.acquire(ip, undefined)) as Admission;
    } catch (err) {
      throw this.refused(err);
    }
  }

  /** Authenticates the client and takes its per-user slot. */
  async identify(c: Credentials): Promise<Identity> {
    try {
      const ctx: ClientContext = { user: undefined, connectionId: c.connectionId, ip: c.ip };
      let tokenExp: number | undefined;
      let autoJoin: string[] | undefined;
      if (this.d.verifier) {
        tokenExp = applyClaims(ctx, await this.d.verifier.verify(c.token));
      } else if (this.d.backend) {
        const headers: Record<string, string> = {};
        for (const h of ['cookie', ...this.d.options.webhookForwardHeaders]) {
          const v = c.headers[h];
          if (typeof v === 'string') headers[h] = v;
        }
        const { token, ...rest } = c.auth;
        const v = await this.d.backend.connect({ headers, auth: { ...rest, ...(typeof token === 'string' ? { token } : {}) }, ip: c.ip });
        Object.assign(ctx, { user: v.user, data: v.data, channels: v.channels });
        autoJoin = v.channels;
      } else if (typeof c.auth.user === 'string' && c.auth.user.length > 0) {
        // Open mode (no JWT_SECRET, no BACKEND_URL): the client names itself; nothing is verified.
        ctx.user = c.auth.user.slice(0, 100);
      }
      const slot = ctx.user === undefined ? NOTHING_HELD : await this.d.limits.acquire(undefined, ctx.user);
      return { ctx, tokenExp, autoJoin, slot };
    } catch (err) {
      throw this.refused(err);
    }
  }

  /**
   * The request headers a later handshake on the same Engine.IO session reads (identify(): the client address
   * and what `/connect` forwards); the rest can go once the connection is accepted.
   */
  retainedHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
    const kept: Record<string, string | string[]> = {};
    for (const h of ['x-forwarded-for', 'cookie', ...this.d.options.webhookForwardHeaders]) {
      const v = headers[h];
      if (v !== undefined) kept[h] = v;
    }
    return kept;
  }

  /** Counts a refused handshake by its code and returns it as an SbError. */
  refused(err: unknown): SbError {
    const e = err instanceof SbError ? err : new SbError('internal', 'connection refused');
    if (!(err instanceof SbError)) this.log.error({ err }, 'handshake failed');
    this.d.metrics.handshakes.inc({ outcome: e.code });
    return e;
  }

  accepted() {
    this.d.metrics.handshakes.inc({ outcome: 'ok' });
  }

  /** Calls `onExpire` once the token's `exp` (plus the grace) has passed; `reset` after a refresh. */
  expiry(exp: number | undefined, onExpire: () => void): { reset(exp: number | undefined): void; stop(): void } {
    let timer: NodeJS.Timeout | undefined;
    const reset = (e: number | undefined) => {
      clearTimeout(timer);
      timer = undefined;
      if (e === undefined) return;
      const wait = Math.max(0, e * 1000 - Date.now()) + this.d.options.tokenRefreshGraceMs;
      timer = setTimeout(onExpire, Math.min(wait, 2 ** 31 - 1));
    };
    reset(exp);
    return { reset, stop: () => clearTimeout(timer) };
  }
}

/** Copies a token's claims onto the context; returns its `exp`. */
export function applyClaims(ctx: ClientContext, c: TokenClaims): number | undefined {
  ctx.user = c.user;
  ctx.channels = c.channels;
  ctx.publish = c.publish;
  ctx.data = c.data;
  return c.exp;
}
