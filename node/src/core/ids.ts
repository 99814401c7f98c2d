// Publication ids: "<ms>-<seq>", the format of Redis stream ids, so both buses order the same way.

export function parseId(id: string): [number, number] | undefined {
  const m = /^(\d{1,16})-(\d{1,16})$/.exec(id);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Negative when a < b, 0 when equal, positive when a > b. Both must be valid ids. */
export function compareIds(a: string, b: string): number {
  const pa = parseId(a)!;
  const pb = parseId(b)!;
  return pa[0] - pb[0] || pa[1] - pb[1];
}

/** Generates increasing ids even when the clock steps back. */
export class IdGenerator {
  private ms = 0;
  private seq = 0;
  next(now = Date.now()): string {
    if (now > this.ms) {
      this.ms = now;
      this.seq = 0;
    } else this.seq++;
    return `${this.ms}-${this.seq}`;
  }
}
