// Socket.IO, Engine.IO, their parser and adapters, and ioredis log through the `debug` package: a dozen calls per
// client event and ack, each building a rest-argument array and reading a getter before it finds logging is off.
// (The rpc bench's CPU profile: 6 % of the node's JavaScript time in `debug` with DEBUG unset.)
// When DEBUG is unset as the process starts, the `debug` copies those packages load hand out a no-op logger for
// every namespace that is not enabled; with DEBUG set (`DEBUG=engine,socket.io* npm start` to trace a problem)
// nothing is changed. Loggers made before this module ran, or `debug.enable()` called later, are not affected by
// it: set DEBUG before the start instead. Imported first by the entry points (main.ts, index.ts), so that it runs
// before any of those packages is loaded.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** Packages whose own copy of `debug` (resolved from their folder) is made quiet. */
const USERS = ['socket.io', 'engine.io', 'socket.io-parser', 'socket.io-adapter', '@socket.io/redis-adapter', 'ioredis'];

interface DebugFactory {
  (namespace: string): DebugLogger;
  enabled(namespace: string): boolean;
}
interface DebugLogger {
  (...args: unknown[]): void;
  enabled: boolean;
  namespace: string;
  extend(sub: string, delimiter?: string): DebugLogger;
  destroy(): boolean;
}

const patched = new WeakSet<object>();

/** A factory like `debug`'s own that answers disabled namespaces with a function that does nothing. */
function quiet(real: DebugFactory): DebugFactory {
  const make = (namespace: string): DebugLogger => {
    if (real.enabled(namespace)) return real(namespace);
    const logger = (() => {}) as unknown as DebugLogger;
    logger.enabled = false;
    logger.namespace = namespace;
    logger.extend = (sub: string, delimiter = ':') => make(`${namespace}${delimiter}${sub}`);
    logger.destroy = () => false;
    return logger;
  };
  // The package's own functions and settings stay reachable (enable, disable, formatters, …).
  const factory = Object.assign(make, real) as DebugFactory;
  patched.add(factory);
  return factory;
}

/** Makes the listed packages' `debug` quiet, unless DEBUG is set. */
if (!process.env.DEBUG) {
  for (const user of USERS) {
    let path: string;
    try {
      path = createRequire(require.resolve(user)).resolve('debug');
    } catch {
      continue; // not installed, or no `debug` of its own to find
    }
    const loaded = require(path) as DebugFactory;
    const mod = require.cache[path];
    // A copy two of them share is made quiet once.
    if (mod && typeof loaded === 'function' && !patched.has(loaded)) mod.exports = quiet(loaded);
  }
}

/**
 * True when DEBUG, as the process started, enables one of `namespaces` in Socket.IO's copy of `debug`: the paths
 * that write past Socket.IO's code (the event lane's acks) then step aside, so a trace shows every packet as usual.
 */
export function traced(...namespaces: string[]): boolean {
  if (!process.env.DEBUG) return false;
  try {
    const d = require(createRequire(require.resolve('socket.io')).resolve('debug')) as DebugFactory;
    return namespaces.some((n) => d.enabled(n));
  } catch {
    return false;
  }
}
