// Engine.IO v4 / Socket.IO v5 text framing for namespace "/", shared by the k6 scripts and the Node harness (no imports).
//
// Engine.IO packet = one digit type + payload: 0 open {sid,pingInterval,…}, 1 close, 2 ping, 3 pong, 4 message, 6 noop.
// A Socket.IO packet rides in an Engine.IO message ("4"): 0 connect, 1 disconnect, 2 event, 3 ack, 4 connect_error,
// then an optional namespace ("/nsp,"), an optional ack id (digits), then JSON.
// So "40" connects, "42[\"ev\",…]" emits, "421[…]" emits asking for ack 1, "431[…]" answers ack 1.

export type Packet =
  | { kind: 'open'; sid: string; pingInterval: number; pingTimeout: number; maxPayload: number }
  | { kind: 'close' }
  | { kind: 'ping' }
  | { kind: 'pong' }
  | { kind: 'noop' }
  | { kind: 'connect'; sid: string }
  | { kind: 'connect_error'; data: unknown }
  | { kind: 'disconnect' }
  | { kind: 'event'; name: string; args: unknown[]; ackId: number | undefined }
  | { kind: 'ack'; ackId: number; args: unknown[] }
  | { kind: 'unknown'; frame: string };

/** Frames the client sends verbatim. */
export const PONG = '3';
export const PING = '2';
export const DISCONNECT = '41';

/** The WebSocket URL of the Engine.IO endpoint under a base like `wss://host:8443` or `http://127.0.0.1:3001`. */
export function engineUrl(base: string, path = '/socket.io/'): string {
  const b = base.replace(/^http/, 'ws').replace(/\/+$/, '');
  return `${b}${path}?EIO=4&transport=websocket`;
}

/** `40` or `40{auth}`: connect to namespace "/" (auth: e.g. `{ token }`). */
export function encodeConnect(auth?: Record<string, unknown>): string {
  return auth && Object.keys(auth).length > 0 ? `40${JSON.stringify(auth)}` : '40';
}

/** `42[name,…args]`, or `42<ackId>[…]` when an ack is wanted. */
export function encodeEvent(name: string, args: readonly unknown[], ackId?: number): string {
  return `42${ackId === undefined ? '' : ackId}${JSON.stringify([name, ...args])}`;
}

/** `43<ackId>[…args]`: the answer to a server's event that asked for an ack. */
export function encodeAck(ackId: number, args: readonly unknown[]): string {
  return `43${ackId}${JSON.stringify(args)}`;
}

function parseJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/** Decodes one text frame. Never throws: anything it does not understand is `unknown`. */
export function decode(frame: string): Packet {
  const t = frame.charCodeAt(0);
  if (t === 52 /* '4' message */) return decodeSocketIo(frame);
  switch (frame[0]) {
    case '2':
      return { kind: 'ping' };
    case '3':
      return { kind: 'pong' };
    case '1':
      return { kind: 'close' };
    case '6':
      return { kind: 'noop' };
    case '0': {
      const o = parseJson(frame.slice(1)) as Record<string, unknown> | undefined;
      if (!o || typeof o.sid !== 'string') return { kind: 'unknown', frame };
      return {
        kind: 'open',
        sid: o.sid,
        pingInterval: Number(o.pingInterval ?? 25000),
        pingTimeout: Number(o.pingTimeout ?? 20000),
        maxPayload: Number(o.maxPayload ?? 1e6),
      };
    }
    default:
      return { kind: 'unknown', frame };
  }
}

function decodeSocketIo(frame: string): Packet {
  const type = frame[1];
  let i = 2;
  // A namespace other than "/" would come as "/nsp,"; this client only talks to "/", but tolerate "/,".
  if (frame[i] === '/') {
    const comma = frame.indexOf(',', i);
    if (comma < 0) return type === '1' ? { kind: 'disconnect' } : { kind: 'unknown', frame };
    i = comma + 1;
  }
  let ackId: number | undefined;
  let c = frame.charCodeAt(i);
  if (c >= 48 && c <= 57) {
    let n = 0;
    while (c >= 48 && c <= 57) {
      n = n * 10 + (c - 48);
      c = frame.charCodeAt(++i);
    }
    ackId = n;
  }
  const body = i < frame.length ? parseJson(frame.slice(i)) : undefined;
  switch (type) {
    case '0': {
      const sid = (body as { sid?: unknown } | undefined)?.sid;
      return { kind: 'connect', sid: typeof sid === 'string' ? sid : '' };
    }
    case '1':
      return { kind: 'disconnect' };
    case '4':
      return { kind: 'connect_error', data: body };
    case '2': {
      if (!Array.isArray(body) || typeof body[0] !== 'string') return { kind: 'unknown', frame };
      return { kind: 'event', name: body[0], args: body.slice(1), ackId };
    }
    case '3': {
      if (ackId === undefined || !Array.isArray(body)) return { kind: 'unknown', frame };
      return { kind: 'ack', ackId, args: body };
    }
    default:
      return { kind: 'unknown', frame };
  }
}

/** What every publication's data carries so receivers can measure latency and loss. */
export interface BenchData {
  /** Publisher stream id: sequence numbers count up per (stream, channel). */
  p: string;
  /** Sequence number within (p, channel), from 1. */
  s: number;
  /** Send time: ms since the epoch (k6), or µs on the shared monotonic clock (harness). */
  t: number;
  /** Padding to the scenario's payload size. */
  pad?: string;
}

/** Publication meta as the contract defines it: the second argument of every delivered event. */
export interface PublicationMeta {
  channel: string;
  id: string;
  ts: number;
}

export function isMeta(v: unknown): v is PublicationMeta {
  const m = v as PublicationMeta | undefined;
  return typeof m === 'object' && m !== null && typeof m.channel === 'string' && typeof m.id === 'string' && typeof m.ts === 'number';
}

export function isBenchData(v: unknown): v is BenchData {
  const d = v as BenchData | undefined;
  return typeof d === 'object' && d !== null && typeof d.p === 'string' && typeof d.s === 'number' && typeof d.t === 'number';
}

/**
 * Sequence bookkeeping for one receiver: per (channel, publisher) the highest sequence number seen.
 * A jump forward counts the skipped numbers as lost (and one gap); a late arrival below the highest
 * gives one back (it was counted lost when skipped). `reset` forgets a channel, e.g. after a
 * resubscribe that did not recover. A `strict` tracker expects every stream to start at 1 (the receiver
 * subscribed before publishing began), except on channels it was told to reset.
 */
export class SeqTracker {
  private last = new Map<string, number>();
  private lenient = new Set<string>();
  lost = 0;
  gaps = 0;
  late = 0;

  constructor(private readonly strict = false) {}

  /** Returns how many sequence numbers this arrival showed missing (0 when in order). */
  see(channel: string, publisher: string, seq: number): number {
    const key = `${channel}\u0000${publisher}`;
    let prev = this.last.get(key);
    if (prev === undefined) {
      if (!this.strict || this.lenient.has(channel)) {
        this.last.set(key, seq);
        return 0;
      }
      prev = 0;
    }
    if (seq === prev + 1) {
      this.last.set(key, seq);
      return 0;
    }
    if (seq > prev + 1) {
      const missing = seq - prev - 1;
      this.lost += missing;
      this.gaps += 1;
      this.last.set(key, seq);
      return missing;
    }
    this.late += 1;
    if (this.lost > 0) this.lost -= 1;
    return 0;
  }

  /** Highest sequence number seen per publisher on `channel`. */
  highest(channel: string): Map<string, number> {
    const out = new Map<string, number>();
    const prefix = `${channel}\u0000`;
    for (const [k, v] of this.last) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
    return out;
  }

  reset(channel: string): void {
    const prefix = `${channel}\u0000`;
    for (const k of [...this.last.keys()]) if (k.startsWith(prefix)) this.last.delete(k);
    if (this.strict) this.lenient.add(channel);
  }
}

/** `x` repeated to `bytes` (payload padding), cached per size. */
const pads = new Map<number, string>();
export function pad(bytes: number): string {
  let p = pads.get(bytes);
  if (p === undefined) {
    p = 'x'.repeat(bytes);
    pads.set(bytes, p);
  }
  return p;
}
