// Socket.IO v4 on the uWS app: engine options from config, Origin checks on every request (handshakes,
// polling requests with a session id, upgrades), per-connection guards (frame size, slow consumers).
import { Server, type Socket } from 'socket.io';
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import type { Config } from '../config/schema.js';
import type { Bus } from '../bus/bus.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Logger } from '../log/logger.js';

export interface EngineGuards {
  /** True when the request's Origin may connect (no Origin header: not a browser, allowed). */
  originAllowed(origin: string | undefined): boolean;
}

/** Engine.IO error codes (engine.io Server.errors) → our metric reasons. */
const ENGINE_ERRORS: Record<number, string> = { 0: 'unknown_transport', 1: 'unknown_sid', 2: 'bad_handshake_method', 3: 'bad_request', 4: 'forbidden', 5: 'unsupported_protocol' };
const FORBIDDEN = 4;

export function createSocketServer(config: Config, app: TemplatedApp, bus: Bus, guards: EngineGuards, metrics: Metrics, log: Logger): Server {
  const io = new Server({
    adapter: bus.adapter(),
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    maxHttpBufferSize: config.maxPayloadBytes,
    perMessageDeflate: config.perMessageDeflate,
    httpCompression: false,
    connectTimeout: 10_000,
    serveClient: true,
    cleanupEmptyChildNamespaces: true,
  });
  // Socket.IO broadcasts to WebSocket clients through uWS's own pub/sub (app.publish), which never calls the
  // transport: past maxBackpressure uWS would drop silently. closeOnBackpressureLimit makes it close instead.
  const ws = app.ws.bind(app);
  (app as { ws: unknown }).ws = (pattern: string, behavior: Record<string, unknown>) => ws(pattern, { ...behavior, closeOnBackpressureLimit: true } as never);
  io.attachApp(app, {
    // uWS-level WebSocket options (engine.io passes them to app.ws()).
    idleTimeout: config.idleTimeoutSeconds,
    maxBackpressure: config.maxBackpressureBytes,
    compression: config.perMessageDeflate ? 1 : 0,
  } as Record<string, unknown>);

  // engine.io calls verify() for every HTTP request and upgrade, with or without a session id; allowRequest
  // only sees handshakes. Checking Origin here covers polling requests and upgrades that carry a sid.
  const engine = io.engine as unknown as { verify(req: { headers: Record<string, string> }, upgrade: boolean, fn: (code?: number, ctx?: unknown) => void): void };
  const verify = engine.verify.bind(engine);
  engine.verify = (req, upgrade, fn) => {
    if (!guards.originAllowed(req.headers.origin)) {
      metrics.rejections.inc({ reason: 'origin' });
      return fn(FORBIDDEN, { message: 'origin not allowed' });
    }
    verify(req, upgrade, fn);
  };
  io.engine.on('connection_error', (err: { code: number; message: string }) => {
    metrics.rejections.inc({ reason: ENGINE_ERRORS[err.code] ?? 'engine_error' });
    log.debug({ code: err.code, message: err.message }, 'engine connection error');
  });
  io.engine.on('connection', (conn: EngineSocket) => {
    guardTransport(conn, conn.transport, config, metrics);
    conn.on('upgrade', (t: EngineTransport) => guardTransport(conn, t, config, metrics));
  });
  return io;
}

interface EngineTransport {
  name: string;
  socket?: { getBufferedAmount(): number; end(code: number, reason: string): void };
  send(packets: unknown[]): void;
  onClose(code?: number, message?: ArrayBuffer): void;
}
interface EngineSocket {
  transport: EngineTransport;
  on(ev: string, fn: (...a: never[]) => void): void;
  close(): void;
}

export const CLOSE_SLOW_CONSUMER = 4008;

/**
 * Wraps one transport instance (not the prototype):
 * - a WebSocket whose outbound buffer is past MAX_BACKPRESSURE_BYTES is closed with `slow_consumer` instead of
 *   letting uWS drop reliable messages silently; the client reconnects and recovers with `since`;
 * - a frame over the payload limit (uWS closes with 1009) is counted as `too_large`.
 */
function guardTransport(conn: EngineSocket, t: EngineTransport, config: Config, metrics: Metrics) {
  if (t.name !== 'websocket') return;
  const send = t.send.bind(t);
  let closed = false;
  t.send = (packets) => {
    if (closed) return;
    const ws = t.socket;
    if (ws && ws.getBufferedAmount() > config.maxBackpressureBytes) {
      closed = true;
      (conn as { sbCloseReason?: string }).sbCloseReason = 'slow_consumer';
      metrics.dropped.inc({ reason: 'slow_consumer' }, packets.length);
      ws.end(CLOSE_SLOW_CONSUMER, 'slow_consumer');
      return;
    }
    send(packets);
  };
  const onClose = t.onClose.bind(t);
  t.onClose = (code, message) => {
    // uWS reports an oversized frame as 1009, or as 1006 with "Received too big message".
    if (code === 1009 || (message && message.byteLength > 0 && /too big/i.test(Buffer.from(message).toString()))) metrics.rejections.inc({ reason: 'too_large' });
    onClose(code, message);
  };
}

export type { Socket };
