// The parent's side of the client workers: forks them, sends requests, and hands out source addresses.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Reply, Request } from './messages.js';
import type { Processes } from './proc.js';

const WORKER_JS = fileURLToPath(new URL('./worker.js', import.meta.url));

export class WorkerPool {
  private seq = 0;
  private waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(readonly procs: ChildProcess[]) {
    for (const p of procs) {
      p.on('message', (m: Reply) => {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        if (m.ok) w.resolve(m.result);
        else w.reject(new Error(`worker ${p.pid}: ${m.error}`));
      });
      p.on('exit', (code, sig) => {
        for (const w of this.waiting.values()) w.reject(new Error(`worker ${p.pid} exited (${code ?? sig})`));
        this.waiting.clear();
      });
    }
  }

  static async start(n: number, registry: Processes): Promise<WorkerPool> {
    const procs = Array.from({ length: n }, () => {
      const p = fork(WORKER_JS, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      registry.track(p, 'worker');
      return p;
    });
    await Promise.all(procs.map((p) => new Promise<void>((resolve, reject) => (p.once('spawn', resolve), p.once('error', reject)))));
    return new WorkerPool(procs);
  }

  get size(): number {
    return this.procs.length;
  }

  get pids(): number[] {
    return this.procs.map((p) => p.pid!).filter(Boolean);
  }

  call<T>(i: number, req: Request): Promise<T> {
    const p = this.procs[i];
    if (!p || !p.connected) return Promise.reject(new Error(`worker ${i} is not running`));
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      p.send({ ...req, id });
    });
  }

  /** The same kind of request to every worker (built per worker index), in parallel. */
  all<T>(build: (i: number) => Request | undefined): Promise<T[]> {
    const calls: Array<Promise<T>> = [];
    for (let i = 0; i < this.size; i++) {
      const req = build(i);
      if (req) calls.push(this.call<T>(i, req));
    }
    return Promise.all(calls);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        if (p.connected) p.send({ op: 'exit', id: 0 });
        const t = setTimeout(() => p.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }),
    );
  }
}

/**
 * Source addresses 127.0.x.y (x ≥ 1): each connect phase takes fresh ones, so the ~28k ephemeral ports per
 * address (and the TIME_WAIT sockets earlier phases left behind) never run out.
 */
export class Addresses {
  private k = 0;
  next(): string {
    const k = this.k++ % (250 * 250);
    return `127.0.${1 + Math.floor(k / 250)}.${1 + (k % 250)}`;
  }
}

/** Splits `total` into `parts` near-equal counts; returns [count, offset] per part. */
export function split(total: number, parts: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let offset = 0;
  for (let i = 0; i < parts; i++) {
    const n = Math.floor(total / parts) + (i < total % parts ? 1 : 0);
    out.push([n, offset]);
    offset += n;
  }
  return out;
}
