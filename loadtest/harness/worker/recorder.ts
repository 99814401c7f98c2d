// What one worker process measures: window counters and histograms (reset per measured window) and session totals
// of what its subscribers received per channel (reset per phase, for exact loss accounting).
import type { BenchData, SeqTracker } from '../../k6/lib/protocol.js';
import { nowUs } from '../clock.js';
import { encode, newHistogram } from '../histogram.js';
import { zeroCounters, type Counters, type Totals, type WindowStats } from '../messages.js';

const MAX_ERRORS = 5;

type WindowCounters = Counters & { errors: string[] };

function freshCounters(): WindowCounters {
  return { ...zeroCounters(), errors: [] };
}

/** Keeps the first few distinct messages. */
export function noteError(list: string[], msg: string): void {
  if (list.length < MAX_ERRORS && !list.includes(msg)) list.push(msg);
}

/** An ack's error as `code: message`, or the ack itself. */
export function describe(res: unknown): string {
  const e = (res as { error?: { code?: string; message?: string } } | undefined)?.error;
  return e ? `${e.code}: ${e.message}` : (JSON.stringify(res)?.slice(0, 200) ?? String(res));
}

export class Recorder {
  win = freshCounters();
  /** End-to-end latency of deliveries, µs. */
  latency = newHistogram();
  /** Publish and rpc ack round trips, µs. */
  ackLatency = newHistogram();
  private cpu0 = process.cpuUsage();
  private win0 = nowUs();
  /** Session totals: deliveries, and per channel. */
  received = 0;
  byChannel = new Map<string, number>();

  delivered(channel: string, latencyUs: number): void {
    this.latency.recordValue(latencyUs > 0 ? latencyUs : 0);
    this.win.received++;
    this.received++;
    this.byChannel.set(channel, (this.byChannel.get(channel) ?? 0) + 1);
  }

  /** One delivery of bench data through a receiver's sequence tracker: its losses, gaps and late arrivals counted. */
  sequenced(seq: SeqTracker, channel: string, d: BenchData): void {
    const { lost, gaps, late } = seq;
    seq.see(channel, d.p, d.s);
    this.win.seqLost += seq.lost - lost;
    this.win.seqGaps += seq.gaps - gaps;
    this.win.seqLate += seq.late - late;
  }

  stats(reset: boolean): WindowStats {
    const cpu = process.cpuUsage(this.cpu0);
    const out: WindowStats = {
      ...this.win,
      latency: encode(this.latency),
      ackLatency: encode(this.ackLatency),
      cpuUs: cpu.user + cpu.system,
      windowUs: nowUs() - this.win0,
    };
    if (reset) {
      this.win = freshCounters();
      this.latency = newHistogram();
      this.ackLatency = newHistogram();
      this.cpu0 = process.cpuUsage();
      this.win0 = nowUs();
    }
    return out;
  }

  totals(reset: boolean): Totals {
    const out = { received: this.received, byChannel: Object.fromEntries(this.byChannel) };
    if (reset) {
      this.received = 0;
      this.byChannel = new Map();
    }
    return out;
  }
}
