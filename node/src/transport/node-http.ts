// The internal port's server: node:http behind the small part of uWS's app API that route() and Reply use,
// so the same handlers run on it. Why not uWS: uWebSockets.js 20.x parses only HTTP/1.1 and never answers an
// HTTP/1.0 request (uNetworking/uWebSockets#1547; later builds answer 505), and monitoring probes and
// Pushpin's own `pushpin-publish` speak HTTP/1.0. The internal port carries little traffic, so node:http's
// cost does not matter there.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

type UwsLikeHandler = (res: never, req: never) => void;

interface RouteEntry {
  method: string;
  path: string;
  prefix: boolean;
  handler: UwsLikeHandler;
}

export class NodeHttpApp {
  private readonly routes: RouteEntry[] = [];
  private server: http.Server | undefined;

  get(path: string, handler: UwsLikeHandler) {
    return this.add('GET', path, handler);
  }
  post(path: string, handler: UwsLikeHandler) {
    return this.add('POST', path, handler);
  }
  any(path: string, handler: UwsLikeHandler) {
    return this.add('*', path, handler);
  }

  private add(method: string, path: string, handler: UwsLikeHandler) {
    const prefix = path.endsWith('/*');
    this.routes.push({ method, path: prefix ? path.slice(0, -1) : path, prefix, handler });
    return this;
  }

  /** As uWS: exact routes before wildcard ones, a method's own before `any`. */
  private match(method: string, path: string): RouteEntry | undefined {
    const ok = (r: RouteEntry) => r.method === method || r.method === '*';
    return (
      this.routes.find((r) => !r.prefix && r.path === path && r.method === method) ??
      this.routes.find((r) => !r.prefix && r.path === path && ok(r)) ??
      this.routes.filter((r) => r.prefix && path.startsWith(r.path) && ok(r)).sort((a, b) => b.path.length - a.path.length)[0]
    );
  }

  listen(host: string, port: number, cb: (socket: http.Server | false) => void) {
    const server = http.createServer((req, res) => this.serve(req, res));
    server.keepAliveTimeout = 5000;
    server.requestTimeout = 30_000;
    server.once('error', () => cb(false));
    server.listen(port, host, () => {
      this.server = server;
      cb(server);
    });
  }

  port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  close() {
    this.server?.close();
    this.server?.closeAllConnections();
    this.server = undefined;
  }

  private serve(req: http.IncomingMessage, out: http.ServerResponse) {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    // pushpin-publish joins its spec and `/publish/` into `//publish/`.
    const path = (q < 0 ? raw : raw.slice(0, q)).replace(/^\/{2,}/, '/');
    const query = q < 0 ? '' : raw.slice(q + 1);
    const method = req.method ?? 'GET';
    const entry = this.match(method === 'HEAD' ? 'GET' : method, path);
    if (!entry) {
      out.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"no route"}}');
      return;
    }
    const res = {
      cork(fn: () => void) {
        fn();
        return res;
      },
      writeStatus(status: string) {
        const sp = status.indexOf(' ');
        out.statusCode = Number(sp < 0 ? status : status.slice(0, sp));
        if (sp > 0 && status.slice(sp + 1)) out.statusMessage = status.slice(sp + 1);
        return res;
      },
      writeHeader(k: string, v: string) {
        out.setHeader(k, v);
        return res;
      },
      end(body?: string | Buffer) {
        out.end(body);
        return res;
      },
      write(chunk: string | Buffer) {
        return out.write(chunk);
      },
      getWriteOffset() {
        return out.writableLength;
      },
      onAborted(fn: () => void) {
        out.once('close', () => {
          if (!out.writableFinished) fn();
        });
        return res;
      },
      onData(fn: (chunk: ArrayBuffer, isLast: boolean) => void) {
        req.on('data', (c: Buffer) => fn(c.buffer.slice(c.byteOffset, c.byteOffset + c.byteLength) as ArrayBuffer, false));
        req.once('end', () => fn(new ArrayBuffer(0), true));
        return res;
      },
      getRemoteAddressAsText() {
        return Buffer.from(req.socket.remoteAddress ?? '');
      },
    };
    const ureq = {
      forEach(cb: (k: string, v: string) => void) {
        for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) cb(k, Array.isArray(v) ? v.join(', ') : v);
      },
      getQuery: () => query,
      getMethod: () => method.toLowerCase(),
      getUrl: () => path,
      getHeader: (k: string) => {
        const v = req.headers[k];
        return Array.isArray(v) ? v.join(', ') : (v ?? '');
      },
    };
    entry.handler(res as never, ureq as never);
  }
}
