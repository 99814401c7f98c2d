// One client connection's life: handshake (token, backend /connect or open mode), limits, the event
// dispatcher, token expiry and refresh, and the accounting when it ends.
import type { Server, Socket } from 'socket.io';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { TokenClaims, TokenVerifier } from '../auth/tokens.js';
import type { Config } from '../config/schema.js';
import type { Backend } from '../hooks/backend.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ConnectionLimits } from '../limits/connections.js';
import { clientIp, TrustedProxies } from '../core/client-ip.js';
import type { ClientContext } from '../core/app.js';
import { SbError } from '../core/errors.js';
import { dispatch, HANDLERS, type ProtocolDeps, type SocketState } from './handlers.js';

/**
 * Per-connection bookkeeping. Not in socket.data: the Redis adapter serializes socket.data for cluster-wide
 * fetchSockets (presence), so that holds only the plain ClientContext; timers and functions live here.
 */
interface ConnState extends SocketState {
  tokenExp?: number;
  expiryTimer?: NodeJS.Timeout;
  strikes: number;
  strikeSecond: number;
  release?: () => void;
  autoJoin?: string[];
}

export interface ConnectionDeps extends Omit<ProtocolDeps, 'checkRate'> {
  verifier: TokenVerifier | undefined;
  limits: ConnectionLimits;
}

function normalizeReason(reason: string): string {
  return reason.replace(/[^a-z]+/gi, '_').toLowerCase();
}

function connectError(err: unknown): Error & { data?: unknown } {
  const e = err instanceof SbError ? err : new SbError('internal', 'connection refused');
  const out = new Error(e.message) as Error & { data?: unknown };
  out.data = { code: e.code, message: e.message };
  return out;
}

export function attachConnections(io: Server, d: ConnectionDeps) {
  const { config, metrics } = d;
  const log = d.log.child({ module: 'connection' });
  const trusted = new TrustedProxies(config.trustedProxies);
  const limiter = new RateLimiterMemory({ points: config.eventsPerSecond, duration: 1 });
  const states = new WeakMap<Socket, ConnState>();
  const stateOf = (socket: Socket) => states.get(socket)!;

  const checkRate = async (socket: Socket) => {
    try {
      await limiter.consume(socket.id);
    } catch {
      const st = stateOf(socket);
      const second = Math.floor(Date.now() / 1000);
      st.strikes = second === st.strikeSecond ? st.strikes : second === st.strikeSecond + 1 ? st.strikes + 1 : 1;
      st.strikeSecond = second;
      metrics.rejections.inc({ reason: 'rate_limited' });
      if (st.strikes >= config.rateLimitStrikes) {
        log.warn({ ip: st.ctx.ip, user: st.ctx.user }, 'closing a connection that keeps exceeding the event rate');
        socket.emit('switchboard:closing', { reason: 'rate_limited' });
        (socket.conn as unknown as { sbCloseReason?: string }).sbCloseReason = 'rate_limited';
        socket.disconnect(true);
      }
      throw new SbError('rate_limited', `more than ${config.eventsPerSecond} events per second`);
    }
  };
  const pd: ProtocolDeps = { ...d, checkRate };

  HANDLERS['auth:refresh'] = async (socket, args) => {
    if (!d.verifier) throw new SbError('bad_request', 'this node does not use tokens');
    const claims = await d.verifier.verify(args[0]);
    const st = stateOf(socket);
    if (claims.user !== st.ctx.user) throw new SbError('forbidden', 'a refreshed token must be for the same user');
    applyClaims(st, claims);
    scheduleExpiry(socket);
    return {};
  };

  function applyClaims(st: ConnState, c: TokenClaims) {
    st.ctx.user = c.user;
    st.ctx.channels = c.channels;
    st.ctx.publish = c.publish;
    st.ctx.data = c.data;
    st.tokenExp = c.exp;
  }

  function scheduleExpiry(socket: Socket) {
    const st = stateOf(socket);
    clearTimeout(st.expiryTimer);
    if (st.tokenExp === undefined) return;
    const wait = Math.max(0, st.tokenExp * 1000 - Date.now()) + config.tokenRefreshGraceMs;
    st.expiryTimer = setTimeout(() => {
      (socket.conn as unknown as { sbCloseReason?: string }).sbCloseReason = 'token_expired';
      socket.emit('switchboard:closing', { reason: 'token_expired' });
      socket.disconnect(true);
    }, Math.min(wait, 2 ** 31 - 1));
  }

  io.use(async (socket, next) => {
    const hs = socket.handshake;
    try {
      const ip = clientIp(hs.address, hs.headers['x-forwarded-for'] as string | undefined, trusted);
      await d.limits.handshake(ip);
      const ctx: ClientContext = { user: undefined, connectionId: socket.id, ip };
      const st: ConnState = { ctx, strikes: 0, strikeSecond: 0 };
      const auth = (hs.auth ?? {}) as Record<string, unknown>;
      if (d.verifier) {
        applyClaims(st, await d.verifier.verify(auth.token ?? hs.query.token));
      } else if (d.backend) {
        const headers: Record<string, string> = {};
        for (const h of ['cookie', ...config.webhookForwardHeaders]) {
          const v = hs.headers[h];
          if (typeof v === 'string') headers[h] = v;
        }
        const { token: _t, ...safeAuth } = auth;
        const v = await d.backend.connect({ headers, auth: { ...safeAuth, ...(typeof _t === 'string' ? { token: _t } : {}) }, ip });
        ctx.user = v.user;
        ctx.data = v.data;
        ctx.channels = v.channels;
        st.autoJoin = v.channels;
      } else if (typeof auth.user === 'string' && auth.user.length > 0) {
        // Open mode (no JWT_SECRET, no BACKEND_URL): the client names itself; nothing is verified.
        ctx.user = auth.user.slice(0, 100);
      }
      const release = await d.limits.acquire(ip, ctx.user);
      st.release = release;
      // A client gone while the handshake ran never gets 'disconnect' (Socket.IO drops it silently): release
      // on the transport's close as well (release is idempotent), or the count would leak for good.
      if (socket.conn.readyState === 'open') socket.conn.once('close', release);
      else release();
      states.set(socket, st);
      socket.data = { ctx } satisfies SocketState;
      // The token has done its job; keep it out of what the adapter ships between nodes.
      if (typeof auth.token === 'string') auth.token = '[verified]';
      if (typeof hs.query.token === 'string') hs.query.token = '[verified]';
      metrics.handshakes.inc({ outcome: 'ok' });
      next();
    } catch (err) {
      const e = connectError(err);
      metrics.handshakes.inc({ outcome: (e.data as { code: string }).code });
      if (!(err instanceof SbError)) log.error({ err }, 'handshake failed');
      next(e);
    }
  });

  io.on('connection', (socket) => {
    const st = stateOf(socket);
    let transport = socket.conn.transport.name;
    metrics.connections.inc({ transport });
    socket.conn.on('upgrade', (t: { name: string }) => {
      metrics.connections.dec({ transport });
      transport = t.name;
      metrics.connections.inc({ transport });
    });
    scheduleExpiry(socket);
    socket.onAny((event: string, ...args: unknown[]) => dispatch(socket, event, args, pd));
    socket.on('disconnect', (reason) => {
      clearTimeout(st.expiryTimer);
      st.release?.();
      metrics.connections.dec({ transport });
      const why = (socket.conn as unknown as { sbCloseReason?: string }).sbCloseReason ?? normalizeReason(reason);
      metrics.disconnects.inc({ reason: why });
      d.backend?.disconnect(st.ctx, why);
    });
    if (st.autoJoin?.length) {
      // Channels named by the backend's /connect answer: subscribed server-side, allowed by definition.
      for (const c of st.autoJoin) HANDLERS.subscribe!(socket, [c], pd).catch((err: unknown) => log.warn({ err, channel: c }, 'auto-subscribe failed'));
    }
  });
}

