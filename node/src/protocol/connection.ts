// One Socket.IO connection's life: the shared handshake (identity, per-user slot) on CONNECT, the event rate
// limit, the dispatcher, token expiry and refresh, and the accounting when it ends.
import type { Server, Socket } from 'socket.io';
import type { TokenVerifier } from '../auth/tokens.js';
import { LateAdmission, type ConnectionLimits, type Held, type SessionSlots } from '../limits/connections.js';
import { SbError } from '../core/errors.js';
import { PerSecondCounter } from '../limits/per-second.js';
import {
  dispatch,
  HANDLERS,
  RepeatedRateLimit,
  type Handler,
  type ProtocolDeps,
  type ProtocolOptions,
  type SocketState,
} from './handlers.js';
import { applyClaims, NOTHING_HELD, type Handshake } from './handshake.js';
import { installEventLane } from './event-lane.js';

/**
 * Per-connection bookkeeping. Not in socket.data: the Redis adapter serializes socket.data for cluster-wide
 * fetchSockets (presence), so that holds only the plain ClientContext; timers and functions live here.
 */
interface ConnState extends SocketState {
  expiry?: { reset(exp: number | undefined): void; stop(): void };
  tokenExp?: number;
  /** Event-rate window: the second, and events seen in it. */
  window: number;
  count: number;
  strikes: number;
  strikeSecond: number;
  autoJoin?: string[];
  /** The per-user slot (the per-address one is the admission, on the Engine.IO request). */
  slot: Held;
  /** What the connections gauge counts it under: polling until an upgrade. */
  transport: string;
}

export interface ConnectionOptions extends ProtocolOptions {
  /** Client events per second per connection before `rate_limited` (EVENTS_PER_SECOND). @default 50 */
  eventsPerSecond: number;
  /** Seconds in a row over the event rate after which the connection is closed (RATE_LIMIT_STRIKES). @default 5 */
  rateLimitStrikes: number;
  /** Client publications per second per address from connections without a user (ANONYMOUS_PUBLISHES_PER_SECOND_PER_IP). @default 5 */
  anonymousPublishesPerSecondPerIp: number;
}

export interface ConnectionDeps extends Omit<ProtocolDeps, 'options' | 'checkRate' | 'handlers' | 'checkAnonymousPublish'> {
  options: ConnectionOptions;
  verifier: TokenVerifier | undefined;
  limits: ConnectionLimits;
  handshake: Handshake;
}

/** Past this many times EVENTS_PER_SECOND within one second, a connection is closed at once (a flood). */
const FLOOD_FACTOR = 10;

function normalizeReason(reason: string): string {
  return reason.replace(/[^a-z]+/gi, '_').toLowerCase();
}

function connectError(e: SbError): Error & { data?: unknown } {
  const out = new Error(e.message) as Error & { data?: unknown };
  out.data = { code: e.code, message: e.message };
  return out;
}

/** The limit slots of the connection's Engine.IO session (transport/socketio.ts admits, CONNECT adds the user's). */
function slotsOf(socket: Socket): SessionSlots {
  return socket.conn.request as unknown as SessionSlots;
}

function closeWith(socket: Socket, reason: string) {
  (socket.conn as unknown as { sbCloseReason?: string }).sbCloseReason ??= reason;
  socket.emit('switchboard:closing', { reason });
  socket.disconnect(true);
}

export function attachConnections(io: Server, d: ConnectionDeps) {
  const { options, metrics } = d;
  const log = d.log.child({ module: 'connection' });
  const states = new WeakMap<Socket, ConnState>();
  const stateOf = (socket: Socket) => states.get(socket)!;

  // Synchronous and first for every event, with an ack or without: a flood costs a counter per frame, no more.
  const checkRate = (socket: Socket) => {
    const st = stateOf(socket);
    const second = Math.floor(Date.now() / 1000);
    if (second !== st.window) {
      st.window = second;
      st.count = 0;
    }
    if (++st.count <= options.eventsPerSecond) return;
    metrics.rejections.inc({ reason: 'rate_limited' });
    const message = `more than ${options.eventsPerSecond} events per second`;
    if (st.count === options.eventsPerSecond + 1) {
      // The first excess event of a second is a strike; seconds in a row add up.
      st.strikes = st.strikeSecond === second - 1 ? st.strikes + 1 : 1;
      st.strikeSecond = second;
    } else if (st.count <= options.eventsPerSecond * FLOOD_FACTOR) {
      throw new RepeatedRateLimit(message);
    }
    if (st.strikes >= options.rateLimitStrikes || st.count > options.eventsPerSecond * FLOOD_FACTOR) {
      if (socket.connected) {
        log.warn({ ip: st.ctx.ip, user: st.ctx.user }, 'closing a connection that keeps exceeding the event rate');
        closeWith(socket, 'rate_limited');
      }
      throw new RepeatedRateLimit(message);
    }
    throw new SbError('rate_limited', message);
  };

  // This instance's handlers: the shared protocol plus auth:refresh, which needs this node's verifier.
  const refresh: Handler = async (socket, args) => {
    if (!d.verifier) throw new SbError('bad_request', 'this node does not use tokens');
    const claims = await d.verifier.verify(args[0]);
    const st = stateOf(socket);
    if (claims.user !== st.ctx.user) throw new SbError('forbidden', 'a refreshed token must be for the same user');
    st.tokenExp = applyClaims(st.ctx, claims);
    if (st.expiry) st.expiry.reset(st.tokenExp);
    else if (st.tokenExp !== undefined) st.expiry = d.handshake.expiry(st.tokenExp, () => closeWith(socket, 'token_expired'));
    // A narrower token takes effect now: subscriptions it no longer allows end here.
    const dropped: string[] = [];
    for (const channel of [...socket.rooms]) {
      if (channel === socket.id) continue;
      try {
        await d.authorizer.subscribe(st.ctx, channel);
      } catch (err) {
        if (!(err instanceof SbError) || (err.code !== 'forbidden' && err.code !== 'unauthorized')) throw err;
        socket.leave(channel);
        dropped.push(channel);
      }
    }
    return dropped.length ? { dropped } : {};
  };
  // Anyone may publish where a rule says `anyone` (demo:): per address, so one machine's sockets share one budget.
  const anonymous = new PerSecondCounter(options.anonymousPublishesPerSecondPerIp);
  const checkAnonymousPublish = (ip: string) => {
    if (anonymous.take(ip)) return;
    metrics.rejections.inc({ reason: 'anonymous_publish_rate' });
    throw new SbError(
      'rate_limited',
      `more than ${options.anonymousPublishesPerSecondPerIp} publications per second from this address without a user`,
    );
  };
  const pd: ProtocolDeps = { ...d, checkRate, checkAnonymousPublish, handlers: Object.freeze({ ...HANDLERS, 'auth:refresh': refresh }) };

  io.use(async (socket, next) => {
    const hs = socket.handshake;
    const adm = slotsOf(socket).sbAdmission;
    try {
      // A WebSocket-first session opened while its address was being admitted: CONNECT waits for the verdict.
      if (adm instanceof LateAdmission) {
        const refused = await adm.settled;
        if (refused) throw refused;
      }
      const auth = (hs.auth ?? {}) as Record<string, unknown>;
      const ip = adm?.ip ?? d.handshake.clientIp(hs.address, hs.headers['x-forwarded-for'] as string | undefined);
      const id = await d.handshake.identify({
        ip,
        connectionId: socket.id,
        headers: hs.headers,
        auth,
        token: auth.token ?? hs.query.token,
      });
      // A client gone while the handshake ran never gets 'disconnect' (Socket.IO drops it silently): the slot
      // goes with the session's as well (transport/socketio.ts releases them as it ends; release is idempotent),
      // or now if it has ended. A second CONNECT on one session (a second socket) gets a listener of its own.
      if (id.slot !== NOTHING_HELD) {
        const slots = slotsOf(socket);
        if (socket.conn.readyState !== 'open') id.slot.release();
        else if (slots.sbUser === undefined) slots.sbUser = id.slot;
        else socket.conn.once('close', () => id.slot.release());
      }
      states.set(socket, {
        ctx: id.ctx,
        tokenExp: id.tokenExp,
        autoJoin: id.autoJoin,
        window: 0,
        count: 0,
        strikes: 0,
        strikeSecond: 0,
        slot: id.slot,
        transport: '',
      });
      socket.data = { ctx: id.ctx } satisfies SocketState;
      // The token has done its job; keep it out of what the adapter ships between nodes.
      if (typeof auth.token === 'string') auth.token = '[verified]';
      if (typeof hs.query.token === 'string') hs.query.token = '[verified]';
      d.handshake.accepted();
      next();
    } catch (err) {
      next(connectError(err instanceof SbError ? err : new SbError('internal', 'connection refused')));
    }
  });

  // Listeners shared by every socket (Socket.IO calls them with the socket as `this`): no closures and context
  // per connection.
  function onEvent(this: Socket, event: string, ...args: unknown[]) {
    dispatch(this, event, args, pd);
  }
  /** The same, for events that come by the event lane (already split into name and arguments). */
  function onLaneEvent(socket: Socket, event: string, args: unknown[]) {
    dispatch(socket, event, args, pd);
  }
  function onDisconnect(this: Socket, reason: string) {
    const st = stateOf(this);
    st.expiry?.stop();
    st.slot.release();
    slotsOf(this).sbAdmission?.release();
    metrics.connections.dec({ transport: st.transport });
    const why = (this.conn as unknown as { sbCloseReason?: string }).sbCloseReason ?? normalizeReason(reason);
    metrics.disconnects.inc({ reason: why });
    d.backend?.disconnect(st.ctx, why);
  }

  let lastTime = '';
  io.on('connection', (socket) => {
    const st = stateOf(socket);
    st.transport = socket.conn.transport.name;
    metrics.connections.inc({ transport: st.transport });
    // Only a polling session can upgrade; a WebSocket one keeps no listener for it.
    if (st.transport !== 'websocket') {
      socket.conn.on('upgrade', (t: { name: string }) => {
        metrics.connections.dec({ transport: st.transport });
        st.transport = t.name;
        metrics.connections.inc({ transport: st.transport });
      });
    }
    // Timer and closures only for a token that expires (auth:refresh starts one if a later token does).
    if (st.tokenExp !== undefined) st.expiry = d.handshake.expiry(st.tokenExp, () => closeWith(socket, 'token_expired'));
    // Memory per idle connection: the request headers Engine.IO and Socket.IO keep for the connection's life
    // (socket.handshake.headers is the same object) are read by nothing after the handshake but a later CONNECT on
    // this session, which reads only what retainedHeaders() keeps. The uWS response object of the upgrade is dead.
    const req = socket.conn.request as unknown as { headers: Record<string, unknown>; res?: unknown };
    req.headers = socket.handshake.headers = d.handshake.retainedHeaders(socket.handshake.headers) as typeof socket.handshake.headers;
    if (st.transport === 'websocket') req.res = undefined;
    // handshake.time is Date#toString, to the second: the connections of one second share one string (80 B each).
    if (socket.handshake.time === lastTime) socket.handshake.time = lastTime;
    else lastTime = socket.handshake.time;
    // onAny() pushes onto a new empty array, which V8 grows to 17 slots (~130 B more per connection than an array
    // of the one listener, which is all onAny leaves there). Socket.IO reads _anyListeners when events come in and
    // for listenersAny(); should a version name it otherwise, onAny() it is.
    const any = socket as unknown as { _anyListeners?: unknown[] };
    if (any._anyListeners === undefined) any._anyListeners = [onEvent];
    if (!socket.listenersAny().includes(onEvent)) socket.onAny(onEvent);
    installEventLane(socket, onEvent, onLaneEvent);
    socket.on('disconnect', onDisconnect);
    if (st.autoJoin?.length) {
      // Channels named by the backend's /connect answer: subscribed server-side, allowed by definition.
      for (const c of st.autoJoin)
        Promise.resolve(HANDLERS.subscribe!(socket, [c], pd)).catch((err: unknown) =>
          log.warn({ err, channel: c }, 'auto-subscribe failed'),
        );
    }
  });
}
