// A short lane for client events: a plain-text EVENT packet of the main namespace goes from Engine.IO straight to
// the connection's one event listener, without Socket.IO's detours for features this server does not use.
//
// Why: for every event Socket.IO's Client decodes the packet through an emitter, defers it one tick, copies the
// socket's any-listener array, runs the (empty) middleware chain, defers it a second tick and emits it to no
// listener. Measured with `node dist/loadtest/harness/tools/instructions.js --op rpc`: 49.8k instructions per embedded
// rpc call without the lane, 43.1k with it, the same as plain Socket.IO's own path with no Switchboard code.
// What stays the same, on purpose:
// - the one deferral (process.nextTick, as Socket.IO's own), so events keep their order with every other packet;
// - the packet check of socket.io-parser 4 (type, id, JSON array payload, event name a string and not reserved);
// - the answer's bytes: an ack (LaneAck) is the text frame Socket.IO's encoder would make, `43<id>[answer]`, written
//   straight to the WebSocket by its transport (sendFrame) when the answer is plain JSON and nothing waits in the
//   session's buffer; otherwise (bytes, toJSON, polling, an upgrade, compression) Socket.IO's own ack function.
// Anything else — binary events and their attachments, other namespaces, a packet that would fail the check, a
// socket with middlewares or other listeners (the admin UI adds one) — takes Socket.IO's path untouched, which
// also keeps its error handling for bad packets.
import type { Socket } from 'socket.io';

type AnyListener = (this: Socket, event: string, ...args: unknown[]) => void;
type Handle = (socket: Socket, event: string, args: unknown[]) => void;

/** What the lane reads of Socket.IO 4.8's Client and Socket; install() checks the shapes before using them. */
interface ClientParts {
  ondata(data: unknown): void;
  decoder: { reconstructor?: unknown };
  nsps: Map<string, Socket>;
}
interface SocketParts {
  _anyListeners?: unknown[];
  fns?: unknown[];
  ack(id: number): (...args: unknown[]) => void;
}
/** What a LaneAck reads of the Engine.IO session. */
interface SessionParts {
  readyState: string;
  writeBuffer: unknown[];
  listenerCount(event: string): number;
  /** Set on a WebSocket transport that takes an encoded frame itself (TransportGuard's). */
  transport: { sendFrame?(frame: string): boolean };
}
interface EngineParts {
  listeners(event: string): unknown[];
  removeListener(event: string, fn: (...a: never[]) => void): void;
  on(event: string, fn: (this: EngineParts, data: unknown) => void): void;
  /** The lane of this Engine.IO session, set by installEventLane(). */
  [LANE]?: Lane;
}

/** socket.io-parser's RESERVED_EVENTS: a client event by one of these names is refused as an invalid payload. */
const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);
const LANE = Symbol('switchboard.eventLane');
/** Longest ack id read here; a longer one goes Socket.IO's way (where Number() decides what it is). */
const MAX_ID_DIGITS = 15;

interface Lane {
  client: ClientParts;
  /** Socket.IO's own `data` listener (the Client's bound ondata): everything the lane does not take goes here. */
  ondata(data: unknown): void;
  listener: AnyListener;
  handle: Handle;
}

/**
 * Sends this socket's session's text events of the main namespace to `handle` when `listener` is the socket's only
 * event listener, as Socket.IO would have called it. Once per Engine.IO session; a no-op on a Socket.IO version whose
 * internals differ from what the lane expects.
 */
export function installEventLane(socket: Socket, listener: AnyListener, handle: Handle): void {
  const conn = socket.conn as unknown as EngineParts;
  if (conn[LANE] || socket.nsp.name !== '/') return;
  const client = socket.client as unknown as Partial<ClientParts>;
  const s = socket as unknown as Partial<SocketParts>;
  if (
    typeof client.ondata !== 'function' ||
    !(client.nsps instanceof Map) ||
    typeof client.decoder !== 'object' ||
    !Array.isArray(s.fns) ||
    typeof s.ack !== 'function' ||
    !conn.listeners('data').includes(client.ondata)
  )
    return;
  conn[LANE] = { client: client as ClientParts, ondata: client.ondata, listener, handle };
  conn.removeListener('data', client.ondata);
  // In the Client's own property too: its destroy() removes `this.ondata` from the session, which is then the lane's.
  client.ondata = onData;
  conn.on('data', onData);
}

/** Engine.IO's `data` listener in Socket.IO's place (one shared function: `this` is the Engine.IO socket). */
function onData(this: EngineParts, data: unknown) {
  const lane = this[LANE]!;
  if (typeof data !== 'string' || !lane.client.decoder || lane.client.decoder.reconstructor || !take(lane, data)) lane.ondata(data);
}

/** True when `data` was taken (an event for the lane); false leaves it to Socket.IO. */
function take(lane: Lane, data: string): boolean {
  // '2': EVENT. A namespace ('/') after it is not the main one.
  if (data.charCodeAt(0) !== 50) return false;
  let i = 1;
  let id: number | undefined;
  let c = data.charCodeAt(1);
  if (c >= 48 && c <= 57) {
    id = 0;
    while (i < data.length && (c = data.charCodeAt(i)) >= 48 && c <= 57) {
      id = id * 10 + (c - 48);
      i++;
    }
    if (i - 1 > MAX_ID_DIGITS) return false;
  }
  // The payload starts right here ('[' of a JSON array); anything else (a namespace, nothing) is Socket.IO's.
  if (data.charCodeAt(i) !== 91) return false;
  const socket = lane.client.nsps.get('/');
  if (!socket) return false;
  const s = socket as unknown as SocketParts;
  const any = s._anyListeners;
  if (!any || any.length !== 1 || any[0] !== lane.listener || s.fns!.length !== 0) return false;
  let payload: unknown;
  try {
    payload = JSON.parse(i === 1 ? data.slice(1) : data.slice(i));
  } catch {
    return false;
  }
  if (!Array.isArray(payload) || typeof payload[0] !== 'string' || RESERVED.has(payload[0])) return false;
  if (socket.listenerCount(payload[0]) !== 0) return false;
  process.nextTick(deliver, lane, socket, payload, id);
  return true;
}

function deliver(lane: Lane, socket: Socket, payload: unknown[], id: number | undefined) {
  const event = payload.shift() as string;
  if (id !== undefined) payload.push(new LaneAck(socket, id));
  lane.handle(socket, event, payload);
}

/**
 * The ack of an event that came by the lane, in the last place of its arguments (where Socket.IO puts its ack
 * function; JSON text can't make one of these). Answers once, as Socket.IO's ack does.
 */
export class LaneAck {
  private sent = false;

  constructor(
    private readonly socket: Socket,
    private readonly id: number,
  ) {}

  /**
   * Sends `answer`. `plain`: the caller walked it (answerShape) and found plain JSON, so JSON.stringify makes the
   * frame Socket.IO's encoder would; then it goes straight to the transport when the session is open with nothing
   * buffered before it (ordering) and nobody listens for Engine.IO's packets, else, and for anything else, through
   * Socket.IO's own ack.
   */
  send(answer: unknown, plain: boolean) {
    if (this.sent) return;
    this.sent = true;
    const conn = this.socket.conn as unknown as SessionParts;
    // '4' an Engine.IO message, '3' a Socket.IO ACK of the main namespace, then its id and [answer].
    if (
      plain &&
      conn.readyState === 'open' &&
      conn.writeBuffer.length === 0 &&
      // Someone counts the packets Engine.IO makes (the admin UI's server stats): they go Engine.IO's way.
      conn.listenerCount('packetCreate') === 0 &&
      conn.transport.sendFrame?.(`43${this.id}${JSON.stringify([answer])}`)
    )
      return;
    (this.socket as unknown as SocketParts).ack(this.id)(answer);
  }
}
