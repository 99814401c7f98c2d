// The `switchboard` command line: parses flags and calls start(); nothing else lives here.
// First: V8's settings for a server process (see the module), then the `debug` loggers of Socket.IO and its kin made
// quiet before they are loaded.
import './lifecycle/v8-flags.js';
import './transport/quiet-debug.js';
import { parseArgs } from 'node:util';
import { configTable } from './config/docs.js';
import { ConfigError, loadConfig } from './config/load.js';
import { UwsLoadError } from './transport/uws.js';
import { start } from './lifecycle/start.js';

const USAGE = `usage: switchboard listen [--port N] [--host H] [--internal-port N]
       switchboard config-table     print the README's configuration table
Every setting is an environment variable (see README); flags override them.`;

async function main(argv: string[]) {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'internal-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? 'listen';
  if (values.help) return console.log(USAGE);
  if (command === 'config-table') return console.log(configTable());
  if (command !== 'listen') {
    console.error(`unknown command "${command}"\n${USAGE}`);
    process.exit(2);
  }
  const config = loadConfig(process.env, { port: values.port, host: values.host, internalPort: values['internal-port'] });
  await start(config);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof UwsLoadError) console.error(`switchboard: ${err.message}`);
  else if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
    console.error(`switchboard: ${(err as Error).message}\n${USAGE}`);
  else console.error('switchboard: failed to start:', err);
  process.exit(1);
});
