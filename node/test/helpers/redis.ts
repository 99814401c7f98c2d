// Spawns a private redis-server on a free port for one test file, and always stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { freePort, sleep, waitFor } from './ports.js';

export interface TestRedis {
  port: number;
  url: string;
  proc: ChildProcess;
  /** SIGSTOP / SIGCONT / SIGKILL the server. */
  signal(sig: NodeJS.Signals): void;
  /** Kills it (if running) and starts a fresh, empty one on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(500);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      s.destroy();
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => {
      resolve(false);
      s.destroy();
    });
  });
}

function launch(port: number): ChildProcess {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  proc.on('error', (err) => {
    throw new Error(`cannot start redis-server (install it with: apt-get install -y redis-server): ${err.message}`);
  });
  return proc;
}

async function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise((r) => proc.once('exit', r));
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const r: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: launch(port),
    signal(sig) {
      r.proc.kill(sig);
    },
    async restart() {
      r.proc.kill('SIGKILL');
      await exited(r.proc);
      await sleep(50);
      r.proc = launch(port);
      await waitFor(() => ping(port), { what: `redis on ${port}` });
    },
    async stop() {
      r.proc.kill('SIGCONT');
      r.proc.kill('SIGKILL');
      await exited(r.proc);
    },
  };
  await waitFor(() => ping(port), { what: `redis on ${port}` });
  return r;
}
