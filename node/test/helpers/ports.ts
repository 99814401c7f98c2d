// Free TCP ports for test processes: never hard-code a port in a test.

// One freePort for the tests and the bench: it never hands out the same port twice in one process (see proc.ts).
export { freePort } from '../../../loadtest/harness/proc.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or the deadline passes. `what` names it in the error (a function: read then). */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  { timeout = 10_000, interval = 50, what = 'condition' as string | (() => string) } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeout} ms waiting for ${typeof what === 'function' ? what() : what}${lastErr ? `: ${String(lastErr)}` : ''}`,
      );
    await sleep(interval);
  }
}
