// A lean Socket.IO v4 client over raw `ws` (WebSocket transport only) for the harness workers: one process holds
// thousands of these, so it skips everything socket.io-client adds (reconnection, buffering, polling) and binds
// each socket to a chosen source address (127.0.0.x) to spread the ephemeral ports.
import WebSocket from 'ws';
import { DISCONNECT, PONG, decode, encodeConnect, encodeEvent } from '../k6/lib/protocol.js';
import { nowUs } from './clock.js';

export interface Pending {
  resolve: (args: unknown[]) => void;
  reject: (err: Error) => void;
  deadline: number;
}

export type EventHandler = (client: SioClient, name: string, args: unknown[]) => void;

export class SioClient {
  private ws: WebSocket | undefined;
  private pending = new Map<number, Pending>();
  private nextAck = 0;
  /** True between the namespace connect ack and the socket's close. */
  connected = false;
  /** True once close() was called: a later close event is not a surprise. */
  closing = false;

  constructor(
    readonly url: string,
    readonly localAddress: string,
    private readonly onEvent: EventHandler,
    private readonly onLost: (client: SioClient, reason: string) => void,
  ) {}

  /** Opens the socket and connects to namespace "/". Resolves with the handshake time in µs. */
  connect(timeoutMs = 15_000, auth?: Record<string, unknown>): Promise<number> {
    const t0 = nowUs();
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          this.closing = true;
          this.ws?.terminate();
          reject(err);
        } else resolve(nowUs() - t0);
      };
      const timer = setTimeout(() => settle(new Error(`handshake timed out after ${timeoutMs} ms`)), timeoutMs);
      const ws = new WebSocket(this.url, {
        localAddress: this.localAddress,
        perMessageDeflate: false,
        skipUTF8Validation: true,
        handshakeTimeout: timeoutMs,
      });
      this.ws = ws;
      ws.on('error', (err) => settle(err));
      ws.on('close', (code, reason) => {
        const wasConnected = this.connected;
        this.connected = false;
        this.failPending(new Error('socket closed'));
        settle(new Error(`closed during handshake (${code} ${reason.toString()})`));
        if (wasConnected && !this.closing) this.onLost(this, `close ${code}`);
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) return;
        const frame = data.toString();
        // Hot path first: publications.
        if (frame.charCodeAt(0) === 52 && frame.charCodeAt(1) === 50) {
          const p = decode(frame);
          if (p.kind === 'event') this.onEvent(this, p.name, p.args);
          return;
        }
        const p = decode(frame);
        switch (p.kind) {
          case 'ping':
            ws.send(PONG);
            break;
          case 'open':
            ws.send(encodeConnect(auth));
            break;
          case 'connect':
            this.connected = true;
            settle();
            break;
          case 'connect_error':
            settle(new Error(`connect_error ${JSON.stringify(p.data)}`));
            break;
          case 'ack': {
            const w = this.pending.get(p.ackId);
            if (w) {
              this.pending.delete(p.ackId);
              w.resolve(p.args);
            }
            break;
          }
          case 'disconnect':
          case 'close':
            ws.terminate();
            break;
          default:
            break;
        }
      });
    });
  }

  /** Emits `name(...args, ack)` and resolves with the ack's first argument; rejects on timeout or close. */
  call(name: string, args: readonly unknown[], timeoutMs = 10_000): Promise<unknown> {
    const ws = this.ws;
    if (!ws || !this.connected) return Promise.reject(new Error('not connected'));
    const id = this.nextAck++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve: (a) => resolve(a[0]), reject, deadline: Date.now() + timeoutMs });
      ws.send(encodeEvent(name, args, id));
    });
  }

  /** Bytes queued in the socket, for backpressure decisions. */
  get buffered(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** Rejects calls whose deadline passed (one sweep instead of a timer per call). */
  sweep(now = Date.now()): void {
    for (const [id, w] of this.pending) {
      if (w.deadline <= now) {
        this.pending.delete(id);
        w.reject(new Error('ack timed out'));
      }
    }
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private failPending(err: Error): void {
    for (const w of this.pending.values()) w.reject(err);
    this.pending.clear();
  }

  /** Leaves politely (`41`, then close) unless `abrupt`, which drops the TCP connection. */
  close(abrupt = false): void {
    this.closing = true;
    const ws = this.ws;
    if (!ws) return;
    if (abrupt || ws.readyState !== WebSocket.OPEN) {
      ws.terminate();
      return;
    }
    try {
      ws.send(DISCONNECT);
    } catch {
      // already going
    }
    ws.close(1000);
    // A peer that never answers the close handshake must not keep the socket forever.
    setTimeout(() => ws.terminate(), 2000).unref();
  }
}
