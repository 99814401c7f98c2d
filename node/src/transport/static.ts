// Serves the demo page and the browser client helper from node/public, read into memory once; serveFiles
// answers any such in-memory folder (the admin UI's too).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import type { Logger } from '../log/logger.js';
import { route } from './http.js';
import { SbError } from '../core/errors.js';

export const PUBLIC_DIR = fileURLToPath(new URL('../../../../node/public/', import.meta.url));

/** Content types of the files served; other extensions are not served by the admin UI. */
export const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

export function mountStatic(app: TemplatedApp, log: Logger) {
  const files = new Map<string, { body: Buffer; type: string }>();
  let names: string[] = [];
  try {
    names = readdirSync(PUBLIC_DIR).filter((n) => statSync(join(PUBLIC_DIR, n)).isFile());
  } catch {
    log.warn({ dir: PUBLIC_DIR }, 'no public folder; the demo page is not served');
  }
  for (const n of names)
    files.set(`/${n}`, { body: readFileSync(join(PUBLIC_DIR, n)), type: CONTENT_TYPES[extname(n)] ?? 'application/octet-stream' });
  const index = files.get('/index.html');
  if (index) files.set('/', index);

  serveFiles(app, log, {
    pattern: '/*',
    files,
    headers: {
      'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    },
  });
}

export interface StaticFile {
  body: Buffer;
  type: string;
}

export interface ServeFilesOptions {
  /** The uWS route pattern answered, e.g. `/admin/*`. */
  pattern: string;
  /** Request path -> file. */
  files: ReadonlyMap<string, StaticFile>;
  /** Added to (or overriding) the defaults: content type, `no-cache`, `nosniff`. */
  headers: Record<string, string>;
}

/** Answers GET requests from files held in memory. */
export function serveFiles(app: TemplatedApp, log: Logger, { pattern, files, headers }: ServeFilesOptions) {
  app.get(
    pattern,
    route(log, (req, reply) => {
      const f = files.get(req.path);
      if (!f) throw new SbError('not_found', `nothing at ${req.path}`);
      reply.send(200, f.body, { 'content-type': f.type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', ...headers });
    }),
  );
}
