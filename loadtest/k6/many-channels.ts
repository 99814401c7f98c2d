// many-channels: `connections` sockets, each in `channelsPerConnection` of `channels` channels; publications
// round-robin over the channels (HTTP API by default). Same metrics as fanout.
//   SB_URL=wss://localhost:8443 SB_API=https://localhost:8443 SB_API_KEY=… SB_INSECURE=1 k6 run loadtest/k6/many-channels.ts
import exec from 'k6/execution';
import type { Options } from 'k6/options';
import { channel, dur, env, loadScenario, runTag, thresholds } from './lib/config.ts';
import { publishHttp, publishSocket } from './lib/publisher.ts';
import { subscriber } from './lib/subscriber.ts';
import { after } from './lib/socketio.ts';

const { scenario, params: p } = loadScenario('many-channels');
const vus = Math.ceil(p.connections / env.socketsPerVu);
const rampSeconds = Math.max(5, Math.ceil((p.connections * p.channelsPerConnection) / 2000));
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
  if (p.channelsPerConnection > p.channels) throw new Error('channelsPerConnection must not exceed channels');
  return { run: runTag(), t0: Date.now() };
}

export function subscribers(d: Setup): void {
  const k = exec.scenario.iterationInTest;
  for (let j = 0; j < env.socketsPerVu; j++) {
    const g = j * vus + k;
    if (g >= p.connections) break;
    const channels = Array.from({ length: p.channelsPerConnection }, (_, i) => channel(p.channelPrefix, d.run, (g * p.channelsPerConnection + i) % p.channels));
    after((g / p.connections) * rampSeconds * 1000, () =>
      subscriber({ url: env.subUrl, channels, measureFrom: d.t0 + (pubStart + p.warmupSeconds) * 1000, until: d.t0 + (pubStart + pubSeconds + drainSeconds) * 1000 }),
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
