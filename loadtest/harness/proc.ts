// Child processes the harness starts (so every one is stopped, even on Ctrl-C), free ports, and /proc readings.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { sleep } from './clock.js';

/**
 * Ports this process has handed out: the kernel may give a port that was just closed to the next bind(0), so two
 * calls in a row (say HAProxy's frontend and its stats port) could name the same port, and a server that binds with
 * SO_REUSEPORT (HAProxy does) would then listen twice on it and split the connections between the two.
 */
const handedOut = new Set<number>();

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, host, () => {
        const addr = srv.address();
        srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/**
 * A free port below Linux's ephemeral range (32768–60999), for a process that binds it later (Pushpin's ZeroMQ and
 * HTTP ports): a port from listen(0) is an ephemeral one, which any outgoing connection on the machine can take
 * before the process binds it (CI saw Pushpin's handler fail "unable to bind" that way).
 */
export async function freeLowPort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', () => resolve(false));
      srv.listen(port, host, () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  return freePort(host);
}

/** Thrown from a waitFor condition to stop waiting at once (the process it waits for has died). */
export class FatalError extends Error {}

/** Polls `fn` until it returns true, or throws after `timeoutMs` naming `what`. */
export async function waitFor(fn: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await fn()) return;
    } catch (err) {
      if (err instanceof FatalError) throw err;
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(50, signal);
  }
}

export interface Managed {
  proc: ChildProcess;
  name: string;
  /** Last ~16 kB of stdout+stderr. */
  output(): string;
  exited: Promise<void>;
  stop(): Promise<void>;
}

/** Every process the harness started; `killAll` is safe to call from an exit handler (synchronous). */
export class Processes {
  private live = new Set<ChildProcess>();
  /** Processes started as leaders of their own group, whose helpers outlive them on SIGKILL (Pushpin's runner). */
  private groups = new Set<number>();

  track(proc: ChildProcess, _name: string): void {
    this.live.add(proc);
    proc.once('exit', () => this.live.delete(proc));
  }

  /**
   * `group`: the process leads a new process group, and killAll kills the whole group. `stopGraceMs`: how long
   * stop() waits after SIGTERM before SIGKILL (default 3 s; a profiled node needs longer to write its profile).
   */
  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions & { group?: boolean; stopGraceMs?: number } = {}): Managed {
    const { group, stopGraceMs = 3000, ...rest } = opts;
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...rest, ...(group ? { detached: true } : {}) });
    this.track(proc, name);
    if (group && proc.pid !== undefined) {
      const pgid = proc.pid;
      this.groups.add(pgid);
      // The leader stops its helpers on SIGTERM; once it is gone, any helper left is killed with the group.
      proc.once('exit', () => {
        this.killGroup(pgid);
        this.groups.delete(pgid);
      });
    }
    let out = '';
    const keep = (d: Buffer) => {
      out += d.toString();
      if (out.length > 16_384) out = out.slice(-16_384);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const exited = new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.once('error', (err) => {
        out += `\n${err.message}`;
        resolve();
      });
    });
    return {
      proc,
      name,
      output: () => out,
      exited,
      async stop() {
        if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), stopGraceMs);
        await exited;
        clearTimeout(t);
      },
    };
  }

  private killGroup(pgid: number): void {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // the group is empty
    }
  }

  killAll(): void {
    for (const g of this.groups) this.killGroup(g);
    this.groups.clear();
    for (const p of this.live) {
      try {
        p.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    this.live.clear();
  }

  get count(): number {
    return this.live.size;
  }
}

let clkTck = 0;
function ticksPerSecond(): number {
  if (!clkTck) clkTck = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;
  return clkTck;
}

function readStat(pid: number): { ppid: number; cpuSeconds: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start at field 3 (state).
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuSeconds: (Number(f[11]) + Number(f[12])) / ticksPerSecond() };
  } catch {
    return undefined;
  }
}

/** The pid and all its descendants (a server may fork helpers; they count as the server). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = readStat(Number(d));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(d));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** utime + stime of the process tree, in seconds. */
export function cpuSeconds(pid: number): number {
  let sum = 0;
  for (const p of processTree(pid)) sum += readStat(p)?.cpuSeconds ?? 0;
  return sum;
}

/** VmRSS of the process tree, in KiB. */
export function rssKiB(pid: number): number {
  let sum = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      sum += m ? Number(m[1]) : 0;
    } catch {
      // exited
    }
  }
  return sum;
}

/** True when `bin` is on PATH. */
export function hasBinary(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}
