// The Origin allow-list (ALLOWED_ORIGINS), one check shared by Socket.IO, the HTTP API, GRIP and SSE.
import type { Metrics } from '../metrics/metrics.js';
import { SbError } from '../core/errors.js';

export type OriginCheck = (origin: string | undefined) => boolean;

/**
 * Unset list: everything passes. Set: a request with an `Origin` not on it is refused; one without `Origin`
 * (not a browser: curl, a backend, a mobile app) passes, since only browsers send it and only browsers need it.
 */
export function createOriginCheck(allowed: readonly string[] | undefined): OriginCheck {
  if (!allowed) return () => true;
  const set = new Set(allowed.map((o) => o.replace(/\/+$/, '').toLowerCase()));
  return (origin) => origin === undefined || set.has(origin.toLowerCase());
}

/** For HTTP routes: throws `forbidden` (403) and counts the rejection when the Origin is not allowed. */
export function assertOrigin(check: OriginCheck, origin: string | undefined, metrics: Metrics) {
  if (check(origin)) return;
  metrics.rejections.inc({ reason: 'origin' });
  throw new SbError('forbidden', `origin ${origin} is not allowed (ALLOWED_ORIGINS)`);
}
