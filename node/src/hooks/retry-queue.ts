// A bounded fire-and-forget queue: runs jobs a few at a time and retries failures with exponential backoff,
// so callers (a client's disconnect) never wait for the backend.

export interface RetryQueueOptions {
  /** Jobs waiting (queued or backing off) beyond which new ones are dropped. */
  capacity: number;
  /** Jobs running at once. */
  parallel: number;
  /** Retries after the first attempt; 0: one attempt only. */
  retries: number;
  /** Delay before the first retry; doubles per attempt up to 64×, ±20 % jitter. */
  backoffMs: number;
}

export interface RetryQueueEvents<T> {
  /** Called when a job is given up: the queue was full, or its retries ran out. */
  dropped(job: T, why: 'queue_full' | 'retries_exhausted', err?: unknown): void;
}

interface Entry<T> {
  job: T;
  attempt: number;
}

export class RetryQueue<T> {
  private readonly ready: Entry<T>[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private active = 0;
  private closed = false;

  constructor(
    private readonly opts: RetryQueueOptions,
    /** Runs one attempt; a rejection means "retry later". */
    private readonly run: (job: T) => Promise<void>,
    private readonly events: RetryQueueEvents<T>,
  ) {}

  /** Jobs not finished yet (queued, running or backing off). */
  get size(): number {
    return this.ready.length + this.timers.size + this.active;
  }

  push(job: T) {
    if (this.closed) return;
    if (this.ready.length + this.timers.size >= this.opts.capacity) return this.events.dropped(job, 'queue_full');
    this.ready.push({ job, attempt: 0 });
    this.pump();
  }

  /** Stops retrying; jobs still waiting are abandoned (the process is going away). */
  close() {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.ready.length = 0;
  }

  private pump() {
    while (!this.closed && this.active < this.opts.parallel && this.ready.length > 0) {
      const e = this.ready.shift()!;
      this.active++;
      this.run(e.job).then(
        () => this.done(),
        (err: unknown) => {
          this.done();
          this.retry(e, err);
        },
      );
    }
  }

  private done() {
    this.active--;
    this.pump();
  }

  private retry(e: Entry<T>, err: unknown) {
    if (this.closed) return;
    if (e.attempt >= this.opts.retries) return this.events.dropped(e.job, 'retries_exhausted', err);
    e.attempt++;
    const base = this.opts.backoffMs * 2 ** Math.min(e.attempt - 1, 6);
    const t = setTimeout(
      () => {
        this.timers.delete(t);
        this.ready.push(e);
        this.pump();
      },
      base * (0.8 + Math.random() * 0.4),
    );
    // Pending retries must not keep a finished process alive.
    t.unref();
    this.timers.add(t);
  }
}
