// Socket.IO v4 on the uWS app: engine options from config, Origin checks on every request (handshakes,
// polling requests with a session id, upgrades), per-connection guards (frame size, slow consumers).
import { Server, type Socket } from 'socket.io';
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import type { Bus } from '../bus/bus.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Logger } from '../log/logger.js';
import { LateAdmission, releaseSlots, type Admitted, type SessionSlots } from '../limits/connections.js';
import { traced } from './quiet-debug.js';

/** Engine.IO and WebSocket settings. */
export interface SocketServerOptions extends TransportGuardOptions {
  /** Engine.IO ping interval (PING_INTERVAL_MS). @default 25000 */
  pingIntervalMs: number;
  /** Engine.IO ping timeout (PING_TIMEOUT_MS). @default 20000 */
  pingTimeoutMs: number;
  /** Largest client frame or polling body (MAX_PAYLOAD_BYTES). @default 102400 */
  maxPayloadBytes: number;
  /** WebSocket per-message deflate (PER_MESSAGE_DEFLATE). @default false */
  perMessageDeflate: boolean;
  /** uWS idle timeout of a silent WebSocket (WS_IDLE_TIMEOUT_S). @default 120 */
  idleTimeoutSeconds: number;
  /** An Engine.IO session without a Socket.IO CONNECT is closed after this (CONNECT_TIMEOUT_MS). @default 10000 */
  connectTimeoutMs: number;
}

export interface TransportGuardOptions {
  /** Outbound bytes buffered per WebSocket before it is closed as a slow consumer (MAX_BACKPRESSURE_BYTES). @default 1048576 */
  maxBackpressureBytes: number;
  /** How often buffers are checked against maxBackpressureBytes (SLOW_CONSUMER_CHECK_MS). @default 100 */
  slowConsumerCheckMs: number;
}

export interface SocketServerDeps {
  bus: Bus;
  /** The Origin policy (limits/origin.ts): checked on every request; CORS headers for allowed cross-origin polling. */
  origins: {
    allows(headers: Record<string, string>, peer: string): boolean;
    corsHeaders(headers: Record<string, string>): Record<string, string>;
    preflightHeaders(headers: Record<string, string>): Record<string, string>;
  };
  /**
   * The address part of the shared handshake (protocol/handshake.ts), run on the first request of every Engine.IO
   * session: a session that never sends CONNECT still counts against the per-address rate and connection limits.
   */
  admit(req: { headers: Record<string, string>; peer: string }): Promise<Admitted>;
  metrics: Metrics;
  log: Logger;
}

/** The engine.io request on uWS (userver.js prepare()): headers copied, the uWS response alongside. */
interface EngineRequest extends SessionSlots {
  method: string;
  headers: Record<string, string>;
  _query: { transport?: string; sid?: string };
  connection?: { remoteAddress?: string };
  res: {
    onAborted(fn: () => void): void;
    cork(fn: () => void): void;
    writeStatus(s: string): void;
    writeHeader(k: string, v: string): void;
    end(body?: string): void;
  };
}

/** A polling session's close listener: one function for all of them, called with the Engine.IO socket as `this`. */
function releaseOnClose(this: { request: SessionSlots }) {
  releaseSlots(this.request);
}

/** Engine.IO error codes (engine.io Server.errors) → our metric reasons. */
const ENGINE_ERRORS: Record<number, string> = {
  0: 'unknown_transport',
  1: 'unknown_sid',
  2: 'bad_handshake_method',
  3: 'bad_request',
  4: 'forbidden',
  5: 'unsupported_protocol',
};
const FORBIDDEN = 4;
const BAD_REQUEST = 3;

export function createSocketServer(app: TemplatedApp, config: SocketServerOptions, d: SocketServerDeps): Server {
  const { bus, metrics, log } = d;
  const io = new Server({
    adapter: bus.adapter(),
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    maxHttpBufferSize: config.maxPayloadBytes,
    perMessageDeflate: config.perMessageDeflate,
    httpCompression: false,
    connectTimeout: config.connectTimeoutMs,
    serveClient: true,
    cleanupEmptyChildNamespaces: true,
  });
  // Socket.IO broadcasts to WebSocket clients through uWS's own pub/sub (app.publish), which never calls the
  // transport: past maxBackpressure uWS would drop silently. closeOnBackpressureLimit makes it close instead
  // (at 16x our own limit, which TransportGuard enforces first with a clear reason).
  const ws = app.ws.bind(app);
  (app as { ws: unknown }).ws = (pattern: string, behavior: Record<string, unknown>) =>
    ws(pattern, { ...behavior, closeOnBackpressureLimit: true } as never);
  // The msgpack bundle Socket.IO would serve needs the server's parser to be socket.io-msgpack-parser; this
  // server speaks the default parser only, so a page loading that bundle could never connect. Refuse it
  // plainly (exact routes win over Socket.IO's wildcard one in uWS).
  for (const file of ['socket.io.msgpack.min.js', 'socket.io.msgpack.min.js.map']) {
    app.get(`/socket.io/${file}`, (res) => {
      res.cork(() => {
        res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json; charset=utf-8');
        res.end(
          JSON.stringify({
            error: { code: 'not_found', message: 'the msgpack parser is not supported: load /socket.io/socket.io.min.js (default parser)' },
          }),
        );
      });
    });
  }
  io.attachApp(app, {
    // uWS-level WebSocket options (engine.io passes them to app.ws()).
    idleTimeout: config.idleTimeoutSeconds,
    maxBackpressure: config.maxBackpressureBytes * 16,
    compression: config.perMessageDeflate ? 1 : 0,
  } as Record<string, unknown>);

  // engine.io calls verify() for every HTTP request and upgrade, with or without a session id; allowRequest
  // only sees handshakes. Checking Origin here covers polling requests and upgrades that carry a sid.
  type Verify = (req: EngineRequest, upgrade: boolean, fn: (code?: number, ctx?: unknown) => void) => void;
  const engine = io.engine as unknown as {
    verify: Verify;
    handshake(t: string, req: EngineRequest, close: unknown): Promise<unknown>;
    createTransport(name: string, req: EngineRequest): EngineTransport;
  };
  const verify = engine.verify.bind(engine);
  const answer = (req: EngineRequest, status: string, headers: Record<string, string>, body = '') =>
    req.res.cork(() => {
      req.res.writeStatus(status);
      for (const [k, v] of Object.entries(headers)) req.res.writeHeader(k, v);
      req.res.end(body);
    });
  engine.verify = (req, upgrade, fn) => {
    // engine.io's uWS upgrade path answers a WebSocket upgrade that names another transport with a 200 and
    // then writes a 101 on the finished response (an unhandled rejection per request); refuse it first.
    if (upgrade && req._query?.transport !== 'websocket') {
      metrics.rejections.inc({ reason: 'bad_request' });
      return fn(BAD_REQUEST, { message: 'a WebSocket upgrade must use transport=websocket' });
    }
    const peer = req.connection?.remoteAddress ?? '';
    if (!d.origins.allows(req.headers, peer)) {
      metrics.rejections.inc({ reason: 'origin' });
      return fn(FORBIDDEN, { message: 'origin not allowed' });
    }
    // A CORS preflight (a cross-origin polling client with extra headers): answered here, engine.io has none.
    if (!upgrade && req.method === 'OPTIONS') return answer(req, '204 No Content', d.origins.preflightHeaders(req.headers));
    verify(req, upgrade, (code, ctx) => {
      if (code !== undefined || req._query.sid) return fn(code, ctx);
      // The first request of a new session: the per-address rate and slot count from here, CONNECT or not.
      if (upgrade) {
        // A WebSocket-first session is upgraded now and admitted alongside; CONNECT waits for the verdict
        // (protocol/connection.ts) and a refusal closes the session (below). Upgrading after an await instead
        // means a corked upgrade outside uWS's own callbacks, where uWS's cork() reads the fresh WebSocket's memory
        // as the HTTP response's state (the socket is reallocated in place) and now and then closes it at once:
        // 1006 for the client, mostly on a fresh node (uNetworking/uWebSockets#1928). Uncorked, it warns per write.
        req.sbAdmission = new LateAdmission(d.admit({ headers: req.headers, peer }), req);
        return fn();
      }
      let aborted = false;
      req.res.onAborted(() => (aborted = true));
      d.admit({ headers: req.headers, peer }).then(
        (adm) => {
          if (aborted) return adm.release();
          req.sbAdmission = adm;
          fn();
        },
        (err: { code?: string; message?: string; httpStatus?: number }) => {
          if (aborted) return;
          const status =
            err.httpStatus === 429 ? '429 Too Many Requests' : err.httpStatus === 503 ? '503 Service Unavailable' : '403 Forbidden';
          answer(
            req,
            status,
            { 'content-type': 'application/json', ...d.origins.corsHeaders(req.headers) },
            JSON.stringify({ error: { code: err.code ?? 'internal', message: err.message ?? 'refused' } }),
          );
        },
      );
    });
  };
  // A handshake that fails after admission (engine.io refuses it late) gives its slot back.
  const handshake = engine.handshake.bind(engine);
  engine.handshake = async (t, req, close) => {
    const transport = await handshake(t, req, close);
    if (!transport) req.sbAdmission?.release();
    return transport;
  };
  // Allowed cross-origin polling clients may read the answers (every polling response goes through 'headers').
  io.engine.on('headers', (headers: Record<string, string>, req: EngineRequest) =>
    Object.assign(headers, d.origins.corsHeaders(req.headers)),
  );
  io.engine.on('connection_error', (err: { code: number; message: string }) => {
    metrics.rejections.inc({ reason: ENGINE_ERRORS[err.code] ?? 'engine_error' });
    log.debug({ code: err.code, message: err.message }, 'engine connection error');
  });
  const guard = new TransportGuard(config, metrics);
  // Every WebSocket transport is made from the guard's subclass, the guard's checks in its methods: nothing per
  // connection. engine.io exports no uWS transport class; the first WebSocket transport made shows it.
  const createTransport = engine.createTransport.bind(engine);
  let Guarded: TransportClass | undefined;
  engine.createTransport = (name, req) => {
    if (name !== 'websocket') return createTransport(name, req);
    Guarded ??= guard.transportClass(createTransport(name, req).constructor as TransportClass);
    return new Guarded(req);
  };
  // Buffers grow only by sends. Transport sends are checked as they happen; what uWS pub/sub publishes (our room
  // fan-out, Socket.IO's broadcasts) is not, so the sweep follows publishes: an idle node no longer asks every
  // WebSocket for its buffered amount ten times a second (the idle scenario's CPU gap to plain Socket.IO).
  const publish = app.publish.bind(app);
  (app as { publish: unknown }).publish = (...a: Parameters<TemplatedApp['publish']>) => {
    guard.published();
    return publish(...a);
  };
  io.engine.on('connection', (conn: EngineSocket) => {
    guard.watch(conn, conn.transport);
    const adm = conn.request.sbAdmission;
    if (adm instanceof LateAdmission) void adm.settled.then((err) => err && refuseOpen(conn, err));
    // A WebSocket session's slots go when its transport ends (the guard's subclass): no close listener, which would
    // be the third and grow the listener array to 19 slots. Only polling sessions need one, and can upgrade.
    if (conn.transport.name !== 'websocket') {
      conn.on('close', releaseOnClose);
      conn.on('upgrade', (t: EngineTransport) => guard.watch(conn, t));
    }
  });
  io.engine.on('close', () => guard.close());
  return io;
}

interface EngineTransport {
  name: string;
  socket?: { getBufferedAmount(): number; end(code: number, reason: string): void };
  send(packets: unknown[]): void;
  onClose(code?: number, message?: ArrayBuffer): void;
  doClose(fn?: () => void): void;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a mixin's base constructor must take any[]
type TransportClass = new (...args: any[]) => EngineTransport;
interface EngineSocket {
  transport: EngineTransport;
  request: SessionSlots;
  on(ev: string, fn: (...a: never[]) => void): void;
  close(): void;
}

/** DEBUG traces Socket.IO's or Engine.IO's packets: acks take their path, so the trace shows them (sendFrame). */
const ACKS_TRACED = traced('socket.io:socket', 'socket.io-parser', 'engine:socket', 'engine:ws');

export const CLOSE_SLOW_CONSUMER = 4008;
/** WebSocket close codes of a session refused after it opened: 1013 Try Again Later (limits), 1008 otherwise. */
export const CLOSE_TRY_AGAIN_LATER = 1013;
export const CLOSE_POLICY_VIOLATION = 1008;

/**
 * Closes a session whose admission was refused after it opened (a WebSocket-first handshake): the close frame
 * carries the reason (a raw WebSocket client reads it; socket.io-client reconnects with backoff, as after a
 * refused handshake). A CONNECT that came meanwhile got the refusal as its connect_error.
 */
function refuseOpen(conn: EngineSocket, err: Error & { code?: string; httpStatus?: number }) {
  const c = conn as { sbCloseReason?: string; readyState?: string };
  if (c.readyState === 'closed' || c.sbCloseReason !== undefined) return;
  c.sbCloseReason = err.code ?? 'refused';
  const code = err.httpStatus === 429 || err.httpStatus === 503 ? CLOSE_TRY_AGAIN_LATER : CLOSE_POLICY_VIOLATION;
  // A close reason is at most 123 bytes.
  const reason = Buffer.from(`${err.code ?? 'refused'}: ${err.message}`)
    .subarray(0, 123)
    .toString();
  const ws = conn.transport.socket;
  if (ws) ws.end(code, reason);
  else conn.close();
}

/**
 * Watches every WebSocket transport of its sessions (made from transportClass(), whose methods call it):
 * - a socket whose outbound buffer passes MAX_BACKPRESSURE_BYTES is closed with 4008 `slow_consumer`, checked
 *   on every transport send and on a short sweep (broadcasts go through uWS pub/sub and never reach the
 *   transport); uWS itself closes at 16x that (closeOnBackpressureLimit) rather than drop silently. The client
 *   reconnects and recovers with `since`; nobody else waits for it.
 * - a frame over the payload limit (uWS closes with 1009) is counted as `too_large`.
 * - the session's limit slots are released when the transport ends (a WebSocket session ends with it).
 */
export class TransportGuard {
  /** Open WebSocket transports and their sessions (a Map: no entry object per connection). */
  private readonly open = new Map<EngineTransport, EngineSocket>();
  /** The next sweep, armed only while there is something to look at: an idle node does not wake up for it. */
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly config: TransportGuardOptions,
    private readonly metrics: Metrics,
  ) {}

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm() {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(this.tick, this.config.slowConsumerCheckMs);
    this.timer.unref();
  }

  private readonly tick = () => {
    this.timer = undefined;
    this.sweep();
    if (this.due > 0) this.arm();
  };

  /** Full sweeps still due since the last uWS publish: two, as uWS may write a publish out after the next timer ran. */
  private due = 0;
  /** Transports sent to directly since the last sweep (a ping every PING_INTERVAL_MS each): checked alone. */
  private readonly sent = new Set<EngineTransport>();

  published() {
    this.due = 2;
    this.arm();
  }

  private sweep() {
    if (this.due > 0) {
      this.due--;
      // forEach: iterating the map's entries would allocate a [key, value] pair per connection on every sweep.
      this.open.forEach((conn, t) => this.tooSlow(conn, t));
    } else {
      for (const t of this.sent) {
        const conn = this.open.get(t);
        if (conn) this.tooSlow(conn, t);
      }
    }
    this.sent.clear();
  }

  private tooSlow(conn: EngineSocket, t: EngineTransport): boolean {
    const ws = t.socket;
    if (!ws || ws.getBufferedAmount() <= this.config.maxBackpressureBytes) return false;
    const c = conn as { sbCloseReason?: string };
    if (c.sbCloseReason === undefined) {
      c.sbCloseReason = 'slow_consumer';
      ws.end(CLOSE_SLOW_CONSUMER, 'slow_consumer');
    }
    return true;
  }

  watch(conn: EngineSocket, t: EngineTransport) {
    if (t.name === 'websocket') this.open.set(t, conn);
  }

  /** A subclass of engine.io's uWS WebSocket transport whose watched instances this guard checks. */
  transportClass(Base: TransportClass): TransportClass {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the methods' `this` is the transport
    const guard = this;
    return class GuardedWebSocket extends Base {
      override send(packets: unknown[]) {
        const conn = guard.open.get(this);
        if (conn && guard.tooSlow(conn, this)) {
          guard.metrics.dropped.inc({ reason: 'slow_consumer' }, packets.length);
          return;
        }
        super.send(packets);
        // This send may have taken the buffer past the limit and no later send may come: the next sweep looks at it.
        if (conn) {
          guard.sent.add(this);
          guard.arm();
        }
      }

      /**
       * One encoded Engine.IO text frame (the event lane's acks) straight to the WebSocket, as send() would write it
       * with the same slow-consumer check, minus the packet objects, emits and closures of Engine.IO's path. False
       * when it can't now (not open, mid-send, compression on): the caller sends it Engine.IO's way.
       */
      sendFrame(frame: string): boolean {
        const self = this as unknown as { writable: boolean; perMessageDeflate?: unknown };
        if (ACKS_TRACED || !self.writable || self.perMessageDeflate || !this.socket) return false;
        const conn = guard.open.get(this);
        if (conn && guard.tooSlow(conn, this)) guard.metrics.dropped.inc({ reason: 'slow_consumer' });
        else {
          (this.socket as unknown as { send(d: string, binary: boolean, compress: boolean): unknown }).send(frame, false, false);
          if (conn) {
            guard.sent.add(this);
            guard.arm();
          }
        }
        return true;
      }

      override onClose(code?: number, message?: ArrayBuffer) {
        const conn = guard.open.get(this);
        if (conn) {
          guard.open.delete(this);
          guard.sent.delete(this);
          const text = message && message.byteLength > 0 ? Buffer.from(message).toString() : '';
          // uWS reports an oversized frame as 1009, or as 1006 with "Received too big message".
          if (code === 1009 || /too big/i.test(text)) guard.metrics.rejections.inc({ reason: 'too_large' });
          releaseSlots(conn.request);
        }
        super.onClose(code, message);
      }

      // Closed from this side (engine.io closes the transport as the session ends): uWS reports it to onClose
      // as well, but only once the socket was open; the slots go now.
      override doClose(fn?: () => void) {
        const conn = guard.open.get(this);
        if (conn) releaseSlots(conn.request);
        super.doClose(fn);
      }
    };
  }
}

export type { Socket };
