// Client tokens (JWT) verified with jose: HS256 with JWT_SECRET, RS256/ES256 with a public key or a JWKS file.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { z } from 'zod';
import { SbError } from '../core/errors.js';
import { formatIssues } from '../core/issues.js';

export interface TokenClaims {
  user: string;
  channels?: string[];
  publish?: string[];
  data?: unknown;
  /** Seconds since the epoch; undefined: never expires. */
  exp?: number;
}

const claimsSchema = z.object({
  sub: z.string().min(1).max(200),
  channels: z.array(z.string().max(200)).max(1000).optional(),
  publish: z.array(z.string().max(200)).max(1000).optional(),
  data: z.unknown().optional(),
  exp: z.number().optional(),
});

export interface TokenVerifier {
  verify(token: unknown): Promise<TokenClaims>;
}

/** The keys client tokens may be signed with; none: tokens are not required. */
export interface TokenKeys {
  /** HS256 shared secret (JWT_SECRET). */
  secret?: string;
  /** RSA or EC public key (JWT_PUBLIC_KEY_FILE, read by readPublicKey). */
  publicKey?: KeyObject;
  /** Public keys as a JWKS (JWT_JWKS_FILE, read by readJwks). */
  jwks?: JSONWebKeySet;
  /** Required `aud` (JWT_AUDIENCE): a token minted for another service is refused. @default undefined (not checked) */
  audience?: string;
  /** Required `iss` (JWT_ISSUER). @default undefined (not checked) */
  issuer?: string;
}

/** Reads JWT_PUBLIC_KEY_FILE at start-up: a PEM public key, RSA (RS256) or EC (ES256). Throws with the reason. */
export function readPublicKey(path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`not a readable PEM public key: ${(err as Error).message}`);
  }
  const type = key.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ec') throw new Error(`an RSA (RS256) or EC P-256 (ES256) key is needed, not ${type}`);
  return key;
}

/** Reads JWT_JWKS_FILE at start-up: a JSON Web Key Set. Throws with the reason. */
export function readJwks(path: string): JSONWebKeySet {
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`not a readable JSON key set: ${(err as Error).message}`);
  }
  try {
    createLocalJWKSet(jwks);
  } catch (err) {
    throw new Error(`not a JSON key set: ${(err as Error).message}`);
  }
  return jwks;
}

export async function createTokenVerifier(keys: TokenKeys): Promise<TokenVerifier | undefined> {
  const getters: { alg: string[]; key: Uint8Array | KeyObject | JWTVerifyGetKey }[] = [];
  if (keys.secret) getters.push({ alg: ['HS256'], key: new TextEncoder().encode(keys.secret) });
  if (keys.publicKey) getters.push({ alg: [keys.publicKey.asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256'], key: keys.publicKey });
  if (keys.jwks) getters.push({ alg: ['RS256', 'ES256'], key: createLocalJWKSet(keys.jwks) });
  if (getters.length === 0) return undefined;

  return {
    async verify(token) {
      if (typeof token !== 'string' || token.length === 0) throw new SbError('unauthorized', 'a token is required');
      let alg: string | undefined;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        throw new SbError('unauthorized', 'invalid token: not a JWT');
      }
      // Only keys for the token's own algorithm: the error then says why this token failed, not why another key did.
      const candidates = getters.filter((g) => alg !== undefined && g.alg.includes(alg));
      if (candidates.length === 0)
        throw new SbError(
          'unauthorized',
          `invalid token: algorithm ${alg ?? 'none'} is not accepted (${getters.flatMap((g) => g.alg).join(', ')})`,
        );
      let payload: JWTPayload | undefined;
      let lastErr: unknown;
      for (const g of candidates) {
        try {
          payload = (await jwtVerify(token, g.key as Uint8Array, { algorithms: g.alg, audience: keys.audience, issuer: keys.issuer }))
            .payload;
          break;
        } catch (err) {
          if (!(lastErr instanceof errors.JWTExpired)) lastErr = err;
        }
      }
      if (!payload) {
        if (lastErr instanceof errors.JWTExpired) throw new SbError('unauthorized', 'token expired');
        if (lastErr instanceof errors.JWSSignatureVerificationFailed)
          throw new SbError('unauthorized', 'invalid token: signature verification failed');
        throw new SbError('unauthorized', `invalid token: ${(lastErr as Error)?.message ?? 'unknown'}`);
      }
      const c = claimsSchema.safeParse(payload);
      if (!c.success) throw new SbError('unauthorized', `invalid token claims: ${formatIssues(c.error)}`);
      return { user: c.data.sub, channels: c.data.channels, publish: c.data.publish, data: c.data.data, exp: c.data.exp };
    },
  };
}
