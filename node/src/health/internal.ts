// The internal port: /healthz (process serves), /readyz (takes traffic), /metrics (Prometheus).
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { route } from '../transport/http.js';
import type { NodeHttpApp } from '../transport/node-http.js';
import { SbError } from '../core/errors.js';
import type { Readiness } from './readiness.js';

export function mountInternal(app: NodeHttpApp, readiness: Readiness, metrics: Metrics, log: Logger) {
  app.get(
    '/healthz',
    route(log, (_req, reply) => reply.json(200, { ok: true })),
  );
  app.get(
    '/readyz',
    route(log, (_req, reply) => {
      const r = readiness.current();
      reply.json(r.ready ? 200 : 503, r.ready ? { ready: true } : { ready: false, reason: r.reason });
    }),
  );
  app.get(
    '/metrics',
    route(log, async (_req, reply) => {
      const body = await metrics.registry.metrics();
      reply.send(200, body, { 'content-type': metrics.registry.contentType });
    }),
  );
  app.any(
    '/*',
    route(log, (req) => {
      throw new SbError('not_found', `nothing at ${req.path}; try /healthz, /readyz or /metrics`);
    }),
  );
}
