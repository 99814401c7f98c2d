// Baseline "stock": Socket.IO 4 with its default `ws` engine on node:http and @socket.io/redis-adapter over ioredis,
// speaking Switchboard's subscribe/publish/rpc protocol (sio-protocol.ts) with nothing else.
// Run: REDIS_URL=redis://127.0.0.1:6379 PORT=3001 INTERNAL_PORT=9091 API_KEYS=k node dist/loadtest/baselines/stock.js
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { authorized, checkPublish, onShutdown, readConfig, startInternalServer } from './common.js';
import { serveProtocol } from './sio-protocol.js';

const cfg = readConfig();
const pub = new Redis(cfg.redisUrl, { lazyConnect: false });
const sub = pub.duplicate();

const http = createServer((req, res) => void handleHttp(req, res));
const io = new Server(http, { serveClient: false, adapter: createAdapter(pub, sub) });

const publish = serveProtocol(io, cfg);

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'POST' || req.url !== '/api/publish') return json(res, 404, { error: { code: 'not_found', message: 'not found' } });
  if (!authorized(cfg, req.headers.authorization)) return json(res, 401, { error: { code: 'unauthorized', message: 'API key' } });
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  let body: { channel?: unknown; event?: unknown; data?: unknown };
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
  } catch {
    return json(res, 400, { error: { code: 'bad_request', message: 'body is not JSON' } });
  }
  const bad = checkPublish(body.channel, body.event);
  if (bad) return json(res, 400, { error: bad.error });
  json(res, 200, { ok: true, id: publish(body.channel as string, body.event as string, body.data) });
}

let redisReady = 0;
for (const c of [pub, sub]) c.on('ready', () => redisReady++);
const internal = startInternalServer(cfg, () => redisReady >= 2 && http.listening);
http.listen(cfg.port, cfg.host);

onShutdown(async () => {
  internal.close();
  await new Promise<void>((r) => io.close(() => r()));
  pub.disconnect();
  sub.disconnect();
});
