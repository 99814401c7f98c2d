// Subscriber sockets for the k6 scripts: connect, subscribe, and turn every publication `(data, meta)` into the
// latency, delivery, loss and gap metrics; optionally drop and resubscribe with `since` now and then (soak).
import { SeqTracker, isBenchData, isMeta } from './protocol.ts';
import { SocketIO, after } from './socketio.ts';
import {
  ackLatency,
  connectErrors,
  deliveries,
  e2eLatency,
  handshakeDuration,
  messagesLost,
  reconnects,
  seqGaps,
  unrecovered,
} from './metrics.ts';
import { auth } from './config.ts';

export interface SubscriberOptions {
  url: string;
  channels: string[];
  /** Epoch ms before which latency is not recorded (warm-up). */
  measureFrom: number;
  /** Epoch ms at which the socket closes. */
  until: number;
  /** Soak: drop and resubscribe with `since` every `everyMs` with probability `fraction`. */
  churn?: { everyMs: number; fraction: number };
}

/** One logical subscriber: survives its own reconnects, keeps one sequence tracker across them. */
export function subscriber(o: SubscriberOptions): void {
  const seq = new SeqTracker();
  const lastId = new Map<string, string>();
  let sock: SocketIO | undefined;

  const onEvent = (_name: string, args: unknown[]) => {
    const [data, meta] = args;
    if (!isBenchData(data) || !isMeta(meta)) return;
    const now = Date.now();
    deliveries.add(1);
    if (now >= o.measureFrom) e2eLatency.add(now - meta.ts);
    const lost = seq.lost;
    const gaps = seq.gaps;
    seq.see(meta.channel, data.p, data.s);
    if (seq.lost > lost) messagesLost.add(seq.lost - lost);
    if (seq.gaps > gaps) seqGaps.add(seq.gaps - gaps);
    lastId.set(meta.channel, meta.id);
  };

  const open = (isReconnect: boolean) => {
    if (Date.now() >= o.until) return;
    const s = new SocketIO({
      url: o.url,
      auth: auth(),
      onConnect: (_sid, ms) => {
        if (isReconnect) reconnects.add(1);
        else handshakeDuration.add(ms);
        for (const ch of o.channels) {
          const since = lastId.get(ch);
          const t0 = Date.now();
          s.call('subscribe', [ch, since ? { since } : {}], (err, res) => {
            const r = res as { ok?: boolean; recovered?: boolean } | undefined;
            if (err || r?.ok !== true) {
              connectErrors.add(1, { stage: 'subscribe' });
              return;
            }
            ackLatency.add(Date.now() - t0, { call: 'subscribe' });
            if (isReconnect && r.recovered !== true) {
              unrecovered.add(1);
              seq.reset(ch);
            }
          });
        }
      },
      onEvent,
      onConnectError: () => {
        connectErrors.add(1, { stage: 'connect' });
        // Try again shortly while the test runs: a refused reconnect is still a subscriber.
        if (isReconnect) after(1000, () => open(true));
      },
      onClose: () => after(500, () => open(true)),
    });
    sock = s;
  };

  open(false);
  after(o.until - Date.now(), () => {
    const s = sock;
    sock = undefined;
    s?.close();
  });
  if (o.churn) {
    const churn = o.churn;
    const tick = () => {
      if (Date.now() + churn.everyMs >= o.until) return;
      after(churn.everyMs, () => {
        const s = sock;
        if (s?.connected && Math.random() < churn.fraction) {
          s.close();
          open(true);
        }
        tick();
      });
    };
    tick();
  }
}
