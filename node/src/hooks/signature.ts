// Webhook signatures: `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with WEBHOOK_SECRET.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-switchboard-signature';

/** The header value for `body` (the exact bytes sent). */
export function sign(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Constant-time check of a received header against the raw body (what a backend does; used by tests). */
export function verify(secret: string, body: string | Buffer, header: string | undefined): boolean {
  if (!header) return false;
  const want = Buffer.from(sign(secret, body));
  const got = Buffer.from(header);
  return want.length === got.length && timingSafeEqual(want, got);
}
