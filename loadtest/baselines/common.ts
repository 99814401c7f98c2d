// What both baselines share: environment, channel rules, ids, the rpc webhook call and the internal health port.
import { Agent as HttpAgent, createServer, request as httpRequest, type Server } from 'node:http';

/** The subset of Switchboard's environment the baselines honour (same names, same meaning). */
export interface BaselineConfig {
  /** Public port: Socket.IO and `POST /api/publish`. */
  port: number;
  host: string;
  /** `/healthz` and `/readyz`. */
  internalPort: number;
  redisUrl: string;
  nodeId: string;
  apiKeys: Set<string>;
  /** Set: `rpc` calls go to `POST {backendUrl}/rpc/{method}`; unset: an in-process `echo`. */
  backendUrl: string | undefined;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): BaselineConfig {
  const int = (name: string, def: number) => {
    const v = Number(env[name] ?? def);
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw new Error(`${name} must be a port number, got ${env[name]}`);
    return v;
  };
  const redisUrl = env.REDIS_URL;
  if (!redisUrl) throw new Error('REDIS_URL is required: the baselines always relay through Redis');
  return {
    port: int('PORT', 3000),
    host: env.HOST ?? '127.0.0.1',
    internalPort: int('INTERNAL_PORT', 9090),
    redisUrl,
    nodeId: env.NODE_ID ?? `baseline-${process.pid}`,
    apiKeys: new Set(
      (env.API_KEYS ?? '')
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    ),
    backendUrl: env.BACKEND_URL?.replace(/\/+$/, '') || undefined,
  };
}

export const CHANNEL_RE = /^[A-Za-z0-9_:.\-@/=,]{1,200}$/;

/** Socket.IO's reserved event names: a publication may not use them. */
export const RESERVED_EVENTS = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

export interface ErrorAck {
  ok: false;
  error: { code: string; message: string };
}
export const fail = (code: string, message: string): ErrorAck => ({ ok: false, error: { code, message } });

/** Publication ids: unique per node and increasing per node (the baselines keep no history). */
export function idGenerator(nodeId: string): () => string {
  let n = 0;
  const prefix = `${nodeId}-${Date.now().toString(36)}-`;
  return () => prefix + (++n).toString(36);
}

export interface PublishRequest {
  channel: string;
  event: string;
  data: unknown;
}

/** Validates `{ channel, event, data }` from the HTTP API or a client's publish. */
export function checkPublish(channel: unknown, event: unknown): ErrorAck | undefined {
  if (typeof channel !== 'string' || !CHANNEL_RE.test(channel))
    return fail('invalid_channel', 'channel: 1-200 of A-Z a-z 0-9 _ : . - @ / = ,');
  if (typeof event !== 'string' || event.length === 0 || RESERVED_EVENTS.has(event))
    return fail('bad_request', 'event: a non-reserved event name');
  return undefined;
}

/**
 * `POST {backend}/rpc/{method}` `{ user, params }` → `{ result }`; any failure becomes an error ack. Over a keep-alive
 * agent with a bounded pool: global fetch opens a connection per concurrent call, which collapses at a few
 * thousand calls per second.
 */
export function webhookCaller(backendUrl: string): (method: string, params: unknown) => Promise<{ ok: true; result: unknown } | ErrorAck> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 128 });
  return (method, params) =>
    new Promise((resolve) => {
      const body = JSON.stringify({ user: null, params });
      const req = httpRequest(
        `${backendUrl}/rpc/${encodeURIComponent(method)}`,
        {
          method: 'POST',
          agent,
          timeout: 5000,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            if (res.statusCode !== 200)
              return resolve(fail(res.statusCode === 404 ? 'not_found' : 'internal', `backend answered ${res.statusCode}`));
            try {
              resolve({ ok: true, result: (JSON.parse(text) as { result?: unknown }).result });
            } catch {
              resolve(fail('internal', 'backend answered with something not JSON'));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => resolve(fail('unavailable', `backend: ${err.message}`)));
      req.end(body);
    });
}

/** `/healthz` always 200; `/readyz` 200 once `ready()` says so. */
export function startInternalServer(cfg: BaselineConfig, ready: () => boolean): Server {
  const srv = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    } else if (req.url === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: ok }));
    } else {
      res.writeHead(404).end();
    }
  });
  srv.listen(cfg.internalPort, cfg.host);
  return srv;
}

/** Checks `Authorization: Bearer <key>` against API_KEYS. */
export function authorized(cfg: BaselineConfig, header: string | undefined): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  return cfg.apiKeys.has(header.slice(7).trim());
}

/** Exits 0 on SIGTERM/SIGINT after `close` (bounded to 2 s). */
export function onShutdown(close: () => Promise<void> | void): void {
  const stop = () => {
    setTimeout(() => process.exit(0), 2000).unref();
    void Promise.resolve()
      .then(close)
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
