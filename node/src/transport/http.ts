// Small layer over uWS HTTP: copies the request (uWS invalidates it after the handler returns), reads bodies
// with a limit, answers once, survives aborted requests, and turns thrown errors into JSON answers.
import { STATUS_CODES } from 'node:http';
import type { HttpRequest as UwsRequest, HttpResponse as UwsResponse } from '@trufflesuite/uws-js-unofficial';
import { SbError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';

export interface Request {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  /** Lower-case header names. */
  headers: Record<string, string>;
  /** Peer address as uWS sees it (the proxy, behind HAProxy). */
  remoteAddress: string;
  /** Reads the body; rejects with `too_large` past `limit` bytes. */
  body(limit: number): Promise<Buffer>;
}

export class Reply {
  aborted = false;
  done = false;
  /** Sent with every answer (CORS headers of an allowed cross-origin request). */
  headers: Record<string, string> = {};
  /** Close the connection after the answer (a body we will not read). */
  closeAfter = false;
  private abortHandlers: (() => void)[] = [];
  /** countReplies(): every answer is counted under this route (fields, not a wrapper: no closures per request). */
  private countRoute: string | undefined;
  private countMetrics: Metrics | undefined;
  constructor(readonly res: UwsResponse) {}

  onAbort(fn: () => void) {
    this.abortHandlers.push(fn);
  }
  /** @internal countReplies() */
  countAs(metrics: Metrics, route: string) {
    this.countMetrics = metrics;
    this.countRoute = route;
  }
  /** @internal */
  abort() {
    this.aborted = true;
    for (const fn of this.abortHandlers) fn();
  }

  send(status: number, body: string | Buffer, headers: Record<string, string> = {}) {
    if (this.countMetrics) {
      this.countMetrics.httpCells.cell(this.countRoute!, String(status)).n++;
      if (status === 400 || status === 413) this.countMetrics.badInput.inc({ kind: `http_${status}` });
    }
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.cork(() => {
      this.res.writeStatus(`${status} ${STATUS_CODES[status] ?? ''}`);
      this.writeHeaders(headers);
      this.res.end(body, this.closeAfter);
    });
  }

  /** `this.headers`, then `headers` (which win on a name both have), without building a merged copy per answer. */
  private writeHeaders(headers: Record<string, string>) {
    for (const k in this.headers) if (!Object.hasOwn(headers, k)) this.res.writeHeader(k, this.headers[k]!);
    for (const k in headers) this.res.writeHeader(k, headers[k]!);
  }

  json(status: number, value: unknown, headers: Record<string, string> = {}) {
    this.send(status, JSON.stringify(value), {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      ...headers,
    });
  }

  error(err: SbError, headers: Record<string, string> = {}) {
    this.json(err.httpStatus, { error: { code: err.code, message: err.message } }, headers);
  }

  /** Starts a streamed response (SSE). Returns false when the client has gone. */
  startStream(status: number, headers: Record<string, string>): boolean {
    if (this.aborted || this.done) return false;
    this.res.cork(() => {
      this.res.writeStatus(`${status} ${STATUS_CODES[status] ?? ''}`);
      this.writeHeaders(headers);
    });
    return true;
  }

  /** Writes a chunk of a streamed response; returns uWS's backpressure verdict (false: buffered). */
  write(chunk: string): boolean {
    if (this.aborted || this.done) return false;
    let ok = false;
    this.res.cork(() => (ok = this.res.write(chunk)));
    return ok;
  }

  bufferedBytes(): number {
    return this.aborted || this.done ? 0 : this.res.getWriteOffset();
  }

  end() {
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.cork(() => this.res.end());
  }

  /** Closes the connection at once, dropping what is still buffered (a reader too slow to end politely). */
  destroy() {
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.close();
  }

  /** Calls `fn` whenever a backpressured stream can take more; `fn` returns whether it wrote everything. */
  onWritable(fn: () => boolean) {
    this.res.onWritable(() => (this.aborted || this.done ? true : fn()));
  }
}

export type Handler = (req: Request, reply: Reply) => void | Promise<void>;

/** What a preflight needs of the Origin policy (limits/origin.ts). */
export interface PreflightPolicy {
  allows(headers: Record<string, string>, peer: string): boolean;
  preflightHeaders(headers: Record<string, string>): Record<string, string>;
}

/** Answers CORS preflights (OPTIONS): 204 with the allowed methods and headers for an allowed origin, else 403. */
export function preflight(log: Logger, policy: PreflightPolicy, metrics: Metrics): ReturnType<typeof route> {
  return route(log, (req, reply) => {
    if (!policy.allows(req.headers, req.remoteAddress)) {
      metrics.rejections.inc({ reason: 'origin' });
      throw new SbError('forbidden', `origin ${req.headers.origin} is not allowed (ALLOWED_ORIGINS)`);
    }
    reply.send(204, '', policy.preflightHeaders(req.headers));
  });
}

function readBody(res: UwsResponse, reply: Reply, declared: number, limit: number): Promise<Buffer> {
  if (declared > limit) return Promise.reject(new SbError('too_large', `body is ${declared} bytes; the limit is ${limit}`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    reply.onAbort(() => reject(new SbError('bad_request', 'request aborted')));
    res.onData((ab, isLast) => {
      if (size > limit) return;
      size += ab.byteLength;
      if (size > limit) {
        reject(new SbError('too_large', `body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(Buffer.from(ab.slice(0)));
      if (isLast) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
  });
}

/** A request copied out of uWS's (valid only until the handler first yields). A class: no closures per request. */
class RouteRequest implements Request {
  private parsedQuery?: URLSearchParams;
  private peer?: string;
  constructor(
    readonly method: string,
    readonly path: string,
    private readonly rawQuery: string,
    readonly headers: Record<string, string>,
    private readonly res: UwsResponse,
    private readonly reply: Reply,
  ) {}

  /**
   * Read from uWS when a handler first asks (a getpeername() system call each time uWS is asked, which the publish
   * API, with no Origin header, never needs). Handlers read it before their first await, while the response is
   * live; asked only after the answer or an abort, it is '' (uWS's response object is gone by then).
   */
  get remoteAddress(): string {
    if (this.peer === undefined) {
      if (this.reply.aborted || this.reply.done) return '';
      this.peer = Buffer.from(this.res.getRemoteAddressAsText()).toString();
    }
    return this.peer;
  }

  /** Parsed when a handler reads it (SSE, GRIP); the publish API never does. */
  get query(): URLSearchParams {
    return (this.parsedQuery ??= new URLSearchParams(this.rawQuery));
  }

  body(limit: number): Promise<Buffer> {
    return readBody(this.res, this.reply, Number(this.headers['content-length'] ?? 0) || 0, limit);
  }
}

/** Wraps a handler for uWS: copies the request, registers onAborted, and answers errors as JSON. */
export function route(log: Logger, handler: Handler, onError?: (err: unknown) => void) {
  return (res: UwsResponse, ureq: UwsRequest) => {
    const reply = new Reply(res);
    res.onAborted(() => reply.abort());
    const headers: Record<string, string> = {};
    ureq.forEach((k, v) => (headers[k] = v));
    const req = new RouteRequest(ureq.getMethod().toUpperCase(), ureq.getUrl(), ureq.getQuery() ?? '', headers, res, reply);
    const fail = (err: unknown) => {
      if (err instanceof SbError) return reply.error(err);
      onError?.(err);
      log.error({ err, path: req.path }, 'HTTP handler failed');
      reply.error(new SbError('internal', 'internal error'));
    };
    try {
      const r = handler(req, reply);
      if (r && typeof (r as Promise<void>).then === 'function') (r as Promise<void>).catch(fail);
    } catch (err) {
      fail(err);
    }
  };
}

/** Reads a JSON body of at most `limit` bytes; a content-type other than JSON is `bad_request`. */
export async function readJsonBody(req: Request, limit: number): Promise<unknown> {
  const ct = req.headers['content-type'] ?? '';
  if (ct && !/^application\/(.+\+)?json\b/i.test(ct)) throw new SbError('bad_request', `content-type must be application/json, not ${ct}`);
  return parseJson(await req.body(limit));
}

/** Counts every answer of `reply` under `route`, and 400/413 answers as bad input, whichever path sends it. */
export function countReplies(reply: Reply, metrics: Metrics, route: string) {
  reply.countAs(metrics, route);
}

export function parseJson(buf: Buffer): unknown {
  if (buf.length === 0) throw new SbError('bad_request', 'body is empty; send JSON');
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new SbError('bad_request', `body is not valid JSON: ${(err as Error).message}`);
  }
}
