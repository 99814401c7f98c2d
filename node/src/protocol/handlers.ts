// The client protocol: one dispatcher for every Socket.IO event, each answered through its ack with
// `{ ok: true, … }` or `{ ok: false, error: { code, message } }`. Nothing a client sends can throw out of here.
import type { Socket } from 'socket.io';
import { z } from 'zod';
import type { Authorizer } from '../channels/authorize.js';
import { appFailure } from '../channels/authorize.js';
import type { Delivery } from '../channels/delivery.js';
import { sendPublication } from './publication.js';
import { parseId } from '../core/ids.js';
import { assertChannel } from '../channels/names.js';
import { presenceOf } from '../channels/presence.js';
import type { Publisher } from '../channels/publisher.js';
import type { ChannelRules } from '../channels/rules.js';
import type { Backend } from '../hooks/backend.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ClientContext, SwitchboardApp } from '../core/app.js';
import { SbError, errorAck } from '../core/errors.js';
import { formatIssues } from '../core/issues.js';
import { answerShape, Shape } from '../core/codec.js';
import { LaneAck } from './event-lane.js';

export interface SocketState {
  ctx: ClientContext;
}

export interface ProtocolOptions {
  /** Channels one connection may subscribe to (MAX_SUBSCRIPTIONS). @default 100 */
  maxSubscriptions: number;
  /** RPC calls one connection may have in flight (RPC_INFLIGHT_PER_CONNECTION); more answer `rate_limited`. @default 8 */
  maxRpcInFlight: number;
}

export interface ProtocolDeps {
  options: ProtocolOptions;
  delivery: Delivery;
  publisher: Publisher;
  rules: ChannelRules;
  authorizer: Authorizer;
  app: SwitchboardApp;
  backend: Backend | undefined;
  metrics: Metrics;
  log: Logger;
  /** Counts and limits client events, before anything else is done with them (synchronously); throws `rate_limited`. */
  checkRate(socket: Socket): void;
  /** Limits client publications from connections without a user, per address; throws `rate_limited`. */
  /** Throws when this address publishes too often without a user. */
  checkAnonymousPublish?(ip: string): void;
  /** This instance's handlers (HANDLERS plus what the connection layer adds, e.g. `auth:refresh`). @default HANDLERS */
  handlers?: Readonly<Record<string, Handler>>;
}

/** What a handler answers (dispatch adds `ok: true` unless it is there), at once or when its promise settles. */
export type Answer = Record<string, unknown>;
export type Handler = (socket: Socket, args: unknown[], d: ProtocolDeps) => Answer | Promise<Answer>;

/** A rate_limited error the client has already been told about in this window (not reported again). */
export class RepeatedRateLimit extends SbError {
  constructor(message: string) {
    super('rate_limited', message);
  }
}

const subscribeOpts = z
  .object({
    since: z
      .string()
      .refine((s) => parseId(s) !== undefined, 'since must be a publication id such as "1700000000000-0"')
      .optional(),
  })
  .strict();
/** Deepest answer sent to a client (an RPC result is the usual carrier); deeper ones are `internal`. */
const MAX_ANSWER_DEPTH = 100;

/**
 * An RPC method name: 1-100 characters of A-Z a-z 0-9 _ . : - and not only dots (a method that is only dots would
 * become a dot segment of `/rpc/{method}` and name another webhook). Character codes rather than a regular
 * expression: it runs for every call.
 */
export function isRpcMethod(m: string): boolean {
  const n = m.length;
  if (n < 1 || n > 100) return false;
  let dotsOnly = true;
  for (let i = 0; i < n; i++) {
    const c = m.charCodeAt(i);
    if (c === 46) continue; // .
    dotsOnly = false;
    // 0-9 and : (48-58), A-Z, a-z, _, -
    if (!((c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45)) return false;
  }
  return !dotsOnly;
}

/**
 * Channels a socket is subscribing to right now. Only while a subscribe is in flight: an idle connection keeps no
 * map (it was one Map per connection for good), and a WeakMap entry goes with the socket.
 */
const SUBSCRIBING = new WeakMap<Socket, Map<string, number>>();
function subscribing(socket: Socket): Map<string, number> {
  let m = SUBSCRIBING.get(socket);
  if (!m) SUBSCRIBING.set(socket, (m = new Map()));
  return m;
}

/** RPC calls a socket has in flight (on the socket itself, like SUBSCRIBING). */
const RPC_IN_FLIGHT = Symbol('switchboard.rpcInFlight');

export function ctxOf(socket: Socket): ClientContext {
  return (socket.data as SocketState).ctx;
}

/** Channels a socket is subscribed to (its rooms, less its own id). */
export function subscriptionsOf(socket: Socket): number {
  return socket.rooms.size - 1;
}

async function join(socket: Socket, channel: string, since: string | undefined, d: ProtocolDeps) {
  const r = await d.delivery.joinWithHistory(
    channel,
    since,
    (p) => sendPublication(socket, p),
    () => {
      // The client may have left, or joined the same channel from a concurrent subscribe, while history was
      // read; Socket.IO's join() checks neither, and a dead socket id would stay in the room for good.
      if (socket.connected) socket.join(channel);
    },
    () => socket.connected,
  );
  return { recovered: r.recovered, replayed: r.replayed };
}

type InFlight = { [RPC_IN_FLIGHT]?: number };

function rpcDone(s: InFlight) {
  s[RPC_IN_FLIGHT] = (s[RPC_IN_FLIGHT] ?? 1) - 1;
}

/**
 * An in-process RPC method's answer: at once when the method returns a value, else when its promise settles (the
 * call counts as in flight until then). No async function between the client's event and the method: each await
 * was a promise, a microtask and a resumption per call.
 */
function callAppRpc(
  d: ProtocolDeps,
  method: string,
  fn: NonNullable<SwitchboardApp['rpc']>[string],
  params: unknown,
  ctx: ClientContext,
  s: InFlight,
): Answer | Promise<Answer> {
  let v: unknown;
  try {
    v = fn(params, ctx);
  } catch (err) {
    throw appFailure(d.metrics, d.log, `rpc:${method}`, err);
  }
  return isThenable(v) ? whenSettled(s, v, d, method) : { ok: true, result: v ?? null };
}

/**
 * `{ ok: true, result }` once an RPC call's promise settles; the call counts as in flight until then. A rejection of
 * in-process code (`method` given) is the app's failure; the backend's errors are already what the client gets.
 */
function whenSettled(s: InFlight, p: PromiseLike<unknown>, d: ProtocolDeps, method?: string): Promise<Answer> {
  s[RPC_IN_FLIGHT] = (s[RPC_IN_FLIGHT] ?? 0) + 1;
  return Promise.resolve(p).then(
    (result) => {
      rpcDone(s);
      return { ok: true, result: result ?? null };
    },
    (err: unknown) => {
      rpcDone(s);
      throw method === undefined ? err : appFailure(d.metrics, d.log, `rpc:${method}`, err);
    },
  );
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

/** The protocol's events. Frozen: an instance adds its own in ProtocolDeps.handlers, never here. */
export const HANDLERS: Readonly<Record<string, Handler>> = Object.freeze({
  async subscribe(socket, args, d) {
    const channel = assertChannel(args[0]);
    const parsed = subscribeOpts.safeParse(args.length > 1 ? (args[1] ?? {}) : {});
    if (!parsed.success) throw new SbError('bad_request', `subscribe options: ${formatIssues(parsed.error)}`);
    const already = socket.rooms.has(channel);
    const since = parsed.data.since;
    // Already subscribed: everything after `since` has reached this socket live (in order, gaps filled by
    // the node's catch-up) or will. Replaying would only repeat it, so say whether history still holds it.
    if (already) return { recovered: since !== undefined && (await d.delivery.inHistory(channel, since)), replayed: 0 };
    // Subscriptions still authorizing or reading history count against the cap too, or concurrent calls
    // would all pass the check before any of them joins.
    const inFlight = subscribing(socket);
    let reserved = 0;
    for (const c of inFlight.keys()) if (c !== channel && !socket.rooms.has(c)) reserved++;
    if (subscriptionsOf(socket) + reserved >= d.options.maxSubscriptions) {
      d.metrics.rejections.inc({ reason: 'max_subscriptions' });
      throw new SbError('rate_limited', `at most ${d.options.maxSubscriptions} subscriptions per connection`);
    }
    inFlight.set(channel, (inFlight.get(channel) ?? 0) + 1);
    try {
      await d.authorizer.subscribe(ctxOf(socket), channel);
      return await join(socket, channel, since, d);
    } finally {
      const n = (inFlight.get(channel) ?? 1) - 1;
      if (n > 0) inFlight.set(channel, n);
      else if (inFlight.delete(channel) && inFlight.size === 0) SUBSCRIBING.delete(socket);
    }
  },

  async unsubscribe(socket, args, d) {
    const channel = assertChannel(args[0]);
    socket.leave(channel);
    return {};
  },

  publish(socket, args, d) {
    const p = d.publisher.validate(args[0], args[1], args[2]);
    const ctx = ctxOf(socket);
    if (ctx.user === undefined) d.checkAnonymousPublish?.(ctx.ip);
    // validate()'s encoding goes along: what was size-checked is what is published, and the bus encodes nothing again.
    const publish = () => d.publisher.publish(p.channel, p.event, p.data, 'client', undefined, false, p.json);
    // Decided at once by the channel's rule or the token's claims (no promise); asked of the app or backend otherwise.
    const allowed = d.authorizer.publish(ctx, p.channel, p.event, p.data);
    return allowed ? allowed.then(publish) : publish();
  },

  rpc(socket, args, d) {
    const method = args[0];
    if (typeof method !== 'string' || !isRpcMethod(method))
      throw new SbError('bad_request', 'method must be 1-100 characters of A-Z a-z 0-9 _ . : -, and not only dots');
    const params = args[1] ?? null;
    // One connection's slow calls must not take the node's whole /rpc budget: its own calls wait on it, no one else's.
    const s = socket as unknown as InFlight;
    if ((s[RPC_IN_FLIGHT] ?? 0) >= d.options.maxRpcInFlight) {
      d.metrics.rejections.inc({ reason: 'rpc_in_flight' });
      throw new SbError('rate_limited', `at most ${d.options.maxRpcInFlight} RPC calls in flight per connection`);
    }
    // Answered with `ok` in place: dispatch acks the object as it is.
    const fn = d.app.rpc && Object.hasOwn(d.app.rpc, method) ? d.app.rpc[method] : undefined;
    if (fn) return callAppRpc(d, method, fn, params, ctxOf(socket), s);
    if (!d.backend) throw new SbError('not_found', `no RPC method "${method}"`);
    return whenSettled(s, d.backend.rpc(ctxOf(socket), method, params), d);
  },

  async presence(socket, args, d) {
    const channel = assertChannel(args[0]);
    const rule = d.rules.for(channel);
    if (!rule.presence) throw new SbError('forbidden', `presence is not tracked on ${channel}`);
    if (!socket.rooms.has(channel)) await d.authorizer.subscribe(ctxOf(socket), channel);
    return presenceOf(socket.nsp.server, channel);
  },
});

/**
 * Dispatches one client event: the rate check comes first, for every event, with an ack or without. An event without
 * an ack still does its work (`emit('subscribe', ch)`); its failure comes back as `switchboard:error { event, error }`.
 * Every outcome is counted; nothing a client sends throws out of here. The handler runs in the same tick as the event,
 * and an answer given at once is acked in it: no promise, no closure. A handler's promise gets one reaction.
 */
export function dispatch(socket: Socket, event: string, args: unknown[], d: ProtocolDeps) {
  const last = args[args.length - 1];
  const ack = typeof last === 'function' || last instanceof LaneAck ? (args.pop() as Ack) : undefined;
  const handlers = d.handlers ?? HANDLERS;
  const handler = Object.hasOwn(handlers, event) ? handlers[event] : undefined;
  const label = handler ? event : 'unknown';
  // Without an ack nobody awaits the answer; counted apart so a client that never asks for one shows in metrics.
  if (!ack) d.metrics.eventCells.cell(label, 'no_ack').n++;
  let r: Answer | Promise<Answer>;
  try {
    d.checkRate(socket);
    if (!handler) throw new SbError('not_found', `unknown event "${String(event).slice(0, 100)}"`);
    r = handler(socket, args, d);
  } catch (err) {
    return failEvent(socket, event, label, ack, err, d);
  }
  // A handler that answers at once is acked in this tick; a promise, when it settles.
  if (r instanceof Promise)
    r.then(
      (v) => settle(socket, event, label, v, ack, d),
      (err: unknown) => failEvent(socket, event, label, ack, err, d),
    );
  else settle(socket, event, label, r, ack, d);
}

/** Socket.IO's ack function, or the event lane's ack (which can write a plain answer itself). */
type Ack = ((r: unknown) => void) | LaneAck;

function answer(ack: Ack, r: unknown, plain: boolean) {
  if (ack instanceof LaneAck) ack.send(r, plain);
  else ack(r);
}

/** Acks a handler's answer. Never throws: it runs from Socket.IO's event emitter and from promise callbacks. */
function settle(socket: Socket, event: string, label: string, r: Answer, ack: Ack | undefined, d: ProtocolDeps) {
  try {
    // Checked before the ack: socket.io's ack fires once, and its encoder would throw on the answer after that.
    const shape = answerShape(r, MAX_ANSWER_DEPTH);
    if (shape === Shape.TooDeep)
      return failEvent(
        socket,
        event,
        label,
        ack,
        new SbError('internal', `the answer is nested more than ${MAX_ANSWER_DEPTH} levels deep and cannot be sent`),
        d,
      );
    if (!ack) return;
    d.metrics.eventCells.cell(label, 'ok').n++;
    // A handler may answer with `ok: true` already in place (rpc does): no copy of the answer then.
    answer(ack, r.ok === true ? r : { ok: true, ...r }, shape === Shape.Plain);
  } catch (err) {
    // An answer that cannot be walked (a getter that throws) or an ack that throws (a broken transport) is logged,
    // never thrown to Socket.IO.
    d.log.warn({ err, event: label }, 'answering a client event failed');
  }
}

/** A failed event: acked as `{ ok: false, error }`, or told as `switchboard:error` when the client asked for no ack. */
function failEvent(socket: Socket, event: string, label: string, ack: Ack | undefined, err: unknown, d: ProtocolDeps) {
  try {
    const a = errorAck(err);
    if (a.error.code === 'internal' && !(err instanceof SbError)) d.log.error({ err, event: label }, 'event handler failed');
    if (ack) {
      d.metrics.eventCells.cell(label, a.error.code).n++;
      return answer(ack, a, false);
    }
    // Told once per window: answering every event of a flood would only feed it.
    if (!(err instanceof RepeatedRateLimit) && socket.connected)
      socket.emit('switchboard:error', { event: String(event).slice(0, 100), error: a.error });
  } catch (e) {
    // An ack callback that throws (a broken transport) is logged, never thrown to Socket.IO.
    d.log.warn({ err: e, event: label }, 'answering a client event failed');
  }
}
