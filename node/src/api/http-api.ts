// The HTTP API on the public port: publish, channel info, cluster stats. JSON in and out.
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import type { Server } from 'socket.io';
import { z } from 'zod';
import type { Bus } from '../bus/bus.js';
import { decodeData } from '../core/codec.js';
import { assertChannel } from '../channels/names.js';
import type { Publisher } from '../channels/publisher.js';
import { presenceOf } from '../channels/presence.js';
import type { ChannelRules } from '../channels/rules.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { SbError } from '../core/errors.js';
import { formatIssues } from '../core/issues.js';
import { countReplies, preflight, readJsonBody, route, type Handler } from '../transport/http.js';
import { requireApiKey } from './auth.js';
import { assertOrigin, type OriginPolicy } from '../limits/origin.js';

/** What the HTTP API (and GRIP's endpoint) need to know. */
export interface ApiOptions {
  /** Keys accepted as `Authorization: Bearer <key>` (API_KEYS); unset or empty: every call answers 401. */
  apiKeys?: readonly string[];
  /** Largest request body (MAX_HTTP_BODY_BYTES). @default 1048576 */
  maxHttpBodyBytes: number;
  /** How long an `Idempotency-Key` is remembered (IDEMPOTENCY_WINDOW_S). @default 600 */
  idempotencyWindowSeconds: number;
  /** This node's name in `/api/node` (NODE_ID). @default hostname-pid */
  nodeId: string;
}

export interface ApiDeps {
  options: ApiOptions;
  /** The node's one Origin policy (ALLOWED_ORIGINS) and its CORS answers. */
  origins: OriginPolicy;
  io: Server;
  bus: Bus;
  publisher: Publisher;
  rules: ChannelRules;
  metrics: Metrics;
  log: Logger;
  /** Local connections (all transports) and local SSE subscribers of a channel. */
  localConnections(): number;
  sseSubscribers(channel: string): number;
}

export const publishBody = z
  .object({
    channel: z.string().optional(),
    channels: z.array(z.string()).min(1).max(100).optional(),
    event: z.string(),
    data: z.unknown().optional(),
    /** Drop for subscribers that are falling behind instead of closing them; not kept in history. */
    volatile: z.boolean().optional(),
  })
  .strict()
  .refine((b) => (b.channel === undefined) !== (b.channels === undefined), { message: 'give exactly one of `channel` or `channels`' });

type PublishBody = z.infer<typeof publishBody>;
const PUBLISH_KEYS = new Set(['channel', 'channels', 'event', 'data', 'volatile']);

/**
 * publishBody's answer for a body it accepts, without zod's parse: a few typed checks that accept exactly what the
 * schema accepts (the usual request: one channel, an event, data). Anything else is left to zod (undefined here),
 * which refuses it with its own message, so refusals read the same whichever way a body came.
 */
export function plainPublishBody(b: unknown): PublishBody | undefined {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return undefined;
  const o = b as Record<string, unknown>;
  for (const k in o) if (!PUBLISH_KEYS.has(k)) return undefined;
  if (typeof o.event !== 'string' || (o.volatile !== undefined && typeof o.volatile !== 'boolean')) return undefined;
  if (o.channels !== undefined || typeof o.channel !== 'string') return undefined;
  return o as PublishBody;
}

function readPublishBody(raw: unknown): PublishBody {
  const plain = plainPublishBody(raw);
  if (plain) return plain;
  const parsed = publishBody.safeParse(raw);
  if (!parsed.success) throw new SbError('bad_request', formatIssues(parsed.error));
  return parsed.data;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export function mountApi(app: TemplatedApp, d: ApiDeps) {
  const log = d.log.child({ module: 'api' });
  /** An API route: every answer counted under `name`; Origin, then the API key, checked before `h` runs. */
  const keyed = (name: string, h: Handler) =>
    route(log, async (req, reply) => {
      countReplies(reply, d.metrics, name);
      assertOrigin(d.origins, req, d.metrics);
      reply.headers = d.origins.corsHeaders(req.headers);
      try {
        requireApiKey(d.options.apiKeys, req.headers);
      } catch (err) {
        reply.closeAfter = true; // refused before its body: hang up rather than read it
        throw err;
      }
      await h(req, reply);
    });

  app.post(
    '/api/publish',
    keyed('publish', async (req, reply) => {
      const body = readPublishBody(await readJsonBody(req, d.options.maxHttpBodyBytes));
      const channels = body.channels ?? [body.channel!];
      // Validate everything before publishing anything: a bad request publishes nothing.
      const items = channels.map((c) => d.publisher.validate(c, body.event, decodeData(body.data)));
      const idemKey = req.headers['idempotency-key'];
      if (idemKey !== undefined && !IDEMPOTENCY_KEY.test(idemKey))
        throw new SbError('bad_request', 'Idempotency-Key must be 1-200 printable ASCII characters');
      const once = (channel: string) =>
        idemKey === undefined ? undefined : { key: `idem:${idemKey}:${channel}`, ttlSeconds: d.options.idempotencyWindowSeconds };
      const rs = await Promise.all(
        items.map((p) => d.publisher.publish(p.channel, p.event, p.data, 'http', once(p.channel), body.volatile, p.json)),
      );
      const flags = { ...(rs.some((r) => r.local) ? { local: true } : {}), ...(rs.every((r) => r.duplicate) ? { duplicate: true } : {}) };
      reply.json(200, body.channels ? { ok: true, ids: rs.map((r) => r.id), ...flags } : { ok: true, id: rs[0]!.id, ...flags });
    }),
  );

  app.get(
    '/api/channels/*',
    keyed('channel', async (req, reply) => {
      let raw: string;
      try {
        raw = decodeURIComponent(req.path.slice('/api/channels/'.length));
      } catch {
        throw new SbError('invalid_channel', 'the channel in the path is not valid percent-encoding');
      }
      const channel = assertChannel(raw);
      const p = await presenceOf(d.io, channel);
      const rule = d.rules.for(channel);
      const out: Record<string, unknown> = { channel, subscribers: p.count + d.sseSubscribers(channel) };
      if (rule.presence) out.members = p.members;
      reply.json(200, out);
    }),
  );

  app.get(
    '/api/stats',
    keyed('stats', async (req, reply) => {
      const nodes = await d.bus.nodes();
      reply.json(200, { connections: nodes.reduce((n, x) => n + x.connections, 0), nodes });
    }),
  );

  // Which node serves this client: the demo page shows it. No secrets, no auth.
  app.get(
    '/api/node',
    route(log, (req, reply) => {
      assertOrigin(d.origins, req, d.metrics);
      reply.json(200, { id: d.options.nodeId, mode: d.bus.mode }, d.origins.corsHeaders(req.headers));
    }),
  );
  app.options('/api/*', preflight(log, d.origins, d.metrics));

  app.any(
    '/api/*',
    route(log, (req) => {
      throw new SbError('not_found', `no API route ${req.method} ${req.path}`);
    }),
  );
}
