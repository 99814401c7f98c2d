// The Socket.IO Admin UI (@socket.io/admin-ui): its `/admin` namespace on this node's Socket.IO server, and the
// package's own prebuilt page served at /admin/ so that no outside site is needed.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, sep } from 'node:path';
import { instrument } from '@socket.io/admin-ui';
import type { Server } from 'socket.io';
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import type { Logger } from '../log/logger.js';
import { route } from '../transport/http.js';
import { CONTENT_TYPES, serveFiles, type StaticFile } from '../transport/static.js';

export interface AdminUiOptions {
  /** Login name. */
  username: string;
  /** bcrypt hash of the password (the package compares with bcrypt). */
  passwordHash: string;
  /** `development` also streams every socket, room and event. @default 'production' */
  mode: 'production' | 'development';
  /** Without the actions that change sockets. @default true */
  readonly: boolean;
  /** Names this node on the UI's Servers page (NODE_ID). */
  serverId: string;
}

/** The UI's build folder inside the installed package. */
function uiDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@socket.io/admin-ui/package.json')), 'ui/dist');
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/**
 * The page as built, minus its two links to outside sites (Google Fonts and the Material Design icon font
 * from a CDN): the UI falls back to the browser's fonts and shows its buttons without icons.
 */
export function localIndex(html: string): string {
  return html.replace(/<link[^>]+href="https?:\/\/[^"]*"[^>]*>/g, '');
}

export function mountAdminUi(io: Server, app: TemplatedApp, opts: AdminUiOptions, log: Logger): void {
  instrument(io, {
    auth: { type: 'basic', username: opts.username, password: opts.passwordHash },
    mode: opts.mode,
    readonly: opts.readonly,
    serverId: opts.serverId,
  });

  const dir = uiDir();
  const files = new Map<string, StaticFile>();
  for (const p of filesUnder(dir)) {
    const type = CONTENT_TYPES[extname(p)];
    if (!type) continue;
    const path = `/admin/${relative(dir, p).split(sep).join('/')}`;
    const body = readFileSync(p);
    files.set(path, { body: path === '/admin/index.html' ? Buffer.from(localIndex(body.toString('utf8'))) : body, type });
  }
  files.set('/admin/', files.get('/admin/index.html')!);

  app.get(
    '/admin',
    route(log, (_req, reply) => reply.send(308, '', { location: '/admin/' })),
  );
  serveFiles(app, log, {
    pattern: '/admin/*',
    files,
    headers: {
      'x-frame-options': 'DENY',
      'content-security-policy':
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; frame-ancestors 'none'",
    },
  });
  log.info({ mode: opts.mode, readonly: opts.readonly, files: files.size }, 'Socket.IO Admin UI at /admin/ (namespace /admin)');
}
