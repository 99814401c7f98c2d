// Shared by the Redis Cluster and Sentinel helpers: one redis-server process in its own temp folder, stopped by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './ports.js';

export interface RedisProcess {
  port: number;
  dir: string;
  proc: ChildProcess;
  /** Everything the server printed (log lines go to stdout with --logfile ''). */
  output(): string;
  running(): boolean;
}

/** A temp folder removed by `removeDir`; every helper wipes what it made, pass or fail. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `sb-${prefix}-`));
}

export function removeDir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
}

/** Starts redis-server in the foreground (so we hold its pid) with `args` after an optional config file. */
export function launchRedis(port: number, dir: string, args: string[], configFile?: string): RedisProcess {
  let out = '';
  const proc = spawn(
    'redis-server',
    [
      ...(configFile ? [configFile] : []),
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      ...args,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: dir,
    },
  );
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
  proc.on('error', (err) => {
    out += `\ncannot start redis-server (install it with: apt-get install -y redis-server): ${err.message}`;
  });
  return { port, dir, proc, output: () => out, running: () => proc.exitCode === null && proc.signalCode === null };
}

export async function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise((r) => proc.once('exit', r));
}

/** SIGKILL (a SIGSTOPped one too) and wait for the exit. */
export async function killRedis(p: RedisProcess) {
  if (!p.running()) return;
  p.proc.kill('SIGKILL');
  await exited(p.proc);
}

/** kill -9, SIGSTOP and SIGCONT of the server on a port (Cluster and Sentinel helpers alike). */
export function faults(byPort: (port: number) => RedisProcess) {
  return {
    async kill(port: number) {
      await killRedis(byPort(port));
    },
    pause(port: number) {
      byPort(port).proc.kill('SIGSTOP');
    },
    resume(port: number) {
      byPort(port).proc.kill('SIGCONT');
    },
  };
}

/** One command on a short-lived connection; rejects when the server does not answer within `timeoutMs`. */
export async function command(port: number, args: (string | number)[], timeoutMs = 2000, password?: string): Promise<unknown> {
  const c = new Redis(port, '127.0.0.1', {
    ...(password ? { password } : {}),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: () => null,
  });
  c.on('error', () => {});
  try {
    await c.connect();
    return await c.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    c.disconnect();
  }
}

/** Parses `INFO`-style `key:value` lines. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export async function waitPing(p: RedisProcess, what: string, password?: string) {
  await waitFor(
    async () => {
      if (!p.running()) throw new Error(`redis-server on ${p.port} exited: ${p.output().slice(-2000)}`);
      return (await command(p.port, ['PING'], 500, password).catch(() => '')) === 'PONG';
    },
    { what, timeout: 10_000 },
  );
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A free port p whose cluster bus port p+10000 is free too (Redis Cluster listens on both). */
export async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = await freePort();
    if (p > 55535 || taken.has(p) || taken.has(p + 10000) || taken.has(p - 10000)) continue;
    if (await portFree(p + 10000)) {
      taken.add(p);
      taken.add(p + 10000);
      return p;
    }
  }
  throw new Error('no free port p with p+10000 free as well');
}
