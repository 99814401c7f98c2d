// A per-key count in the current wall-clock second, answered in the same call (no promise): for limits checked on
// every client event, where rate-limiter-flexible's RateLimiterMemory costs a promise and a result object per call
// and a timer per key and window (its consume() showed in the publishing node's profile of `npm run bench`). Keys
// are forgotten when the second turns, so the map holds only the keys seen within one second.
export class PerSecondCounter {
  private second = 0;
  private readonly counts = new Map<string, number>();

  constructor(private readonly points: number) {}

  /** Counts one for `key`; true while `key` has taken at most `points` this second. */
  take(key: string): boolean {
    const s = Math.floor(Date.now() / 1000);
    if (s !== this.second) {
      this.second = s;
      this.counts.clear();
    }
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    return n <= this.points;
  }
}
