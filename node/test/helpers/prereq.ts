// The programs the suite runs, which tier needs which, and how to install them: read by the test runner
// (scripts/run-tests.mjs installs what is missing where it may) and by tests that skip without an optional one.
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export const TIERS = ['unit', 'ops', 'inprocess', 'integration', 'scenario'] as const;
export type Tier = (typeof TIERS)[number];

export interface Prereq {
  name: string;
  /**
   * Debian packages to try in turn (the first that installs wins: kubectl is `kubernetes-client` on some releases);
   * one alternative may name several packages, space-separated, installed together.
   */
  packages: string[];
  /** Tiers whose tests use it. */
  tiers: Tier[];
  /**
   * Optional ones make the tests that use them skip with the install command where they are missing
   * (a failure under CI=true); a missing required one stops the run.
   */
  optional: boolean;
  present(): boolean;
}

function onPath(bin: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$0"', bin], { stdio: 'ignore' }).status === 0;
}

const services: Tier[] = ['integration', 'scenario'];
export const PREREQS: Prereq[] = [
  { name: 'redis-server', packages: ['redis-server'], tiers: services, optional: false, present: () => onPath('redis-server') },
  { name: 'haproxy', packages: ['haproxy'], tiers: ['ops', ...services], optional: false, present: () => onPath('haproxy') },
  { name: 'openssl', packages: ['openssl'], tiers: ['ops', ...services], optional: false, present: () => onPath('openssl') },
  { name: 'kubectl', packages: ['kubectl', 'kubernetes-client'], tiers: ['ops'], optional: false, present: () => onPath('kubectl') },
  // One package for both: promtool checks rules offline, a prometheus server scrapes a test cluster.
  {
    name: 'promtool',
    packages: ['prometheus'],
    tiers: ['ops', ...services],
    optional: true,
    present: () => onPath('promtool') && onPath('prometheus'),
  },
  { name: 'prometheus', packages: ['prometheus'], tiers: ['scenario'], optional: true, present: () => onPath('prometheus') },
  { name: 'chromium', packages: ['chromium'], tiers: services, optional: true, present: () => onPath('chromium') },
  { name: 'php', packages: ['php-cli'], tiers: services, optional: true, present: () => onPath('php') },
  { name: 'pushpin', packages: ['pushpin'], tiers: services, optional: true, present: () => onPath('pushpin') },
  {
    name: 'python3-socketio',
    // The client's HTTP and WebSocket libraries are only Recommends of python3-socketio, and the runner installs
    // without recommends: without them the client never connects (polling needs requests, WebSocket websocket-client).
    packages: ['python3-socketio python3-requests python3-websocket'],
    tiers: services,
    optional: true,
    // Debian's interpreter, not a pyenv `python3` earlier on PATH: the packages install into it.
    present: () => spawnSync('/usr/bin/python3', ['-c', 'import socketio, requests, websocket'], { stdio: 'ignore' }).status === 0,
  },
];

export function installCommand(p: Prereq): string {
  return p.packages.map((pkg) => `apt-get install -y ${pkg}`).join(' || ');
}

export function hasBinary(bin: string): boolean {
  const known = PREREQS.find((p) => p.name === bin);
  return known ? known.present() : onPath(bin);
}

/**
 * Returns true when `name` (a program, or a PREREQS name such as 'python3-socketio') is present;
 * otherwise skips the test with the install command, or fails it under CI=true.
 */
export function requireOptional(t: TestContext, name: string, install?: string): boolean {
  if (hasBinary(name)) return true;
  const known = PREREQS.find((p) => p.name === name);
  const how = install ?? (known ? installCommand(known) : `apt-get install -y ${name}`);
  const msg = `${name} is not installed; install it with: ${how}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: a skip is a failure)`);
  t.skip(msg);
  return false;
}
