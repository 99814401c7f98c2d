// Baseline "plain": Socket.IO 4 attached to uWebSockets.js (`io.attachApp`, the same uWS build Switchboard loads) with
// @socket.io/redis-adapter over ioredis, and nothing of Switchboard's: the protocol in sio-protocol.ts, Socket.IO's
// defaults. Switchboard ÷ plain is the cost of Switchboard's own code.
// Run: REDIS_URL=redis://127.0.0.1:6379 PORT=3001 INTERNAL_PORT=9091 API_KEYS=k node dist/loadtest/baselines/plain.js
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { onShutdown, readConfig, startInternalServer } from './common.js';
import { serveProtocol } from './sio-protocol.js';
import { listen, loadUws, publishRoute } from './uws-http.js';

const cfg = readConfig();
const { uws } = await loadUws();
const pub = new Redis(cfg.redisUrl);
const sub = pub.duplicate();
let redisReady = 0;
for (const c of [pub, sub]) c.on('ready', () => redisReady++);

const app = uws.App();
const io = new Server({ serveClient: false, adapter: createAdapter(pub, sub) });
io.attachApp(app);
publishRoute(app, cfg, serveProtocol(io, cfg));
app.any('/*', (res) => void res.writeStatus('404 Not Found').end());

let listenSocket: unknown;
const internal = startInternalServer(cfg, () => listenSocket !== undefined && redisReady >= 2);
listenSocket = await listen(app, cfg, 'plain');

onShutdown(async () => {
  internal.close();
  await new Promise<void>((r) => io.close(() => r()));
  if (listenSocket) uws.us_listen_socket_close(listenSocket as never);
  pub.disconnect();
  sub.disconnect();
});
