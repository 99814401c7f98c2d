// rpc: `clients` sockets call rpc(method, params) at `callRate` per second in total; sb_ack_latency and
// sb_rpc_errors. Whether the method runs in-process or as a webhook is the cluster's configuration.
//   SB_URL=wss://localhost:8443 SB_INSECURE=1 k6 run loadtest/k6/rpc.ts
import exec from 'k6/execution';
import type { Options } from 'k6/options';
import { clearInterval, setInterval } from 'k6/timers';
import { auth, dur, env, loadScenario, padding, thresholds } from './lib/config.ts';
import { ackLatency, connectErrors, handshakeDuration, rpcErrors } from './lib/metrics.ts';
import { SocketIO, after } from './lib/socketio.ts';

const { scenario, params: p } = loadScenario('rpc');
const vus = Math.ceil(p.clients / env.socketsPerVu);
const rampSeconds = Math.max(2, Math.ceil(p.clients / 500));
const callSeconds = p.warmupSeconds + p.durationSeconds;
/** Each client calls once per this many ms. */
const intervalMs = (p.clients / p.callRate) * 1000;

interface Setup {
  t0: number;
}

export const options: Options = {
  insecureSkipTLSVerify: env.insecure,
  thresholds: thresholds(scenario),
  scenarios: {
    callers: { executor: 'per-vu-iterations', vus, iterations: 1, maxDuration: dur(rampSeconds + callSeconds + 30), exec: 'callers' },
  },
};

export function setup(): Setup {
  return { t0: Date.now() };
}

export function callers(d: Setup): void {
  const k = exec.scenario.iterationInTest;
  const pad = padding(p.payloadBytes);
  const start = d.t0 + rampSeconds * 1000;
  const measureFrom = start + p.warmupSeconds * 1000;
  const end = start + callSeconds * 1000;
  for (let j = 0; j < env.socketsPerVu; j++) {
    const g = j * vus + k;
    if (g >= p.clients) break;
    after((g / p.clients) * rampSeconds * 1000, () => {
      const s = new SocketIO({
        url: env.url,
        auth: auth(),
        onConnectError: () => connectErrors.add(1),
        onConnect: (_sid, ms) => {
          handshakeDuration.add(ms);
          // Spread the clients' calls over the interval, starting together at `start`.
          after(start - Date.now() + (g / p.clients) * intervalMs, () => {
            let n = 0;
            const timer = setInterval(() => {
              if (Date.now() >= end) {
                clearInterval(timer);
                after(2000, () => s.close());
                return;
              }
              const t0 = Date.now();
              const params = { n: n++, pad };
              s.call('rpc', [p.method, params], (err, res) => {
                const r = res as { ok?: boolean; result?: { n?: number } } | undefined;
                if (err || r?.ok !== true || r.result?.n !== params.n) rpcErrors.add(1);
                else if (t0 >= measureFrom) ackLatency.add(Date.now() - t0, { call: 'rpc' });
              });
            }, intervalMs);
          });
        },
      });
    });
  }
}
