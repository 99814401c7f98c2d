// What the uWS baselines (`plain`, `ceiling`) share: Switchboard's own uWS loader, and `POST /api/publish` on a uWS app.
import { createRequire } from 'node:module';
import type { HttpResponse, TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import { authorized, checkPublish, type BaselineConfig } from './common.js';

export type Uws = typeof import('@trufflesuite/uws-js-unofficial');

/** Switchboard's own loader when it is built (same binary the node uses), else the package directly. */
export async function loadUws(): Promise<{ uws: Uws; name: string }> {
  try {
    const loader = (await import(new URL('../../node/src/transport/uws.js', import.meta.url).href)) as {
      loadUws?: () => { uws: Uws; name: string };
    };
    if (typeof loader.loadUws === 'function') return loader.loadUws();
  } catch {
    // not built yet: fall through
  }
  const require = createRequire(import.meta.url);
  return { uws: require('@trufflesuite/uws-js-unofficial') as Uws, name: '@trufflesuite/uws-js-unofficial' };
}

function json(res: HttpResponse, status: string, body: unknown): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body));
  });
}

/** `POST /api/publish` `{ channel, event, data }` with a Bearer key from API_KEYS → `{ ok, id }`. */
export function publishRoute(
  app: TemplatedApp,
  cfg: BaselineConfig,
  publish: (channel: string, event: string, data: unknown) => string,
): void {
  app.post('/api/publish', (res, req) => {
    const auth = req.getHeader('authorization');
    let aborted = false;
    res.onAborted(() => (aborted = true));
    if (!authorized(cfg, auth)) return json(res, '401 Unauthorized', { error: { code: 'unauthorized', message: 'API key' } });
    const chunks: Buffer[] = [];
    res.onData((chunk, isLast) => {
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast || aborted) return;
      let body: { channel?: unknown; event?: unknown; data?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        return json(res, '400 Bad Request', { error: { code: 'bad_request', message: 'body is not JSON' } });
      }
      const bad = checkPublish(body.channel, body.event);
      if (bad) return json(res, '400 Bad Request', { error: bad.error });
      json(res, '200 OK', { ok: true, id: publish(body.channel as string, body.event as string, body.data) });
    });
  });
}

/** Listens, or exits the process naming the address. Resolves with the listen socket. */
export function listen(app: TemplatedApp, cfg: BaselineConfig, who: string): Promise<unknown> {
  return new Promise((resolve) => {
    app.listen(cfg.host, cfg.port, (token) => {
      if (!token) {
        console.error(`${who}: cannot listen on ${cfg.host}:${cfg.port}`);
        process.exit(1);
      }
      resolve(token);
    });
  });
}
