// Baseline "ceiling": raw uWebSockets.js pub/sub relayed through one Redis channel, speaking only as much Engine.IO v4 /
// Socket.IO v5 as the harness needs (WebSocket transport, namespace "/", events with acks, server pings). What a
// gateway could cost if it did nothing but move frames. Same env as the node: PORT, INTERNAL_PORT, REDIS_URL, NODE_ID, API_KEYS.
import { randomBytes } from 'node:crypto';
import type { TemplatedApp, WebSocket } from '@trufflesuite/uws-js-unofficial';
import { Redis } from 'ioredis';
import { checkPublish, fail, idGenerator, onShutdown, readConfig, startInternalServer, webhookCaller } from './common.js';
import { listen, loadUws, publishRoute } from './uws-http.js';

const cfg = readConfig();
const { uws } = await loadUws();
const nextId = idGenerator(cfg.nodeId);
const callWebhook = cfg.backendUrl ? webhookCaller(cfg.backendUrl) : undefined;
const nodeUid = randomBytes(6).toString('hex');
const BUS = 'ceiling#bus';
const PING_TOPIC = '\u0000eio-ping';
const PING_INTERVAL = 25_000;

const pub = new Redis(cfg.redisUrl);
const sub = pub.duplicate();
let redisReady = 0;
for (const c of [pub, sub]) c.on('ready', () => redisReady++);

interface Conn {
  sid: string;
  connected: boolean;
}

const app: TemplatedApp = uws.App();
let listening = false;
let listenSocket: unknown;

/** Local delivery, then the bus: frame = `nodeUid \n channel \n 42[...]`; nodes skip their own frames. */
function publish(channel: string, event: string, data: unknown): string {
  const id = nextId();
  const frame = `42${JSON.stringify([event, data, { channel, id, ts: Date.now() }])}`;
  app.publish(channel, frame, false, false);
  void pub.publish(BUS, `${nodeUid}\n${channel}\n${frame}`);
  return id;
}

void sub.subscribe(BUS);
sub.on('message', (_ch: string, msg: string) => {
  const a = msg.indexOf('\n');
  const b = msg.indexOf('\n', a + 1);
  if (a < 0 || b < 0 || msg.slice(0, a) === nodeUid) return;
  app.publish(msg.slice(a + 1, b), msg.slice(b + 1), false, false);
});

function ack(ws: WebSocket<Conn>, ackId: number | undefined, res: unknown): void {
  if (ackId === undefined) return;
  ws.send(`43${ackId}${JSON.stringify([res])}`, false, false);
}

function onEvent(ws: WebSocket<Conn>, name: string, args: unknown[], ackId: number | undefined): void {
  switch (name) {
    case 'subscribe': {
      const [channel] = args;
      const bad = checkPublish(channel, 'x');
      if (bad) return ack(ws, ackId, bad);
      ws.subscribe(channel as string);
      return ack(ws, ackId, { ok: true, recovered: false, replayed: 0 });
    }
    case 'unsubscribe':
      if (typeof args[0] === 'string') ws.unsubscribe(args[0]);
      return ack(ws, ackId, { ok: true });
    case 'publish': {
      const [channel, event, data] = args;
      const bad = checkPublish(channel, event);
      if (bad) return ack(ws, ackId, bad);
      return ack(ws, ackId, { ok: true, id: publish(channel as string, event as string, data) });
    }
    case 'rpc': {
      const [method, params] = args;
      if (typeof method !== 'string') return ack(ws, ackId, fail('bad_request', 'method'));
      if (callWebhook) {
        const open = ws.getUserData();
        void callWebhook(method, params).then((res) => {
          if (open.connected) ack(ws, ackId, res);
        });
        return;
      }
      return ack(ws, ackId, method === 'echo' ? { ok: true, result: params } : fail('not_found', `no rpc method ${method}`));
    }
    default:
      return ack(ws, ackId, fail('not_found', `unknown event ${name}`));
  }
}

/** One text frame from a client: `2`/`3` pings, `40` connect, `41` disconnect, `42[id][…]` events. */
function onFrame(ws: WebSocket<Conn>, frame: string): void {
  if (frame === '3') return;
  if (frame === '2') return void ws.send('3');
  if (frame.startsWith('40')) {
    ws.getUserData().connected = true;
    return void ws.send(`40{"sid":"${randomBytes(8).toString('base64url')}"}`);
  }
  if (frame === '41') return void ws.end(1000);
  if (!frame.startsWith('42') || !ws.getUserData().connected) return;
  let i = 2;
  let ackId: number | undefined;
  while (i < frame.length && frame.charCodeAt(i) >= 48 && frame.charCodeAt(i) <= 57) i++;
  if (i > 2) ackId = Number(frame.slice(2, i));
  let body: unknown;
  try {
    body = JSON.parse(frame.slice(i));
  } catch {
    return void ws.end(1003, 'malformed packet');
  }
  if (!Array.isArray(body) || typeof body[0] !== 'string') return void ws.end(1003, 'malformed packet');
  onEvent(ws, body[0], body.slice(1), ackId);
}

app.ws<Conn>('/socket.io/*', {
  compression: uws.DISABLED,
  maxPayloadLength: 1_000_000,
  idleTimeout: 120,
  sendPingsAutomatically: true,
  upgrade(res, req, context) {
    res.upgrade<Conn>(
      { sid: randomBytes(15).toString('base64url'), connected: false },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open(ws) {
    ws.subscribe(PING_TOPIC);
    ws.send(`0{"sid":"${ws.getUserData().sid}","upgrades":[],"pingInterval":${PING_INTERVAL},"pingTimeout":20000,"maxPayload":1000000}`);
  },
  message(ws, message, isBinary) {
    if (isBinary) return void ws.end(1003, 'binary frames are not spoken here');
    onFrame(ws, Buffer.from(message).toString('utf8'));
  },
  close(ws) {
    ws.getUserData().connected = false;
  },
});

publishRoute(app, cfg, publish);

app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end();
});

listenSocket = await listen(app, cfg, 'ceiling');
listening = true;

const pinger = setInterval(() => app.publish(PING_TOPIC, '2', false, false), PING_INTERVAL);
const internal = startInternalServer(cfg, () => listening && redisReady >= 2);

onShutdown(() => {
  clearInterval(pinger);
  internal.close();
  if (listenSocket) uws.us_listen_socket_close(listenSocket as never);
  pub.disconnect();
  sub.disconnect();
});
