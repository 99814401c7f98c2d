// A per-node circuit breaker for the backend: after N consecutive failures calls fail fast for a cool-down,
// then one probe call decides whether the backend is back.

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive failures (timeouts, network errors, 5xx) that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before a probe is let through. */
  cooldownMs: number;
}

/** Handed out by tryAcquire(); report the call's outcome on it exactly once. */
export interface CircuitTicket {
  readonly probe: boolean;
}

export class CircuitBreaker {
  private current: CircuitState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probing = false;

  constructor(
    private readonly opts: CircuitBreakerOptions,
    private readonly onChange: (state: CircuitState, failures: number) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  get state(): CircuitState {
    return this.current;
  }

  /** Closed with no failure counted: nothing would be lost by forgetting it. */
  isClean(): boolean {
    return this.current === 'closed' && this.failures === 0 && !this.probing;
  }

  /** Milliseconds until an open circuit lets a probe through (0 when not open). */
  retryInMs(): number {
    return this.current === 'open' ? Math.max(0, this.openedAt + this.opts.cooldownMs - this.now()) : 0;
  }

  /** A ticket when a call may go out, else undefined (open, or a half-open probe already in flight). */
  tryAcquire(): CircuitTicket | undefined {
    if (this.current === 'open' && this.now() - this.openedAt >= this.opts.cooldownMs) this.set('half_open');
    if (this.current === 'closed') return { probe: false };
    if (this.current === 'half_open' && !this.probing) {
      this.probing = true;
      return { probe: true };
    }
    return undefined;
  }

  success(t: CircuitTicket) {
    if (t.probe) {
      this.probing = false;
      this.failures = 0;
      this.set('closed');
    } else if (this.current === 'closed') this.failures = 0;
    // Late answers to calls made before the circuit opened change nothing: only the probe decides.
  }

  failure(t: CircuitTicket) {
    if (t.probe) {
      this.probing = false;
      this.open();
    } else if (this.current === 'closed' && ++this.failures >= this.opts.failureThreshold) this.open();
  }

  private open() {
    this.openedAt = this.now();
    this.set('open');
  }

  private set(s: CircuitState) {
    if (s === this.current) return;
    this.current = s;
    this.onChange(s, this.failures);
  }
}
