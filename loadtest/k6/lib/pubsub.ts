// The one pub/sub scenario script, parameterised: `subscribers` sockets, each in some channels, and one publisher
// (a Socket.IO `publish` loop or `POST /api/publish` at an arrival rate). fanout, many-channels and soak differ
// only in how many sockets, which channels each takes, how fast they ramp and whether they churn; their entry
// files pick a shape here and re-export what k6 runs.
import exec from 'k6/execution';
import type { Options } from 'k6/options';
import type { ParamsOf } from '../../harness/scenarios.ts';
import { channel, dur, env, loadScenario, runTag, thresholds } from './config.ts';
import { publishHttp, publishSocket } from './publisher.ts';
import { subscriber } from './subscriber.ts';
import { after } from './socketio.ts';

type PubSubName = 'fanout' | 'many-channels' | 'soak';

/** What the scenarios share: one publisher over `channels` channels at `publishRate`. */
interface PubSubParams {
  channels: number;
  publishRate: number;
  publishVia: 'socket' | 'http';
  payloadBytes: number;
  event: string;
  channelPrefix: string;
  warmupSeconds: number;
  durationSeconds: number;
}

/** How one scenario shapes the subscribers. */
interface Shape {
  sockets: number;
  /** Channel indexes socket `g` subscribes to. */
  channelsOf(g: number): number[];
  /** Subscriptions made per second while ramping up (a ramp lasts at least 5 s). */
  subscribeRate: number;
  churn?: { everyMs: number; fraction: number };
  /** Extra seconds the executors may overrun (churned sockets resubscribe late). */
  slackSeconds: number;
}

const SHAPES: { [N in PubSubName]: (p: ParamsOf<N>) => Shape } = {
  fanout: (p) => ({ sockets: p.subscribers, channelsOf: (g) => [g % p.channels], subscribeRate: 500, slackSeconds: 30 }),
  'many-channels': (p) => {
    if (p.channelsPerConnection > p.channels) throw new Error('channelsPerConnection must not exceed channels');
    const k = p.channelsPerConnection;
    return {
      sockets: p.connections,
      channelsOf: (g) => Array.from({ length: k }, (_, i) => (g * k + i) % p.channels),
      subscribeRate: 2000,
      slackSeconds: 30,
    };
  },
  soak: (p) => ({
    sockets: p.subscribers,
    channelsOf: (g) => [g % p.channels],
    subscribeRate: 500,
    churn: { everyMs: p.churn.intervalSeconds * 1000, fraction: p.churn.fraction },
    slackSeconds: 60,
  }),
};

interface Setup {
  run: string;
  t0: number;
}

/** The options and the exported functions of a pub/sub k6 script for scenario `name`. */
export function pubsub<N extends PubSubName>(name: N) {
  const { scenario, params } = loadScenario(name);
  const p = params as PubSubParams;
  const shape = (SHAPES[name] as (p: ParamsOf<N>) => Shape)(params);
  const vus = Math.ceil(shape.sockets / env.socketsPerVu);
  const rampSeconds = Math.max(5, Math.ceil((shape.sockets * shape.channelsOf(0).length) / shape.subscribeRate));
  const pubStart = rampSeconds + 2;
  const pubSeconds = p.warmupSeconds + p.durationSeconds;
  const drainSeconds = 5;
  const allChannels = (run: string) => Array.from({ length: p.channels }, (_, i) => channel(p.channelPrefix, run, i));

  const options: Options = {
    insecureSkipTLSVerify: env.insecure,
    thresholds: thresholds(scenario),
    scenarios: {
      subscribers: {
        executor: 'per-vu-iterations',
        vus,
        iterations: 1,
        maxDuration: dur(pubStart + pubSeconds + drainSeconds + shape.slackSeconds),
        exec: 'subscribers',
      },
      publisher:
        p.publishVia === 'http'
          ? {
              executor: 'constant-arrival-rate',
              rate: p.publishRate,
              timeUnit: '1s',
              duration: dur(pubSeconds),
              preAllocatedVUs: Math.ceil(p.publishRate / 20) + 2,
              maxVUs: Math.ceil(p.publishRate / 2) + 10,
              startTime: dur(pubStart),
              exec: 'publishOne',
            }
          : {
              executor: 'per-vu-iterations',
              vus: 1,
              iterations: 1,
              startTime: dur(pubStart),
              maxDuration: dur(pubSeconds + shape.slackSeconds),
              exec: 'publisher',
            },
    },
  };

  return {
    options,
    setup(): Setup {
      return { run: runTag(), t0: Date.now() };
    },
    subscribers(d: Setup): void {
      const k = exec.scenario.iterationInTest;
      for (let j = 0; j < env.socketsPerVu; j++) {
        const g = j * vus + k;
        if (g >= shape.sockets) break;
        after((g / shape.sockets) * rampSeconds * 1000, () =>
          subscriber({
            url: env.subUrl,
            channels: shape.channelsOf(g).map((i) => channel(p.channelPrefix, d.run, i)),
            measureFrom: d.t0 + (pubStart + p.warmupSeconds) * 1000,
            until: d.t0 + (pubStart + pubSeconds + drainSeconds) * 1000,
            ...(shape.churn ? { churn: shape.churn } : {}),
          }),
        );
      }
    },
    publishOne(d: Setup): void {
      publishHttp(channel(p.channelPrefix, d.run, exec.scenario.iterationInTest % p.channels), p.event, p.payloadBytes);
    },
    publisher(d: Setup): void {
      publishSocket({
        url: env.pubUrl,
        channels: allChannels(d.run),
        event: p.event,
        payloadBytes: p.payloadBytes,
        rate: p.publishRate,
        until: Date.now() + pubSeconds * 1000,
      });
    },
  };
}
