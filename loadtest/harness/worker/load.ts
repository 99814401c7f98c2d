// The offered load of a worker: publications (Socket.IO `publish`, `POST /api/publish` or a GRIP publish) and rpc calls at a fixed
// rate, each stamped and accounted for by its ack.
import http from 'node:http';
import { pad } from '../../k6/lib/protocol.js';
import { nowUs } from '../clock.js';
import { publishBody, type PublishStart, type PublishTotals, type RpcTotals } from '../messages.js';
import type { SioClient } from '../sio-client.js';
import { describe, noteError, type Recorder } from './recorder.js';

const MAX_SOCKET_IN_FLIGHT = 5000;
const MAX_HTTP_IN_FLIGHT = 256;

export interface Running<T> {
  totals: T;
  /** Stops firing, waits (bounded) for the acks still in flight, and returns the totals. */
  stop(): Promise<T>;
}

/** Calls `fire` `rate` times a second, catching up after stalls up to half a second; what falls further behind is skipped and counted. */
function rateLoop(rate: number, fire: () => void, onBehind: (n: number) => void): () => void {
  const start = performance.now();
  let done = 0;
  const maxBurst = Math.max(5, Math.ceil(rate * 0.5));
  const timer = setInterval(
    () => {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      let n = due - done;
      if (n > maxBurst) {
        onBehind(n - maxBurst);
        n = maxBurst;
        done = due - n;
      }
      for (let i = 0; i < n; i++) fire();
      done += n;
    },
    rate >= 200 ? 2 : 5,
  );
  return () => clearInterval(timer);
}

async function drained(inFlight: () => number): Promise<void> {
  const deadline = Date.now() + 12_000;
  while (inFlight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

function httpPoster(baseUrl: string, path: string, apiKey: string, localAddress: string) {
  const target = new URL(path, baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, localAddress });
  return {
    post(body: string): Promise<{ status: number; body: string }> {
      return new Promise((resolve, reject) => {
        const req = http.request(
          target,
          {
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}`, 'content-length': Buffer.byteLength(body) },
            timeout: 10_000,
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error('HTTP publish timed out')));
        req.on('error', reject);
        req.end(body);
      });
    },
    close: () => agent.destroy(),
  };
}

/** The parent's `publishStart` request, plus the socket publishing (via `socket`). */
export type PublishOptions = Omit<PublishStart, 'op' | 'group'> & { client: SioClient | undefined };

/** Publishes round-robin over the channels; data `{ p: stream, s: seq per channel, t: µs, pad }`. */
export function startPublishing(rec: Recorder, o: PublishOptions): Running<PublishTotals> {
  if (o.via === 'socket' && !o.client) throw new Error('no connected client to publish from');
  const totals: PublishTotals = { sent: 0, acked: 0, failed: 0, ackedByChannel: {}, finalSeq: {}, stream: o.stream, errors: [] };
  const padding = pad(o.payloadBytes);
  const poster =
    o.via === 'socket' ? undefined : httpPoster(o.httpUrl, o.via === 'grip' ? '/publish/' : '/api/publish', o.apiKey, o.localAddress);
  let rr = 0;
  let inFlight = 0;
  const fire = () => {
    if (inFlight >= (poster ? MAX_HTTP_IN_FLIGHT : MAX_SOCKET_IN_FLIGHT)) {
      rec.win.pubBehind++;
      return;
    }
    const channel = o.channels[rr++ % o.channels.length]!;
    const s = (totals.finalSeq[channel] ?? 0) + 1;
    totals.finalSeq[channel] = s;
    const t = nowUs();
    const data = { p: o.stream, s, t, pad: padding };
    totals.sent++;
    rec.win.pubSent++;
    inFlight++;
    const done = (ok: boolean, why?: string) => {
      inFlight--;
      if (ok) {
        totals.acked++;
        rec.win.pubAcked++;
        totals.ackedByChannel[channel] = (totals.ackedByChannel[channel] ?? 0) + 1;
        rec.ackLatency.recordValue(nowUs() - t);
      } else {
        totals.failed++;
        rec.win.pubFailed++;
        noteError(totals.errors, `publish: ${why}`);
      }
    };
    if (poster) {
      poster.post(JSON.stringify(publishBody(o.via as 'http' | 'grip', channel, o.event, data))).then(
        (r) => done(r.status === 200, `HTTP ${r.status} ${r.body.slice(0, 200)}`),
        (err: Error) => done(false, err.message),
      );
    } else {
      o.client!.call('publish', [channel, o.event, data]).then(
        (ack) => done((ack as { ok?: boolean } | undefined)?.ok === true, describe(ack)),
        (err: Error) => done(false, err.message),
      );
    }
  };
  const stopLoop = rateLoop(o.rate, fire, (n) => (rec.win.pubBehind += n));
  return {
    totals,
    async stop() {
      stopLoop();
      await drained(() => inFlight);
      poster?.close();
      return totals;
    },
  };
}

/** Calls `rpc(method, { n, pad })` round-robin over the clients; an answer must echo `n`. */
export function startCalling(
  rec: Recorder,
  clients: SioClient[],
  o: { rate: number; method: string; payloadBytes: number },
): Running<RpcTotals> {
  if (clients.length === 0) throw new Error('no connected client to call from');
  const totals: RpcTotals = { calls: 0, ok: 0, failed: 0, errors: [] };
  const padding = pad(o.payloadBytes);
  let rr = 0;
  let inFlight = 0;
  const failed = (why: string) => {
    totals.failed++;
    rec.win.rpcFailed++;
    noteError(totals.errors, `rpc: ${why}`);
  };
  const fire = () => {
    if (inFlight >= MAX_SOCKET_IN_FLIGHT) {
      rec.win.rpcBehind++;
      return;
    }
    const client = clients[rr++ % clients.length]!;
    const t = nowUs();
    const params = { n: totals.calls, pad: padding };
    totals.calls++;
    inFlight++;
    client.call('rpc', [o.method, params]).then(
      (ack) => {
        inFlight--;
        const a = ack as { ok?: boolean; result?: { n?: number } } | undefined;
        if (a?.ok !== true || a.result?.n !== params.n) return failed(describe(ack));
        totals.ok++;
        rec.win.rpcOk++;
        rec.ackLatency.recordValue(nowUs() - t);
      },
      (err: Error) => {
        inFlight--;
        failed(err.message);
      },
    );
  };
  const stopLoop = rateLoop(o.rate, fire, (n) => (rec.win.rpcBehind += n));
  return {
    totals,
    async stop() {
      stopLoop();
      await drained(() => inFlight);
      return totals;
    },
  };
}
