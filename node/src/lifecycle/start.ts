// start(): runs a node as a process: listens, guards the process against stray errors, drains on signals.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { SwitchboardApp } from '../core/app.js';
import { createSwitchboard, type Switchboard } from './switchboard.js';

/** Loads SWITCHBOARD_APP: an ESM module whose default export is the app. A failure names the variable. */
export async function loadApp(path: string): Promise<SwitchboardApp> {
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(resolve(path)).href)) as { default?: unknown };
  } catch (err) {
    throw new ConfigError([`SWITCHBOARD_APP=${JSON.stringify(path)}: cannot load the module: ${(err as Error).message}`]);
  }
  if (mod.default === undefined) return {};
  if (typeof mod.default !== 'object' || mod.default === null)
    throw new ConfigError([
      `SWITCHBOARD_APP=${JSON.stringify(path)}: the default export must be an object (rpc, authorizeSubscribe, authorizePublish)`,
    ]);
  return mod.default as SwitchboardApp;
}

/** `app` defaults to the module SWITCHBOARD_APP names, if any. */
export async function start(config: Config, app?: SwitchboardApp): Promise<Switchboard> {
  const sb = await createSwitchboard(config, app ?? (config.app ? await loadApp(config.app) : {}));
  const log = sb.log.child({ module: 'lifecycle' });

  // One bad connection or a library bug must not take every other client down with it.
  process.on('uncaughtException', (err) => {
    sb.metrics.uncaught.inc();
    log.error({ err }, 'uncaught exception (the node keeps serving)');
  });
  process.on('unhandledRejection', (err) => {
    sb.metrics.uncaught.inc();
    log.error({ err }, 'unhandled rejection (the node keeps serving)');
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    const watchdog = setTimeout(
      () => {
        log.error('drain did not finish in time; exiting 1');
        process.exit(1);
      },
      config.drainDelayMs + config.drainTimeoutMs + config.drainWatchdogMs,
    );
    watchdog.unref();
    sb.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  await sb.listen();
  return sb;
}
