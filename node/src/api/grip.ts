// `POST /publish/`: Pushpin's GRIP publish endpoint, so existing GRIP publishers (e.g. @fanoutio/grip's
// Publisher) work unchanged. Each item becomes one publication with event `message` on its channel.
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Bus } from '../bus/bus.js';
import type { Publisher } from '../channels/publisher.js';
import { assertOrigin, type OriginPolicy } from '../limits/origin.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { SbError } from '../core/errors.js';
import { formatIssues } from '../core/issues.js';
import { countReplies, preflight, readJsonBody, route } from '../transport/http.js';
import { bearer, keyMatches } from './auth.js';
import type { ApiOptions } from './http-api.js';

export interface GripDeps {
  options: Omit<ApiOptions, 'nodeId'>;
  /** The node's one Origin policy (ALLOWED_ORIGINS) and its CORS answers. */
  origins: OriginPolicy;
  bus: Bus;
  publisher: Publisher;
  metrics: Metrics;
  log: Logger;
}

/** One GRIP format: text `content`, or base64 `content-bin`; `action: "close"` items carry no message. */
const format = z.object({ content: z.unknown().optional(), 'content-bin': z.string().optional(), action: z.string().optional() });
const gripBody = z.object({
  items: z
    .array(
      z.object({
        channel: z.string(),
        id: z.string().max(200).optional(),
        'prev-id': z.string().max(200).optional(),
        // Other formats (http-response, …) are accepted and ignored: nothing here long-polls.
        formats: z.record(z.string(), z.unknown()),
      }),
    )
    .min(1)
    .max(1000),
});

/** The event name GRIP items are published under (Pushpin's ws-message is a plain WebSocket message). */
export const GRIP_EVENT = 'message';

export interface GripMountOptions {
  /**
   * No key: for the internal port only (INTERNAL_GRIP_PUBLISH), where reaching the port is the access rule,
   * as with Pushpin's publish port. @default false
   */
  keyless?: boolean;
}

/** The routes mountGrip needs: a uWS app, or the internal port's node:http one. */
export interface PostRoutes {
  post(pattern: string, handler: ReturnType<typeof route>): unknown;
}

export function mountGrip(app: TemplatedApp | PostRoutes, d: GripDeps, opts: GripMountOptions = {}) {
  const log = d.log.child({ module: 'grip' });
  const handler = route(log, async (req, reply) => {
    countReplies(reply, d.metrics, 'grip');
    assertOrigin(d.origins, req, d.metrics);
    reply.headers = d.origins.corsHeaders(req.headers);
    // The key before the body: uWS hands the body only to a reader attached before the handler first yields, so
    // the check is synchronous, and a refused request is answered and hung up on without reading a byte of it.
    try {
      // GRIP_URL-style `?key=` (what pushpin-publish sends): a key in a URL ends up in logs and histories.
      if (!opts.keyless && req.query.has('key'))
        throw new SbError(
          'unauthorized',
          'a key in the URL is never accepted: send Authorization: Bearer <key>, or publish on the internal port (INTERNAL_GRIP_PUBLISH)',
        );
      if (!opts.keyless) authorize(d.options.apiKeys, req.headers);
    } catch (err) {
      reply.closeAfter = true;
      throw err;
    }
    const body = gripBody.safeParse(await readJsonBody(req, d.options.maxHttpBodyBytes));
    if (!body.success) throw new SbError('bad_request', formatIssues(body.error));
    // Validate every item before publishing any: a bad request publishes nothing.
    const pubs: { channel: string; data: unknown; json: string; id?: string }[] = [];
    for (const [i, item] of body.data.items.entries()) {
      const content = messageOf(item.formats, i);
      if (content === undefined) continue;
      const p = d.publisher.validate(item.channel, GRIP_EVENT, content);
      pubs.push({ channel: p.channel, data: p.data, json: p.json, id: item.id });
    }
    const ids: string[] = [];
    let local = false;
    for (const p of pubs) {
      // GRIP item ids make retried publishes harmless, as Pushpin's do: one publication per channel and id.
      const once = p.id === undefined ? undefined : { key: `grip:${p.channel}:${p.id}`, ttlSeconds: d.options.idempotencyWindowSeconds };
      const r = await d.publisher.publish(p.channel, GRIP_EVENT, p.data, 'grip', once, false, p.json);
      if (r.duplicate) continue;
      ids.push(r.id);
      local ||= r.local === true;
    }
    if (/\bapplication\/json\b/.test(req.headers.accept ?? '')) reply.json(200, { ok: true, ids, ...(local ? { local: true } : {}) });
    else reply.send(200, 'Published\n', { 'content-type': 'text/plain; charset=utf-8' });
  });
  // Pushpin's path is /publish/; GRIP clients append `publish/` to the control URI.
  app.post('/publish/', handler);
  app.post('/publish', handler);
  if ('options' in app) {
    app.options('/publish/', preflight(log, d.origins, d.metrics));
    app.options('/publish', preflight(log, d.origins, d.metrics));
  }
}

/**
 * The message of one item: `ws-message` content (what Socket.IO subscribers get), else `http-stream` content
 * (SSE). undefined when the item has neither (close actions, http-response only).
 */
function messageOf(formats: Record<string, unknown>, i: number): unknown {
  for (const name of ['ws-message', 'http-stream']) {
    if (formats[name] === undefined) continue;
    const f = format.safeParse(formats[name]);
    if (!f.success) throw new SbError('bad_request', `items.${i}.formats.${name}: ${formatIssues(f.error)}`);
    if (f.data.action === 'close') continue;
    if (f.data.content !== undefined) return f.data.content;
    if (f.data['content-bin'] !== undefined) return decodeBytes(f.data['content-bin'], `items.${i}.formats.${name}`);
  }
  return undefined;
}

/** `content-bin` is a binary message (Pushpin sends it as a binary frame): published as bytes. */
function decodeBytes(b64: string, where: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 === 1) throw new SbError('bad_request', `${where}: content-bin must be base64`);
  return Buffer.from(b64, 'base64');
}

/** A Bearer API key, or a GRIP control JWT (HS256, any `iss`) signed with one of the API keys. Synchronous. */
function authorize(keys: readonly string[] | undefined, headers: Record<string, string>) {
  if (!keys || keys.length === 0) throw new SbError('unauthorized', 'the HTTP API is disabled: set API_KEYS to enable it');
  const token = bearer(headers);
  if (!token) throw new SbError('unauthorized', 'send Authorization: Bearer <API key>, or a GRIP JWT signed with one');
  if (keyMatches(keys, token)) return;
  if (token.split('.').length === 3) {
    const verdict = verifyGripJwt(token, keys);
    if (verdict === 'ok') return;
    if (verdict === 'expired') throw new SbError('unauthorized', 'the GRIP JWT has expired');
    throw new SbError('unauthorized', 'the GRIP JWT is not signed (HS256) with any of API_KEYS');
  }
  throw new SbError('unauthorized', 'unknown API key');
}

/** HS256 JWS check with node:crypto (jose has no synchronous verify): signature, then `exp` / `nbf`. */
export function verifyGripJwt(token: string, keys: readonly string[], nowSeconds = Date.now() / 1000): 'ok' | 'expired' | 'invalid' {
  const [h, p, sig] = token.split('.') as [string, string, string];
  let header: { alg?: unknown };
  let payload: { exp?: unknown; nbf?: unknown };
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return 'invalid';
  }
  if (header?.alg !== 'HS256' || typeof payload !== 'object' || payload === null) return 'invalid';
  const given = Buffer.from(sig, 'base64url');
  const signed = keys.some((k) => {
    const mac = createHmac('sha256', k).update(`${h}.${p}`).digest();
    return mac.length === given.length && timingSafeEqual(mac, given);
  });
  if (!signed) return 'invalid';
  if (typeof payload.exp === 'number' && payload.exp <= nowSeconds) return 'expired';
  if (typeof payload.nbf === 'number' && payload.nbf > nowSeconds) return 'invalid';
  return 'ok';
}
