// A Switchboard in the test process (createSwitchboard, memory bus unless REDIS_URL is given) on ports the
// system picks; one per test file, since Socket.IO's uWS integration patches prototypes per process.
import { createSwitchboard, loadConfig, type ConfigOverrides, type Switchboard, type SwitchboardApp } from '../../src/index.js';

export interface InProcess {
  sb: Switchboard;
  /** http://127.0.0.1:<public port> */
  url: string;
  internalUrl: string;
}

export async function startInProcess(overrides: ConfigOverrides = {}, app: SwitchboardApp = {}): Promise<InProcess> {
  // Built from an empty environment: nothing of the test process's variables leaks in. A short drain: the
  // test's own clients are all there is to move.
  const config = loadConfig(
    {},
    { host: '127.0.0.1', port: '0', internalPort: '0', logLevel: 'warn', drainDelayMs: '0', drainTimeoutMs: '1000', ...overrides },
  );
  const sb = await createSwitchboard(config, app);
  await sb.listen();
  const { port, internalPort } = sb.ports();
  return { sb, url: `http://127.0.0.1:${port}`, internalUrl: `http://127.0.0.1:${internalPort}` };
}
