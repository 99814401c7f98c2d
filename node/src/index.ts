// The package's public API: embed a Switchboard node in a Node program.
export { createSwitchboard, type Switchboard } from './lifecycle/switchboard.js';
export { start } from './lifecycle/start.js';
export { loadConfig, ConfigError, type ConfigOverrides } from './config/load.js';
export type { Config } from './config/schema.js';
export type { SwitchboardApp, ClientContext, RpcHandler } from './core/app.js';
export { SbError, type ErrorCode } from './core/errors.js';
