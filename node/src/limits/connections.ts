// Connection limits: handshakes per second per address, concurrent connections per address and per user.
// This is the per-node implementation; redis-connections.ts makes the same limits cluster-wide.
import { RateLimiterMemory, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Metrics } from '../metrics/metrics.js';
import { SbError } from '../core/errors.js';

export interface ConnectionLimits {
  /** Throws `rate_limited` past HANDSHAKES_PER_SECOND_PER_IP. */
  handshake(ip: string): Promise<void>;
  /**
   * Counts one connection for `ip` and/or `user` (either may be undefined: Socket.IO takes the address slot at the
   * Engine.IO handshake and the user slot at CONNECT); throws `rate_limited` past the limits; returns the slot.
   */
  acquire(ip: string | undefined, user: string | undefined): Promise<Slot>;
  /** Stops timers and closes connections (at shutdown). */
  close?(): Promise<void>;
}

/** What a connection holds against the limits until released (release is idempotent). */
export interface Held {
  release(): void;
}

/**
 * The limit slots an Engine.IO session holds, kept on its first request (transport/socketio.ts admits the address,
 * protocol/connection.ts adds the user's at CONNECT): released together when the session ends.
 */
export interface SessionSlots {
  sbAdmission?: Admitted | LateAdmission;
  sbUser?: Held;
}

/** An address slot taken: the admission of a session's first request. */
export type Admitted = Held & { readonly ip: string };

/**
 * An admission still being decided while its session is already open (a WebSocket-first handshake: see
 * transport/socketio.ts), as the session's `sbAdmission`. `settled` resolves with the refusal, or undefined once the
 * slot is held; the slot then takes this object's place on the session, which keeps nothing more per connection
 * than an admission decided first. A release before then gives the slot back as soon as it comes.
 */
export class LateAdmission implements Held {
  private slot: Admitted | undefined;
  private released = false;
  readonly settled: Promise<Error | undefined>;

  /** `session`: where this is the `sbAdmission` (set by the caller, before the admission can settle). */
  constructor(admission: Promise<Admitted>, session: SessionSlots) {
    this.settled = admission.then(
      (slot) => {
        if (this.released) slot.release();
        else {
          this.slot = slot;
          if (session.sbAdmission === this) session.sbAdmission = slot;
        }
        return undefined;
      },
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** The address counted, once admitted. */
  get ip(): string | undefined {
    return this.slot?.ip;
  }

  release() {
    this.released = true;
    this.slot?.release();
    this.slot = undefined;
  }
}

export function releaseSlots(req: SessionSlots) {
  req.sbAdmission?.release();
  req.sbUser?.release();
}

/** Gives counts back: the limits implementation a slot belongs to. */
export interface SlotOwner {
  free(ip: string | undefined, user: string | undefined): void;
}

/**
 * One counted connection. An object with a prototype method rather than a closure: every idle connection keeps
 * one, and a closure costs its context and function on top.
 */
export class Slot implements Held {
  constructor(
    private owner: SlotOwner | undefined,
    readonly ip: string | undefined,
    readonly user: string | undefined,
  ) {}

  release() {
    const owner = this.owner;
    if (!owner) return;
    this.owner = undefined;
    owner.free(this.ip, this.user);
  }
}

export interface LimitOptions {
  handshakesPerSecondPerIp: number;
  connectionsPerIp: number;
  connectionsPerUser: number;
}

/** Per-node counters; also the fallback when Redis is unavailable (limits stay, per node). */
export class LocalConnectionLimits implements ConnectionLimits, SlotOwner {
  private readonly handshakes: RateLimiterAbstract;
  private readonly perIp = new Map<string, number>();
  private readonly perUser = new Map<string, number>();

  constructor(
    private readonly opts: LimitOptions,
    private readonly metrics: Metrics,
  ) {
    this.handshakes = new RateLimiterMemory({ points: opts.handshakesPerSecondPerIp, duration: 1 });
  }

  async handshake(ip: string) {
    await consumeHandshake(this.handshakes, ip, this.opts, this.metrics);
  }

  async acquire(ip: string | undefined, user: string | undefined) {
    const nIp = ip === undefined ? 0 : (this.perIp.get(ip) ?? 0);
    if (ip !== undefined && nIp >= this.opts.connectionsPerIp) throw limitError('ip', this.opts, this.metrics);
    const nUser = user === undefined ? 0 : (this.perUser.get(user) ?? 0);
    if (user !== undefined && nUser >= this.opts.connectionsPerUser) throw limitError('user', this.opts, this.metrics);
    if (ip !== undefined) this.perIp.set(ip, nIp + 1);
    if (user !== undefined) this.perUser.set(user, nUser + 1);
    return new Slot(this, ip, user);
  }

  /** A slot's counts back (Slot.release calls it once). */
  free(ip: string | undefined, user: string | undefined) {
    if (ip !== undefined) dec(this.perIp, ip);
    if (user !== undefined) dec(this.perUser, user);
  }
}

/** Counts one handshake; `rate_limited` past the limit. Shared with the Redis implementation. */
export async function consumeHandshake(limiter: RateLimiterAbstract, ip: string, opts: LimitOptions, metrics: Metrics) {
  try {
    await limiter.consume(ip);
  } catch (err) {
    if (err instanceof Error) throw err;
    metrics.rejections.inc({ reason: 'handshake_rate' });
    throw new SbError('rate_limited', `more than ${opts.handshakesPerSecondPerIp} connections per second from this address`);
  }
}

/** The refusal of acquire(): counted, and the client's `connect_error`. */
export function limitError(which: 'ip' | 'user', opts: LimitOptions, metrics: Metrics): SbError {
  metrics.rejections.inc({ reason: which === 'ip' ? 'connections_per_ip' : 'connections_per_user' });
  return which === 'ip'
    ? new SbError('rate_limited', `at most ${opts.connectionsPerIp} connections per address`)
    : new SbError('rate_limited', `at most ${opts.connectionsPerUser} connections per user`);
}

function dec(m: Map<string, number>, k: string) {
  const n = (m.get(k) ?? 1) - 1;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
}
