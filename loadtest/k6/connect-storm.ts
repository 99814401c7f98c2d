// connect-storm: opens `connections` Socket.IO connections at `arrivalRate` per second, holds each idle for
// `holdSeconds`, then closes it. Reports sb_handshake_duration and sb_connect_errors against the scenario thresholds.
//   SB_URL=wss://localhost:8443 SB_INSECURE=1 k6 run loadtest/k6/connect-storm.ts
import exec from 'k6/execution';
import type { Options } from 'k6/options';
import { auth, dur, env, loadScenario, thresholds } from './lib/config.ts';
import { connectErrors, handshakeDuration } from './lib/metrics.ts';
import { SocketIO, after } from './lib/socketio.ts';

const { scenario, params: p } = loadScenario('connect-storm');
const vus = Math.ceil(p.connections / env.socketsPerVu);
const stormSeconds = p.connections / p.arrivalRate;

export const options: Options = {
  insecureSkipTLSVerify: env.insecure,
  thresholds: thresholds(scenario),
  scenarios: {
    storm: { executor: 'per-vu-iterations', vus, iterations: 1, maxDuration: dur(stormSeconds + p.holdSeconds + 60), exec: 'storm' },
  },
};

export function storm(): void {
  const k = exec.scenario.iterationInTest;
  // Interleave the VUs' sockets so the connections arrive evenly at `arrivalRate`.
  for (let j = 0; j < env.socketsPerVu; j++) {
    const g = j * vus + k;
    if (g >= p.connections) break;
    after((g / p.arrivalRate) * 1000, () => {
      const s = new SocketIO({
        url: env.url,
        auth: auth(),
        tags: { scenario: 'connect-storm' },
        onConnect: (_sid, ms) => {
          handshakeDuration.add(ms);
          after(p.holdSeconds * 1000, () => s.close());
        },
        onConnectError: (reason) => connectErrors.add(1, { reason: reason.slice(0, 40) }),
        onClose: () => connectErrors.add(1, { reason: 'dropped while idle' }),
      });
    });
  }
}
