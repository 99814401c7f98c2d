// Connection limits: handshakes per second per address, concurrent connections per address and per user.
// With Redis the counters are cluster-wide (rate-limiter-flexible's Redis limiter, Redis counters).
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import type { Metrics } from '../metrics/metrics.js';
import { SbError } from '../protocol/errors.js';

export interface ConnectionLimits {
  /** Throws `rate_limited` past HANDSHAKES_PER_SECOND_PER_IP. */
  handshake(ip: string): Promise<void>;
  /** Counts one connection for `ip` and `user`; throws `rate_limited` past the limits; returns its release. */
  acquire(ip: string, user: string | undefined): Promise<() => void>;
}

export interface LimitOptions {
  handshakesPerSecondPerIp: number;
  connectionsPerIp: number;
  connectionsPerUser: number;
}

/** Per-node counters; also the fallback when Redis is unavailable (limits stay, per node). */
export class LocalConnectionLimits implements ConnectionLimits {
  private readonly handshakes: RateLimiterAbstract;
  private readonly perIp = new Map<string, number>();
  private readonly perUser = new Map<string, number>();

  constructor(
    private readonly opts: LimitOptions,
    private readonly metrics: Metrics,
    redis?: { client: Redis; prefix: string },
  ) {
    this.handshakes = redis
      ? new RateLimiterRedis({ storeClient: redis.client, keyPrefix: `${redis.prefix}:hs`, points: opts.handshakesPerSecondPerIp, duration: 1, insuranceLimiter: new RateLimiterMemory({ points: opts.handshakesPerSecondPerIp, duration: 1 }) })
      : new RateLimiterMemory({ points: opts.handshakesPerSecondPerIp, duration: 1 });
  }

  async handshake(ip: string) {
    try {
      await this.handshakes.consume(ip);
    } catch (err) {
      if (err instanceof Error) throw err;
      this.metrics.rejections.inc({ reason: 'handshake_rate' });
      throw new SbError('rate_limited', `more than ${this.opts.handshakesPerSecondPerIp} connections per second from this address`);
    }
  }

  async acquire(ip: string, user: string | undefined) {
    const nIp = this.perIp.get(ip) ?? 0;
    if (nIp >= this.opts.connectionsPerIp) {
      this.metrics.rejections.inc({ reason: 'connections_per_ip' });
      throw new SbError('rate_limited', `at most ${this.opts.connectionsPerIp} connections per address`);
    }
    const nUser = user === undefined ? 0 : (this.perUser.get(user) ?? 0);
    if (user !== undefined && nUser >= this.opts.connectionsPerUser) {
      this.metrics.rejections.inc({ reason: 'connections_per_user' });
      throw new SbError('rate_limited', `at most ${this.opts.connectionsPerUser} connections per user`);
    }
    this.perIp.set(ip, nIp + 1);
    if (user !== undefined) this.perUser.set(user, nUser + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      dec(this.perIp, ip);
      if (user !== undefined) dec(this.perUser, user);
    };
  }
}

function dec(m: Map<string, number>, k: string) {
  const n = (m.get(k) ?? 1) - 1;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
}
