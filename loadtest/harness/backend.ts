// The bench's backend, the simplest a backend could be. For Switchboard's webhooks (BACKEND_URL, the rpc scenario):
// POST /rpc/<method> {user, params} → {result: params}; /connect → {user}; /subscribe, /disconnect → {}. Behind
// Pushpin (the sse-fanout scenario): GET /sse?channel=a&channel=b answers with GRIP hold headers, so Pushpin holds
// the request open as an HTTP stream subscribed to those channels and GRIP publishes reach it.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 0);
let users = 0;

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    return;
  }
  if (req.method === 'GET' && req.url?.startsWith('/sse?')) {
    const channels = new URL(req.url, 'http://backend').searchParams.getAll('channel');
    res
      .writeHead(200, {
        'content-type': 'text/event-stream',
        'grip-hold': 'stream',
        'grip-channel': channels.join(', '),
        // Pushpin's keep-alive comment, as Switchboard sends one (SSE_KEEPALIVE_MS, 15 s by default).
        'grip-keep-alive': ':\\n\\n; format=cstring; timeout=15',
      })
      .end(': connected\n\n');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: { params?: unknown } = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as typeof body;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"body is not JSON"}');
      return;
    }
    const url = req.url ?? '/';
    let out: unknown;
    if (url.startsWith('/rpc/')) out = { result: body.params ?? null };
    else if (url === '/connect') out = { user: `bench-${++users}` };
    else if (url === '/subscribe' || url === '/disconnect') out = {};
    else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
