// Spawns a real Switchboard node process (dist/node/src/main.js) on free ports and waits until it answers.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.js';

export const repoRoot = join(fileURLToPath(import.meta.url), '../../../../..');
export const mainJs = join(repoRoot, 'dist/node/src/main.js');

export interface TestNode {
  id: string;
  port: number;
  internalPort: number;
  /** http://127.0.0.1:<port> */
  url: string;
  internalUrl: string;
  proc: ChildProcess;
  /** Everything the process printed (pino JSON lines). */
  output(): string;
  exited: Promise<number | null>;
  kill(sig?: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export interface StartNodeOptions {
  env?: Record<string, string | undefined>;
  /** Wait for /readyz 200 (default) or only /healthz. */
  waitReady?: boolean;
  /** Extra node flags, e.g. ['--expose-gc']. */
  nodeArgs?: string[];
  args?: string[];
}

let counter = 0;

/** The ports from the node's `listening` log line (it binds port 0 and reports what it got). */
function listeningPorts(out: string): { port: number; internalPort: number } | undefined {
  for (const line of out.split('\n')) {
    if (!line.includes('"listening"')) continue;
    try {
      const j = JSON.parse(line) as { msg?: string; port?: number; internalPort?: number };
      if (j.msg === 'listening' && j.port && j.internalPort) return { port: j.port, internalPort: j.internalPort };
    } catch {
      /* a partial line: the rest is still coming */
    }
  }
  return undefined;
}

export async function startNode(opts: StartNodeOptions = {}): Promise<TestNode> {
  // Port 0, read back from the `listening` log line, unless that line may never come (waitReady: false, e.g.
  // Redis unreachable; or a LOG_LEVEL above info): then probe for free ports first.
  const quiet = !['trace', 'debug', 'info', undefined].includes(opts.env?.LOG_LEVEL);
  const probe = opts.waitReady === false || quiet;
  let port = probe ? await freePort() : 0;
  let internalPort = probe ? await freePort() : 0;
  const id = `test-node-${process.pid}-${++counter}`;
  let out = '';
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), mainJs, 'listen', ...(opts.args ?? [])], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(port),
      HOST: '127.0.0.1',
      INTERNAL_PORT: String(internalPort),
      NODE_ID: id,
      LOG_LEVEL: 'info',
      API_KEYS: 'test-key-0123456789abcdef',
      // Every test client publishes from 127.0.0.1, most of them without a user: the per-address limit of anonymous
      // publishing (5/s by default) would refuse them. Tests of that limit set it back.
      ANONYMOUS_PUBLISHES_PER_SECOND_PER_IP: '1000000',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let dead = false;
  void exited.then(() => (dead = true));
  if (!probe) {
    try {
      ({ port, internalPort } = await waitFor(
        () => {
          if (dead) throw new Error(`node exited early (code ${proc.exitCode}):\n${out}`);
          return listeningPorts(out);
        },
        { timeout: 20_000, what: `node ${id} listening` },
      ));
    } catch (err) {
      proc.kill('SIGKILL');
      await exited;
      throw new Error(`${(err as Error).message}\n--- node output ---\n${out}`);
    }
  }
  const node: TestNode = {
    id,
    port,
    internalPort,
    url: `http://127.0.0.1:${port}`,
    internalUrl: `http://127.0.0.1:${internalPort}`,
    proc,
    output: () => out,
    exited,
    kill(sig = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await waitFor(
      async () => {
        if (dead) throw new Error(`node exited early (code ${proc.exitCode}):\n${out}`);
        const res = await fetch(`${node.internalUrl}/${opts.waitReady === false ? 'healthz' : 'readyz'}`);
        return res.status === 200;
      },
      { timeout: 20_000, what: `node ${id} ready` },
    );
  } catch (err) {
    await node.stop();
    throw new Error(`${(err as Error).message}\n--- node output ---\n${out}`);
  }
  return node;
}

export async function startNodes(n: number, opts: StartNodeOptions = {}): Promise<TestNode[]> {
  const nodes: TestNode[] = [];
  for (let i = 0; i < n; i++) nodes.push(await startNode(opts));
  return nodes;
}

/** Stops each in turn (nodes, Redis, HAProxy, anything with stop()), skipping the ones never started. */
export async function stopAll(...things: ({ stop(): Promise<void> } | undefined)[]): Promise<void> {
  for (const x of things) await x?.stop();
}
