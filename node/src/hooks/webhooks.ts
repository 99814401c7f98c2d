// The Backend over HTTP: signed JSON POSTs to BACKEND_URL with a timeout, and a bulkhead per hook (its own
// concurrency budget and circuit breaker; one breaker per RPC method), so one client's failing method can't
// refuse another user's connect. Answers are validated, and refusals become the contract's error codes.
import http from 'node:http';
import https from 'node:https';
import { createSecretKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ClientContext } from '../core/app.js';
import { SbError, type ErrorCode } from '../core/errors.js';
import { formatIssues } from '../core/issues.js';
import type { Backend, ConnectInput, ConnectVerdict } from './backend.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { RetryQueue } from './retry-queue.js';
import { SIGNATURE_HEADER, sign } from './signature.js';

export interface WebhookOptions {
  /** BACKEND_URL: hooks are POSTed to `<url>/connect`, `<url>/rpc/<method>`, … */
  url: string;
  /** WEBHOOK_SECRET: HMAC-SHA256 key of `X-Switchboard-Signature`. */
  secret: string;
  /** Timeout of one call, answer body included. @default 5000 */
  timeoutMs: number;
  /** Calls in flight at once per hook (`/connect`, `/subscribe`, `/publish`, `/rpc`, `/disconnect` each); more answer `unavailable` at once. @default 256 */
  concurrency: number;
  /** Consecutive failures that open a circuit (one per hook, one per RPC method). @default 5 */
  breakerFailures: number;
  /** How long the circuit stays open before a probe. @default 5000 */
  breakerCooldownMs: number;
  /** Retries of a failed `/disconnect`. @default 5 */
  disconnectRetries: number;
  /** First `/disconnect` retry delay (doubles per attempt). @default 500 */
  retryBackoffMs: number;
  /** `/disconnect` calls waiting at most; more are dropped. @default 10000 */
  disconnectQueue: number;
  /** Largest answer body read from the backend. @default 1048576 */
  maxAnswerBytes: number;
}

/** The hook label of metrics: a fixed set, never the RPC method name. */
export type Hook = 'connect' | 'subscribe' | 'rpc' | 'publish' | 'disconnect';

const connectAnswer = z.object({
  // Backends in PHP or SQL land often have numeric ids: accept them as strings.
  user: z.union([z.string().min(1).max(200), z.number().finite()]).transform(String),
  channels: z.array(z.string().min(1).max(200)).max(1000).optional(),
  data: z.unknown().optional(),
});
const errorAnswer = z.object({
  error: z.union([z.string(), z.object({ code: z.string().optional(), message: z.string().optional() })]),
});

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  413: 'too_large',
  429: 'rate_limited',
};

/** A 2xx or 4xx answer that is not what the contract says: the backend is broken, not the client. */
class InvalidAnswer extends SbError {
  constructor(path: string, what: string) {
    super('unavailable', `the backend answered ${path} with ${what}`);
  }
}

interface Answer {
  status: number;
  text: string;
}

/** RPC methods with a breaker of their own; past this, further methods share one (method names come from clients). */
const MAX_METHOD_BREAKERS = 1000;

/** One hook's share of the backend: calls in flight and its breaker(s). */
interface Bulkhead {
  inflight: number;
  breaker: CircuitBreaker;
  /** The hook's latency histogram child, resolved once (prom-client hashes the labels on every unresolved observe). */
  duration: ReturnType<Metrics['webhookDuration']['labels']>;
}

export class Webhooks implements Backend {
  private readonly base: string;
  /** BACKEND_URL taken apart once (a URL parse per call showed in the profile). */
  private readonly target: {
    module: typeof http | typeof https;
    protocol: string;
    hostname: string;
    port: string;
    pathname: string;
    /**
     * The headers every call sends, as [name, value, ...]: Host (as Node would make it) and Basic auth from the URL's
     * credentials. Headers given as an array go out as they are; an object cost a header-name validation, a lower-case
     * copy and a dictionary store per header and call (node:http's setHeader).
     */
    fixedHeaders: readonly string[];
  };
  private readonly bulkheads: Record<Hook, Bulkhead>;
  /** Per RPC method: a method that fails or hangs opens its own circuit and leaves the others alone. */
  private readonly methodBreakers = new Map<string, CircuitBreaker>();
  private readonly disconnects: RetryQueue<{ user: string | null; reason: string }>;
  private readonly log: Logger;
  private readonly agent: http.Agent;
  /** WEBHOOK_SECRET imported once as an HMAC key. */
  private readonly key: KeyObject;

  constructor(
    private readonly opts: WebhookOptions,
    private readonly metrics: Metrics,
    log: Logger,
  ) {
    this.log = log.child({ module: 'webhooks' });
    this.key = createSecretKey(Buffer.from(opts.secret, 'utf8'));
    this.base = opts.url.replace(/\/+$/, '');
    const u = new URL(this.base);
    this.target = {
      module: u.protocol === 'https:' ? https : http,
      protocol: u.protocol,
      hostname: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port,
      pathname: u.pathname.replace(/\/+$/, ''),
      // u.host: the hostname (IPv6 in brackets) and the port unless it is the scheme's default, as Node's Host header.
      fixedHeaders: [
        'host',
        u.host,
        ...(u.username
          ? [
              'authorization',
              `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`,
            ]
          : []),
        'content-type',
        'application/json',
        'user-agent',
        'switchboard',
      ],
    };
    // Kept-alive, bounded connections: global fetch opened a new connection per concurrent call under load
    // (thousands of sockets and 250 ms p99 at 2,000 RPC/s in `npm run bench`); a pool of reused ones doesn't.
    // Room for every hook's budget at once: a pool smaller than their sum would queue /connect behind hung /rpc calls.
    const hooks: Hook[] = ['connect', 'subscribe', 'publish', 'rpc', 'disconnect'];
    // Idle sockets are kept (up to one hook's budget): closing the ones past a small pool after every burst made the
    // node open and close backend connections all the time (connect/close syscalls in the profile, 1 s p99 stalls).
    // LIFO reuse keeps the busy few warm; the backend's keep-alive timeout closes the rest once a burst is over.
    const agentOptions = {
      keepAlive: true,
      maxSockets: opts.concurrency * hooks.length,
      maxFreeSockets: opts.concurrency,
      scheduling: 'lifo' as const,
    };
    this.agent = this.base.startsWith('https:') ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.bulkheads = Object.fromEntries(
      hooks.map((h) => [h, { inflight: 0, breaker: this.newBreaker(h), duration: metrics.webhookDuration.labels({ hook: h }) }]),
    ) as Record<Hook, Bulkhead>;
    this.disconnects = new RetryQueue(
      // A few at a time: a mass disconnect (a drain) must not take every slot from /connect and /rpc.
      {
        capacity: opts.disconnectQueue,
        parallel: Math.max(1, Math.min(16, Math.floor(opts.concurrency / 4))),
        retries: opts.disconnectRetries,
        backoffMs: opts.retryBackoffMs,
      },
      async (body) => {
        await this.call('disconnect', '/disconnect', body, () => undefined);
      },
      {
        dropped: (_job, why, err) => {
          this.metrics.webhookCells.cell('disconnect', 'dropped').n++;
          this.log.warn({ why, err: err instanceof Error ? { message: err.message } : undefined }, '/disconnect webhook dropped');
        },
      },
    );
  }

  async connect(input: ConnectInput): Promise<ConnectVerdict> {
    return this.call('connect', '/connect', input, (a) => {
      if (ok(a)) return parseAnswer('/connect', a.text, connectAnswer);
      throw refusal('/connect', a, 'the backend refused the connection');
    });
  }

  async subscribe(ctx: ClientContext, channel: string): Promise<boolean> {
    return this.call('subscribe', '/subscribe', { user: ctx.user ?? null, channel }, (a) => allowed('/subscribe', a));
  }

  async publish(ctx: ClientContext, channel: string, event: string, data: unknown): Promise<boolean> {
    return this.call('publish', '/publish', { user: ctx.user ?? null, channel, event, data }, (a) => allowed('/publish', a));
  }

  async rpc(ctx: ClientContext, method: string, params: unknown): Promise<unknown> {
    const path = `/rpc/${encodeURIComponent(method)}`;
    const interpret = (a: Answer) => {
      if (ok(a)) return rpcResult(path, a.text);
      throw refusal(path, a, a.status === 404 ? `the backend has no RPC method "${method}"` : `the backend refused ${method}`);
    };
    return this.call('rpc', path, { user: ctx.user ?? null, params }, interpret, this.methodBreaker(method));
  }

  disconnect(ctx: ClientContext, reason: string): void {
    this.disconnects.push({ user: ctx.user ?? null, reason });
  }

  /** At shutdown: gives queued `/disconnect` calls (a drain makes many) up to `ms` to go out, then abandons the rest. */
  async flush(ms: number) {
    const deadline = Date.now() + ms;
    while (this.disconnects.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (this.disconnects.size > 0) this.log.warn({ pending: this.disconnects.size }, 'shutting down with /disconnect webhooks undelivered');
    this.disconnects.close();
    this.agent.destroy();
  }

  /**
   * One signed POST. `interpret` turns a 2xx/4xx answer into the hook's result or an SbError; 5xx, timeouts
   * and network errors are failures of the backend (they count towards the hook's, or the RPC method's, breaker).
   */
  private async call<T>(
    hook: Hook,
    path: string,
    body: unknown,
    interpret: (a: Answer) => T,
    breaker = this.bulkheads[hook].breaker,
  ): Promise<T> {
    const bulkhead = this.bulkheads[hook];
    const raw = JSON.stringify(body);
    if (bulkhead.inflight >= this.opts.concurrency) {
      this.metrics.webhookCells.cell(hook, 'overloaded').n++;
      throw new SbError(
        'unavailable',
        `more than ${this.opts.concurrency} backend calls in flight to /${hook} (WEBHOOK_CONCURRENCY, per hook)`,
      );
    }
    const ticket = breaker.tryAcquire();
    if (!ticket) {
      this.metrics.webhookCells.cell(hook, 'circuit_open').n++;
      const wait = breaker.retryInMs();
      const what = hook === 'rpc' ? path : `/${hook}`;
      throw new SbError(
        'unavailable',
        wait > 0
          ? `the backend is failing ${what}; calls are paused for ${Math.ceil(wait / 100) / 10} s (circuit open)`
          : `the backend is failing ${what}; one probe call is testing it (circuit half-open)`,
      );
    }
    bulkhead.inflight++;
    const timer = bulkhead.duration.startTimer();
    let outcome = 'ok';
    try {
      let a: Answer;
      try {
        a = await this.post(path, raw);
      } catch (err) {
        if (err instanceof InvalidAnswer) {
          // It answered (too much): the backend is up, the answer is wrong.
          breaker.success(ticket);
          outcome = 'invalid_answer';
          throw err;
        }
        breaker.failure(ticket);
        if (isTimeout(err)) {
          outcome = 'timeout';
          throw new SbError('timeout', `the backend did not answer ${path} within ${this.opts.timeoutMs} ms`);
        }
        outcome = 'unreachable';
        throw new SbError('unavailable', `the backend is unreachable: ${describe(err)}`);
      }
      if (a.status >= 500) {
        breaker.failure(ticket);
        outcome = 'server_error';
        throw new SbError('unavailable', `the backend answered ${path} with ${a.status}`);
      }
      breaker.success(ticket);
      if (a.status >= 300 && a.status < 400) {
        outcome = 'invalid_answer';
        throw new InvalidAnswer(path, `a redirect (${a.status}); BACKEND_URL must point at the webhooks themselves`);
      }
      outcome = a.status >= 400 ? 'refused' : 'ok';
      try {
        return interpret(a);
      } catch (err) {
        if (err instanceof InvalidAnswer) outcome = 'invalid_answer';
        throw err;
      }
    } finally {
      bulkhead.inflight--;
      timer();
      this.metrics.webhookCells.cell(hook, outcome).n++;
      if (outcome !== 'ok' && outcome !== 'refused') this.log.debug({ hook, outcome }, 'webhook call failed');
    }
  }

  private newBreaker(hook: Hook, method?: string): CircuitBreaker {
    const what = method === undefined ? `/${hook}` : `/rpc/${method}`;
    return new CircuitBreaker(
      { failureThreshold: this.opts.breakerFailures, cooldownMs: this.opts.breakerCooldownMs },
      (state, failures) => {
        if (state === 'open')
          this.log.warn(
            { hook, failures, cooldownMs: this.opts.breakerCooldownMs },
            `backend failing ${what}: circuit open, these calls fail fast`,
          );
        else if (state === 'closed') this.log.info({ hook }, `backend answers ${what} again: circuit closed`);
      },
    );
  }

  private methodBreaker(method: string): CircuitBreaker {
    let b = this.methodBreakers.get(method);
    if (b) return b;
    if (this.methodBreakers.size >= MAX_METHOD_BREAKERS) {
      // Forget healthy ones first; a client inventing names can't push a failing method's open circuit out.
      for (const [m, x] of this.methodBreakers) if (x.state === 'closed' && x.isClean()) this.methodBreakers.delete(m);
      if (this.methodBreakers.size >= MAX_METHOD_BREAKERS) return this.bulkheads.rpc.breaker;
    }
    this.methodBreakers.set(method, (b = this.newBreaker('rpc', method)));
    return b;
  }

  private post(path: string, raw: string): Promise<Answer> {
    const target = this.target;
    const pathname = target.pathname + path;
    const limit = this.opts.maxAnswerBytes;
    return new Promise<Answer>((resolve, reject) => {
      const req = target.module.request(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port,
          path: pathname,
          method: 'POST',
          agent: this.agent,
          headers: target.fixedHeaders.concat(
            'content-length',
            String(Buffer.byteLength(raw)),
            SIGNATURE_HEADER,
            sign(this.key, { method: 'POST', path: pathname, body: raw }),
          ),
        },
        (res) => {
          const declared = Number(res.headers['content-length'] ?? 0);
          if (declared > limit) {
            res.destroy();
            return reject(new InvalidAnswer(path, `an answer of ${declared} bytes; at most ${limit} are read`));
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > limit) {
              res.destroy();
              reject(new InvalidAnswer(path, `an answer over ${limit} bytes`));
            } else chunks.push(chunk);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (err) => reject(wrap(err)));
        },
      );
      // One deadline for the whole exchange, answer body included (a plain timer: an AbortSignal per call cost
      // ~5 % of a node's CPU at 2,000 calls/s). Redirects are not followed.
      const deadline = setTimeout(() => {
        reject(timeoutError());
        req.destroy();
      }, this.opts.timeoutMs);
      req.on('close', () => clearTimeout(deadline));
      req.on('error', (err) => reject(wrap(err)));
      req.end(raw);
    });
  }
}

function ok(a: Answer) {
  return a.status >= 200 && a.status < 300;
}

/** `/subscribe` and `/publish`: 2xx allows, 401/403 refuses, other 4xx is an error for the client. */
function allowed(path: string, a: Answer): boolean {
  if (ok(a)) return true;
  if (a.status === 401 || a.status === 403) return false;
  throw refusal(path, a, `the backend answered ${path} with ${a.status}`);
}

/** A 4xx answer as the client's error: the code from the status, the message from `{ error }` if any. */
function refusal(path: string, a: Answer, fallback: string): SbError {
  if (a.status < 400 || a.status >= 500) return new InvalidAnswer(path, `status ${a.status}`);
  return new SbError(STATUS_CODES[a.status] ?? 'bad_request', backendMessage(a.text) ?? fallback);
}

function backendMessage(text: string): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = errorAnswer.safeParse(v);
  if (!r.success) return undefined;
  const m = typeof r.data.error === 'string' ? r.data.error : (r.data.error.message ?? r.data.error.code);
  return m?.slice(0, 500) || undefined;
}

/** `{ result? }` from a 2xx `/rpc/<method>` answer: any JSON object (a typed check, not a schema, on every call). */
function rpcResult(path: string, text: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InvalidAnswer(path, `invalid JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new InvalidAnswer(
      path,
      `an unexpected shape: expected an object like {"result": …}, got ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`,
    );
  return (v as { result?: unknown }).result ?? null;
}

function parseAnswer<S extends z.ZodType>(path: string, text: string, schema: S): z.output<S> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InvalidAnswer(path, `invalid JSON: ${(err as Error).message}`);
  }
  const r = schema.safeParse(v);
  if (!r.success) throw new InvalidAnswer(path, `an unexpected shape: ${formatIssues(r.error)}`);
  return r.data;
}

/** Node's request errors in the shape describe()/isTimeout() read (a fetch-like cause). */
function wrap(err: Error): Error {
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return timeoutError();
  return Object.assign(new Error(err.message), { cause: err });
}

function timeoutError(): Error {
  return Object.assign(new Error('the backend did not answer in time'), { name: 'TimeoutError' });
}

function isTimeout(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}
