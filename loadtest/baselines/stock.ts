// Baseline "stock": Socket.IO 4 with its default `ws` engine on node:http and @socket.io/redis-adapter over ioredis,
// speaking Switchboard's subscribe/publish/rpc protocol with nothing else (no history, auth, limits or metrics).
// Run: REDIS_URL=redis://127.0.0.1:6379 PORT=3001 INTERNAL_PORT=9091 API_KEYS=k node dist/loadtest/baselines/stock.js
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server, type Socket } from 'socket.io';
import { authorized, checkPublish, fail, idGenerator, onShutdown, readConfig, startInternalServer, webhookCaller } from './common.js';

const cfg = readConfig();
const nextId = idGenerator(cfg.nodeId);
const callWebhook = cfg.backendUrl ? webhookCaller(cfg.backendUrl) : undefined;
const pub = new Redis(cfg.redisUrl, { lazyConnect: false });
const sub = pub.duplicate();

const http = createServer((req, res) => void handleHttp(req, res));
const io = new Server(http, { serveClient: false, adapter: createAdapter(pub, sub) });

function publish(channel: string, event: string, data: unknown): string {
  const id = nextId();
  io.to(channel).emit(event, data, { channel, id, ts: Date.now() });
  return id;
}

type Ack = (res: unknown) => void;
/** Socket.IO hands the ack as the last argument; a client may leave optional arguments out. */
function split(args: unknown[]): { ack: Ack; rest: unknown[] } | undefined {
  const last = args[args.length - 1];
  if (typeof last !== 'function') return undefined;
  return { ack: last as Ack, rest: args.slice(0, -1) };
}

const HANDLERS: Record<string, (socket: Socket, args: unknown[], ack: Ack) => void> = {
  subscribe(socket, [channel], ack) {
    const bad = checkPublish(channel, 'x');
    if (bad) return ack(bad);
    void socket.join(channel as string);
    ack({ ok: true, recovered: false, replayed: 0 });
  },
  unsubscribe(socket, [channel], ack) {
    if (typeof channel !== 'string') return ack(fail('invalid_channel', 'channel'));
    void socket.leave(channel);
    ack({ ok: true });
  },
  publish(_socket, [channel, event, data], ack) {
    const bad = checkPublish(channel, event);
    if (bad) return ack(bad);
    ack({ ok: true, id: publish(channel as string, event as string, data) });
  },
  rpc(_socket, [method, params], ack) {
    if (typeof method !== 'string') return ack(fail('bad_request', 'method'));
    if (callWebhook) {
      void callWebhook(method, params).then(ack);
      return;
    }
    if (method !== 'echo') return ack(fail('not_found', `no rpc method ${method}`));
    ack({ ok: true, result: params });
  },
};

io.on('connection', (socket) => {
  socket.onAny((event: string, ...args: unknown[]) => {
    const call = split(args);
    if (!call) return;
    const handler = HANDLERS[event];
    if (!handler) return call.ack(fail('not_found', `unknown event ${event}`));
    handler(socket, call.rest, call.ack);
  });
});

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
