// Optional tools (chromium, promtool): skipped with the install command where absent, a failure under CI=true.
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export function hasBinary(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

/** Returns true when `bin` is present; otherwise skips the test (or fails it under CI=true). */
export function requireOptional(t: TestContext, bin: string, install: string): boolean {
  if (hasBinary(bin)) return true;
  const msg = `${bin} is not installed; install it with: ${install}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: a skip is a failure)`);
  t.skip(msg);
  return false;
}
