// Spawns a private redis-server on a free port for one test file, and always stops it.
import type { ChildProcess } from 'node:child_process';
import { freePort } from './ports.js';
import { killRedis, launchRedis, removeDir, tempDir, waitPing, type RedisProcess } from './redis-process.js';

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

// redis-server --port 0 would listen on no TCP port at all, so a free port is found first.
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = tempDir('redis');
  const launch = () => launchRedis(port, dir, ['--loglevel', 'warning']);
  let p: RedisProcess = launch();
  const r: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get proc() {
      return p.proc;
    },
    signal(sig) {
      p.proc.kill(sig);
    },
    async restart() {
      await killRedis(p);
      p = launch();
      await waitPing(p, `redis restarted on ${port}`);
    },
    async stop() {
      await killRedis(p);
      removeDir(dir);
    },
  };
  try {
    await waitPing(p, `redis on ${port}`);
  } catch (err) {
    await r.stop();
    throw err;
  }
  return r;
}
