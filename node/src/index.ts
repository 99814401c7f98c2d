// The package's public API: embed a Switchboard node in a Node program.
// First: quiets the `debug` loggers of Socket.IO and its kin before they are loaded (see the module).
import './transport/quiet-debug.js';
export { createSwitchboard, type Switchboard } from './lifecycle/switchboard.js';
export { start } from './lifecycle/start.js';
export { loadConfig, ConfigError, type ConfigOverrides } from './config/load.js';
export type { Config } from './config/schema.js';
export type { SwitchboardApp, ClientContext, RpcHandler } from './core/app.js';
export { SbError, type ErrorCode } from './core/errors.js';
