// fanout: `subscribers` sockets in `channels` channels, one publisher at `publishRate` (Socket.IO `publish` or
// `POST /api/publish`). Reports end-to-end latency from meta.ts, deliveries, loss and gaps from sequence numbers.
// To measure cross-node latency, point subscribers and publisher at different nodes with SB_URL_SUB / SB_URL_PUB.
//   SB_URL=wss://localhost:8443 SB_API=https://localhost:8443 SB_API_KEY=… SB_INSECURE=1 k6 run loadtest/k6/fanout.ts
import exec from 'k6/execution';
import type { Options } from 'k6/options';
import { channel, dur, env, loadScenario, runTag, thresholds } from './lib/config.ts';
import { publishHttp, publishSocket } from './lib/publisher.ts';
import { subscriber } from './lib/subscriber.ts';
import { after } from './lib/socketio.ts';

const { scenario, params: p } = loadScenario('fanout');
const vus = Math.ceil(p.subscribers / env.socketsPerVu);
const rampSeconds = Math.max(5, Math.ceil(p.subscribers / 500));
const pubStart = rampSeconds + 2;
const pubSeconds = p.warmupSeconds + p.durationSeconds;
const drainSeconds = 5;

interface Setup {
  run: string;
  t0: number;
}

export const options: Options = {
  insecureSkipTLSVerify: env.insecure,
  thresholds: thresholds(scenario),
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus, iterations: 1, maxDuration: dur(pubStart + pubSeconds + drainSeconds + 30), exec: 'subscribers' },
    publisher:
      p.publishVia === 'http'
        ? { executor: 'constant-arrival-rate', rate: p.publishRate, timeUnit: '1s', duration: dur(pubSeconds), preAllocatedVUs: Math.ceil(p.publishRate / 20) + 2, maxVUs: Math.ceil(p.publishRate / 2) + 10, startTime: dur(pubStart), exec: 'publishOne' }
        : { executor: 'per-vu-iterations', vus: 1, iterations: 1, startTime: dur(pubStart), maxDuration: dur(pubSeconds + 30), exec: 'publisher' },
  },
};

export function setup(): Setup {
  return { run: runTag(), t0: Date.now() };
}

export function subscribers(d: Setup): void {
  const k = exec.scenario.iterationInTest;
  for (let j = 0; j < env.socketsPerVu; j++) {
    const g = j * vus + k;
    if (g >= p.subscribers) break;
    after((g / p.subscribers) * rampSeconds * 1000, () =>
      subscriber({
        url: env.subUrl,
        channels: [channel(p.channelPrefix, d.run, g % p.channels)],
        measureFrom: d.t0 + (pubStart + p.warmupSeconds) * 1000,
        until: d.t0 + (pubStart + pubSeconds + drainSeconds) * 1000,
      }),
    );
  }
}

export function publishOne(d: Setup): void {
  publishHttp(channel(p.channelPrefix, d.run, exec.scenario.iterationInTest % p.channels), p.event, p.payloadBytes);
}

export function publisher(d: Setup): void {
  publishSocket({
    url: env.pubUrl,
    channels: Array.from({ length: p.channels }, (_, i) => channel(p.channelPrefix, d.run, i)),
    event: p.event,
    payloadBytes: p.payloadBytes,
    rate: p.publishRate,
    until: Date.now() + pubSeconds * 1000,
  });
}
