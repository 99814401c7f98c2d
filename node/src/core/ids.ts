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

/**
 * `s` as a string of its own. V8 makes a slice of 13 characters or more a view that keeps the whole string it was
 * cut from alive, so an id cut from a bus message and kept (a channel's last id and recent ids, an SSE stream's
 * position) kept the whole message, payload and all: the last 32 messages of every channel a node receives. Prefixing
 * makes a new string that the slice then flattens into a copy; the result refers to that copy only.
 */
export function ownCopy(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
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
