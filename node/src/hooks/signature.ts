// Webhook signatures: `X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` keyed with WEBHOOK_SECRET,
// over the bytes `<t>.<METHOD>.<path>.<raw body>`, so a logged call can't be replayed later or sent to another hook.
import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-switchboard-signature';

/** What the README tells backends to accept: a call signed more than this many seconds away from their clock is refused. */
export const SIGNATURE_TOLERANCE_S = 300;

export interface SignedRequest {
  /** `POST` (every webhook call). */
  method: string;
  /** The request line's path without the query string, percent-encoding kept (`/switchboard/rpc/orders.list`). */
  path: string;
  /** The exact body bytes. */
  body: string | Buffer;
}

function mac(secret: string | KeyObject, t: number, r: SignedRequest): string {
  return createHmac('sha256', secret).update(`${t}.${r.method.toUpperCase()}.${r.path}.`).update(r.body).digest('hex');
}

/** The header value for a request sent at `nowS` (unix seconds). */
export function sign(secret: string | KeyObject, r: SignedRequest, nowS = Math.floor(Date.now() / 1000)): string {
  return `t=${nowS},v1=${mac(secret, nowS, r)}`;
}

export interface VerifyOptions {
  /** Largest accepted distance between `t` and `nowS`, in seconds. @default 300 */
  toleranceS?: number;
  /** The verifier's clock, unix seconds. @default now */
  nowS?: number;
}

/** Constant-time check of a received header (what a backend does; used by tests). */
export function verify(secret: string, r: SignedRequest, header: string | undefined, opts: VerifyOptions = {}): boolean {
  if (!header) return false;
  const fields = header.split(',').map((f) => f.trim().split('='));
  const ts = fields.filter(([k]) => k === 't').map(([, v]) => v);
  if (ts.length !== 1 || !/^\d{1,12}$/.test(ts[0] ?? '')) return false;
  const t = Number(ts[0]);
  const now = opts.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (opts.toleranceS ?? SIGNATURE_TOLERANCE_S)) return false;
  const want = Buffer.from(mac(secret, t, r));
  // Several v1 values are allowed (a sender rotating its secret may sign with both).
  return fields.some(([k, v]) => {
    if (k !== 'v1' || v === undefined) return false;
    const got = Buffer.from(v);
    return got.length === want.length && timingSafeEqual(got, want);
  });
}
