// socket.io-client helpers: connect and wait, emit with an ack as a promise, collect publications.
import { io, type Socket, type ManagerOptions, type SocketOptions } from 'socket.io-client';

export type Client = Socket;
export interface Received {
  event: string;
  data: unknown;
  meta: { channel: string; id: string; ts: number };
}

export async function connect(url: string, opts: Partial<ManagerOptions & SocketOptions> = {}): Promise<Client> {
  const s = io(url, { forceNew: true, reconnection: false, timeout: 5000, ...opts });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', (err) => reject(err));
  });
  return s;
}

/** The clients a test file opens; close() in its after() disconnects every one. */
export function clientPool() {
  const clients: Client[] = [];
  return {
    clients,
    async open(target: string | { url: string }, opts: Partial<ManagerOptions & SocketOptions> = {}): Promise<Client> {
      const c = await connect(typeof target === 'string' ? target : target.url, opts);
      clients.push(c);
      return c;
    },
    close() {
      for (const c of clients.splice(0)) c.disconnect();
    },
  };
}

/** Connects expecting a refusal; resolves with the connect_error's { code, message }. */
export async function refused(url: string, opts: Partial<ManagerOptions & SocketOptions> = {}): Promise<{ code: string; message: string }> {
  const err = await connect(url, opts).then(
    (c) => {
      c.disconnect();
      throw new Error('the connection was accepted');
    },
    (e: Error & { data?: { code: string; message: string } }) => e,
  );
  return err.data ?? { code: 'none', message: err.message };
}

export async function call<T = any>(s: Client, event: string, ...args: unknown[]): Promise<T> {
  return (await s.timeout(8000).emitWithAck(event, ...args)) as T;
}

/** Records every publication (event, data, meta) the client receives. */
export function collect(s: Client): Received[] {
  const got: Received[] = [];
  s.onAny((event: string, data: unknown, meta: Received['meta']) => {
    if (meta && typeof meta === 'object' && 'id' in meta) got.push({ event, data, meta });
  });
  return got;
}

export async function apiPublish(baseUrl: string, body: unknown, key = 'test-key-0123456789abcdef', headers: Record<string, string> = {}) {
  const res = await fetch(`${baseUrl}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

export async function metricValue(internalUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${internalUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ([-0-9.e+NaInf]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) total += Number(m[4]);
  }
  return total;
}
