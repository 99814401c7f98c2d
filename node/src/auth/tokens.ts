// Client tokens (JWT) verified with jose: HS256 with JWT_SECRET, RS256/ES256 with a public key or a JWKS file.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors, importSPKI, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { SbError } from '../protocol/errors.js';

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

export interface TokenKeys {
  secret?: string;
  publicKeyFile?: string;
  jwksFile?: string;
}

export async function createTokenVerifier(keys: TokenKeys): Promise<TokenVerifier | undefined> {
  const getters: { alg: string[]; key: Uint8Array | Awaited<ReturnType<typeof importSPKI>> | JWTVerifyGetKey }[] = [];
  if (keys.secret) getters.push({ alg: ['HS256'], key: new TextEncoder().encode(keys.secret) });
  if (keys.publicKeyFile) {
    const pem = readFileSync(keys.publicKeyFile, 'utf8');
    const alg = /BEGIN PUBLIC KEY/.test(pem) && pem.length < 400 ? 'ES256' : 'RS256';
    getters.push({ alg: [alg], key: await importSPKI(pem, alg) });
  }
  if (keys.jwksFile) getters.push({ alg: ['RS256', 'ES256'], key: createLocalJWKSet(JSON.parse(readFileSync(keys.jwksFile, 'utf8'))) });
  if (getters.length === 0) return undefined;

  return {
    async verify(token) {
      if (typeof token !== 'string' || token.length === 0) throw new SbError('unauthorized', 'a token is required');
      let payload: JWTPayload | undefined;
      let lastErr: unknown;
      for (const g of getters) {
        try {
          payload = (await jwtVerify(token, g.key as Uint8Array, { algorithms: g.alg })).payload;
          break;
        } catch (err) {
          lastErr = err;
        }
      }
      if (!payload) {
        if (lastErr instanceof errors.JWTExpired) throw new SbError('unauthorized', 'token expired');
        throw new SbError('unauthorized', `invalid token: ${(lastErr as Error)?.message ?? 'unknown'}`);
      }
      const c = claimsSchema.safeParse(payload);
      if (!c.success) throw new SbError('unauthorized', `invalid token claims: ${c.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      return { user: c.data.sub, channels: c.data.channels, publish: c.data.publish, data: c.data.data, exp: c.data.exp };
    },
  };
}
