// Bearer API keys for the HTTP API, compared in constant time.
import { timingSafeEqual } from 'node:crypto';
import { SbError } from '../core/errors.js';

/** Each configured key list as bytes, made once (the list is the configuration's, fixed for the process). */
const encoded = new WeakMap<readonly string[], Buffer[]>();

export function keyMatches(keys: readonly string[], presented: string): boolean {
  let bufs = encoded.get(keys);
  if (!bufs) encoded.set(keys, (bufs = keys.map((k) => Buffer.from(k))));
  const p = Buffer.from(presented);
  let hit = false;
  for (const b of bufs) if (b.length === p.length && timingSafeEqual(b, p)) hit = true;
  return hit;
}

export function bearer(headers: Record<string, string>): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '');
  return m?.[1]?.trim();
}

/** Throws `unauthorized` unless the request carries one of `keys`; names API_KEYS when none are configured. */
export function requireApiKey(keys: readonly string[] | undefined, headers: Record<string, string>) {
  if (!keys || keys.length === 0) throw new SbError('unauthorized', 'the HTTP API is disabled: set API_KEYS to enable it');
  const token = bearer(headers);
  if (!token) throw new SbError('unauthorized', 'send Authorization: Bearer <one of API_KEYS>');
  if (!keyMatches(keys, token)) throw new SbError('unauthorized', 'unknown API key');
}
