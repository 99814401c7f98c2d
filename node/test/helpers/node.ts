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

export async function startNode(opts: StartNodeOptions = {}): Promise<TestNode> {
  const port = await freePort();
  const internalPort = await freePort();
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
      API_KEYS: 'test-key',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
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
  let dead = false;
  void exited.then(() => (dead = true));
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
