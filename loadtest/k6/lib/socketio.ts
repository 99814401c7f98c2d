// A small Socket.IO v4 client for k6 over `k6/websockets` (WebSocket transport only, namespace "/"): Engine.IO open
// `0{…}`, namespace connect `40`, server pings `2` answered `3`, events `42[…]`, calls with acks `42<id>[…]` → `43<id>[…]`.
// One VU can hold many of these; k6 keeps the iteration alive while any is open.
import { WebSocket } from 'k6/websockets';
import { clearTimeout, setTimeout } from 'k6/timers';
import { PONG, DISCONNECT, decode, encodeConnect, encodeEvent, engineUrl } from './protocol.ts';

export interface SocketIOOptions {
  /** Base URL, e.g. `wss://host:8443`. */
  url: string;
  auth?: Record<string, unknown>;
  headers?: Record<string, string>;
  tags?: Record<string, string>;
  /** Give up on a handshake after this long (default 10 s). */
  connectTimeoutMs?: number;
  /** Connected to the namespace; `handshakeMs` from WebSocket creation to the `40` answer. */
  onConnect?: (sid: string, handshakeMs: number) => void;
  /** A server event (publications arrive as `name(data, meta)`). */
  onEvent?: (name: string, args: unknown[]) => void;
  /** The handshake failed (refused, timed out, connect_error). */
  onConnectError?: (reason: string) => void;
  /** The socket closed after it had connected. */
  onClose?: (reason: string) => void;
}

export type AckCallback = (err: string | null, res?: unknown) => void;

export class SocketIO {
  readonly ws: WebSocket;
  connected = false;
  sid = '';
  private readonly t0 = Date.now();
  private pending = new Map<number, { cb: AckCallback; timer: number }>();
  private nextId = 0;
  private connectTimer: number;
  private failed = false;
  private closedByUs = false;

  constructor(private readonly o: SocketIOOptions) {
    this.ws = new WebSocket(engineUrl(o.url), null, { headers: o.headers, tags: o.tags });
    this.connectTimer = setTimeout(() => this.fail('handshake timed out'), o.connectTimeoutMs ?? 10_000);
    this.ws.onmessage = (e) => {
      if (e && typeof e.data === 'string') this.onFrame(e.data);
    };
    this.ws.onerror = (e) => {
      if (!this.connected) this.fail(e?.error ?? 'websocket error');
    };
    this.ws.onclose = () => {
      clearTimeout(this.connectTimer);
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.cb('socket closed');
      }
      this.pending.clear();
      if (this.connected) {
        this.connected = false;
        if (!this.closedByUs) this.o.onClose?.('transport close');
      } else this.fail('closed before connecting');
    };
  }

  private fail(reason: string): void {
    if (this.failed || this.connected) return;
    this.failed = true;
    clearTimeout(this.connectTimer);
    this.o.onConnectError?.(reason);
    this.closedByUs = true;
    this.ws.close();
  }

  private onFrame(frame: string): void {
    const p = decode(frame);
    switch (p.kind) {
      case 'event':
        this.o.onEvent?.(p.name, p.args);
        return;
      case 'ping':
        this.ws.send(PONG);
        return;
      case 'open':
        this.ws.send(encodeConnect(this.o.auth));
        return;
      case 'connect':
        clearTimeout(this.connectTimer);
        this.connected = true;
        this.sid = p.sid;
        this.o.onConnect?.(p.sid, Date.now() - this.t0);
        return;
      case 'connect_error':
        this.fail(`connect_error ${JSON.stringify(p.data)}`);
        return;
      case 'ack': {
        const w = this.pending.get(p.ackId);
        if (!w) return;
        this.pending.delete(p.ackId);
        clearTimeout(w.timer);
        w.cb(null, p.args[0]);
        return;
      }
      case 'disconnect':
      case 'close':
        this.ws.close();
        return;
      default:
        return;
    }
  }

  /** Fire-and-forget event. */
  emit(name: string, ...args: unknown[]): void {
    if (this.connected) this.ws.send(encodeEvent(name, args));
  }

  /** `name(...args, ack)`: `cb(null, ackArg)` or `cb(reason)` on timeout, close, or not connected. */
  call(name: string, args: readonly unknown[], cb: AckCallback, timeoutMs = 10_000): void {
    if (!this.connected) return cb('not connected');
    const id = this.nextId++;
    const timer = setTimeout(() => {
      if (this.pending.delete(id)) cb('ack timed out');
    }, timeoutMs);
    this.pending.set(id, { cb, timer });
    this.ws.send(encodeEvent(name, args, id));
  }

  /** Leaves the namespace and closes the WebSocket. */
  close(): void {
    this.closedByUs = true;
    clearTimeout(this.connectTimer);
    if (this.connected) this.ws.send(DISCONNECT);
    this.ws.close();
  }
}

/** Runs `fn` after `ms` (a k6 timer; keeps the VU's iteration alive). */
export function after(ms: number, fn: () => void): number {
  return setTimeout(fn, Math.max(0, ms));
}
