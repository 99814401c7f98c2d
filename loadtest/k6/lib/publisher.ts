// Publishers for the k6 scripts: through the HTTP API (one request per iteration, arrival-rate executors) or from
// a Socket.IO client at a fixed interval. Each publication carries {p, s, t, pad} for the receivers' loss checks.
import http from 'k6/http';
import { setInterval, clearInterval } from 'k6/timers';
import { SocketIO, after } from './socketio.ts';
import { ackLatency, connectErrors, publishErrors } from './metrics.ts';
import { auth, env, padding } from './config.ts';

/** Per-VU sequence numbers per channel: a VU publishes one request at a time, so its streams stay ordered. */
const seqs = new Map<string, number>();

function nextData(channel: string, payloadBytes: number) {
  const s = (seqs.get(channel) ?? 0) + 1;
  seqs.set(channel, s);
  return { p: `vu${__VU}`, s, t: Date.now(), pad: padding(payloadBytes) };
}

/** One `POST /api/publish`. */
export function publishHttp(channel: string, event: string, payloadBytes: number): void {
  const res = http.post(`${env.api}/api/publish`, JSON.stringify({ channel, event, data: nextData(channel, payloadBytes) }), {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${env.apiKey}` },
    tags: { name: 'POST /api/publish' },
  });
  if (res.status !== 200) publishErrors.add(1, { status: String(res.status) });
  else ackLatency.add(res.timings.duration, { call: 'http_publish' });
}

/** A Socket.IO publisher: `rate` publications per second round-robin over `channels` until `until` (epoch ms). */
export function publishSocket(o: {
  url: string;
  channels: string[];
  event: string;
  payloadBytes: number;
  rate: number;
  until: number;
}): void {
  const sock = new SocketIO({
    url: o.url,
    auth: auth(),
    onConnectError: () => connectErrors.add(1, { stage: 'publisher' }),
    onConnect: () => {
      // k6 timers tick in whole milliseconds: send a batch per tick for rates above 200/s.
      const tickMs = o.rate > 200 ? 5 : Math.max(5, Math.floor(1000 / o.rate));
      const start = Date.now();
      let sent = 0;
      let rr = 0;
      const timer = setInterval(() => {
        const due = Math.floor(((Date.now() - start) / 1000) * o.rate);
        for (; sent < due; sent++) {
          const channel = o.channels[rr++ % o.channels.length]!;
          const t0 = Date.now();
          sock.call('publish', [channel, o.event, nextData(channel, o.payloadBytes)], (err, res) => {
            if (err || (res as { ok?: boolean } | undefined)?.ok !== true) publishErrors.add(1);
            else ackLatency.add(Date.now() - t0, { call: 'publish' });
          });
        }
      }, tickMs);
      after(o.until - Date.now(), () => {
        clearInterval(timer);
        // Let the last acks come back before leaving.
        after(2000, () => sock.close());
      });
    },
  });
}
