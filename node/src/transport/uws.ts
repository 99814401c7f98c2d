// Loads a uWebSockets.js build: the official package if installed, else the published npm builds, and says which.
import { createRequire } from 'node:module';
// Types come from the 20.30 build: the API subset Switchboard uses is the same in every candidate.
import type * as UWS from '@trufflesuite/uws-js-unofficial';

export type Uws = typeof UWS;

const require = createRequire(import.meta.url);

/** Tried in order; the first that loads wins. */
export const UWS_CANDIDATES = [
  { pkg: 'uWebSockets.js', note: 'the official build (npm install uNetworking/uWebSockets.js#v20.x)' },
  { pkg: '@btc-vision/uwebsockets.js', note: 'current uWS; needs glibc >= 2.38 and Node 20/22/24' },
  { pkg: '@trufflesuite/uws-js-unofficial', note: 'uWS 20.30; Node <= 20, works on glibc 2.36' },
] as const;

export interface LoadedUws {
  uws: Uws;
  /** Which package loaded, e.g. "@trufflesuite/uws-js-unofficial". */
  name: string;
  version: string;
}

export class UwsLoadError extends Error {
  override name = 'UwsLoadError';
}

function glibcVersion(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ?? 'none (not glibc)';
}

export function loadUws(): LoadedUws {
  const failures: string[] = [];
  for (const c of UWS_CANDIDATES) {
    try {
      const uws = require(c.pkg) as Uws;
      if (typeof uws.App !== 'function') throw new Error('no App export');
      let version = 'unknown';
      try {
        version = (require(`${c.pkg}/package.json`) as { version: string }).version;
      } catch {
        /* the official package may not expose package.json */
      }
      return { uws, name: c.pkg, version };
    } catch (err) {
      const msg = (err as Error).message.split('\n').find((l) => l.trim()) ?? String(err);
      failures.push(
        `  - ${c.pkg} (${c.note}): ${(err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && msg.includes(c.pkg) ? 'not installed' : msg.slice(0, 300)}`,
      );
    }
  }
  throw new UwsLoadError(
    [
      `no uWebSockets.js build loads on Node ${process.version} (ABI ${process.versions.modules}), ${process.platform}-${process.arch}, glibc ${glibcVersion()}.`,
      'Tried:',
      ...failures,
      'Fix one of:',
      '  - on glibc >= 2.38 (Debian 13, Ubuntu 24.04) with Node 20/22/24: npm install @btc-vision/uwebsockets.js',
      '  - on glibc 2.36 (Debian 12): use Node 20 and npm install @trufflesuite/uws-js-unofficial@20.30.0-unofficial.0',
      '  - or install the official build: npm install uNetworking/uWebSockets.js#v20.52.0',
    ].join('\n'),
  );
}
