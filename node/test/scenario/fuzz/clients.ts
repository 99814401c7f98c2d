// The clients that run fuzz cases against a node: a raw Engine.IO WebSocket, a long-polling session, raw HTTP;
// and the checks on what they get back.
import net from 'node:net';
import WebSocket from 'ws';
import { pct, type Frame } from './cases.js';

/** How long any one answer may take before the case counts as hung. */
export const ANSWER_MS = 5000;
// The contract's error codes written out, not imported from core/errors.ts: a code renamed or added there must fail here.
export const CODES = new Set([
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'invalid_channel',
  'rate_limited',
  'too_large',
  'unavailable',
  'timeout',
  'internal',
]);

/** The Socket.IO ack expected for a text frame, when the frame parses as an event with an id (as socket.io-parser would). */
export function predictedAck(s: string): number | undefined {
  const m = /^42(\d{1,15})(\[[\s\S]*)$/.exec(s);
  if (!m) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(m[2]!);
  } catch {
    return undefined;
  }
  if (!Array.isArray(payload)) return undefined;
  const ev = payload[0];
  const reserved = ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener'];
  if (typeof ev === 'number' || (typeof ev === 'string' && !reserved.includes(ev))) return Number(m[1]);
  return undefined;
}

export interface Outcome {
  /** What answered: 'ack', 'close', 'status <n>'. */
  answer: string;
  /** Acks seen: id → the ack's first argument. */
  acks: Map<number, unknown>;
  /** Contract problems that are not hangs: internal errors, 5xx, malformed acks. */
  problems: string[];
}

let probeCounter = 900_000_000;
/** A fresh ack id for a probe event, far above the ids the generators write. */
export const nextProbe = () => ++probeCounter;
export const PROBE_EVENT = '__fuzz_probe__';

export function checkAck(where: string, value: unknown, problems: string[]) {
  const a = Array.isArray(value) ? value[0] : undefined;
  if (!a || typeof a !== 'object' || typeof (a as { ok?: unknown }).ok !== 'boolean') {
    problems.push(`${where}: ack is not { ok, … }: ${JSON.stringify(value)?.slice(0, 200)}`);
    return;
  }
  const ack = a as { ok: boolean; error?: { code?: unknown; message?: unknown } };
  if (ack.ok) return;
  if (!ack.error || !CODES.has(String(ack.error.code)) || typeof ack.error.message !== 'string')
    problems.push(`${where}: malformed error ack ${JSON.stringify(ack).slice(0, 200)}`);
  else if (ack.error.code === 'internal') problems.push(`${where}: internal error ack ${JSON.stringify(ack).slice(0, 200)}`);
}

/** A raw Engine.IO v4 WebSocket with a connected Socket.IO namespace. */
export class RawWs {
  readonly ws: WebSocket;
  closed = false;
  closeInfo = '';
  private readonly acks = new Map<number, unknown>();
  private waiters: (() => void)[] = [];
  readonly closedP: Promise<void>;

  constructor(port: number) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, { maxPayload: 64 * 1024 * 1024 });
    this.ws.on('error', () => {});
    this.closedP = new Promise((resolve) =>
      this.ws.on('close', (code, reason) => {
        this.closed = true;
        this.closeInfo = `${code} ${reason.toString()}`.trim();
        this.wake();
        resolve();
      }),
    );
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const s = data.toString();
      if (s === '2') this.ws.send('3', () => {});
      const m = /^43(\d+)(\[[\s\S]*)$/.exec(s);
      if (m) {
        let v: unknown;
        try {
          v = JSON.parse(m[2]!);
        } catch {
          v = `unparsable: ${m[2]!.slice(0, 100)}`;
        }
        this.acks.set(Number(m[1]), v);
        this.wake();
      }
      if (s.startsWith('40')) {
        this.nspConnected = true;
        this.wake();
      }
    });
  }
  nspConnected = false;

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when `cond` holds or the socket closes; false on timeout. */
  async until(cond: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!cond() && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  async open(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('close', () => reject(new Error(`closed while opening: ${this.closeInfo}`)));
    });
    this.ws.send('40');
    if (!(await this.until(() => this.nspConnected, ANSWER_MS)) || this.closed)
      throw new Error(`namespace connect not answered (${this.closeInfo || 'timeout'})`);
  }

  send(f: Frame) {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (f.t === 'text') this.ws.send(f.s, () => {});
    else this.ws.send(f.b, { binary: f.t === 'bin' }, () => {});
  }

  takeAck(id: number): unknown {
    const v = this.acks.get(id);
    this.acks.delete(id);
    return v;
  }
  drainAcks(): [number, unknown][] {
    const out = [...this.acks];
    this.acks.clear();
    return out;
  }
  hasAck(id: number) {
    return this.acks.has(id);
  }

  terminate() {
    this.ws.terminate();
  }
}

/** A long-polling session with a connected namespace. */
export class PollSession {
  sid = '';
  closed = false;
  private readonly base: string;
  constructor(url: string) {
    this.base = `${url}/socket.io/?EIO=4&transport=polling`;
  }
  get url() {
    return `${this.base}&sid=${pct(this.sid)}`;
  }
  async open() {
    const res = await fetch(this.base, { signal: AbortSignal.timeout(ANSWER_MS) });
    const text = await res.text();
    if (res.status !== 200 || !text.startsWith('0{')) throw new Error(`polling handshake answered ${res.status} ${text.slice(0, 100)}`);
    this.sid = (JSON.parse(text.slice(1)) as { sid: string }).sid;
    if ((await this.post(Buffer.from('40'), 'text/plain;charset=UTF-8')) !== 200) throw new Error('polling namespace connect refused');
    const got = await this.poll(ANSWER_MS, (p) => p.startsWith('40'));
    if (!got) throw new Error('polling namespace connect not answered');
  }
  async post(body: Buffer, contentType: string): Promise<number> {
    const headers: Record<string, string> = {};
    if (contentType) headers['content-type'] = contentType;
    const res = await fetch(this.url, { method: 'POST', body, headers, signal: AbortSignal.timeout(ANSWER_MS) });
    await res.arrayBuffer();
    return res.status;
  }
  /** GETs until a packet matches; handles pings; false when the session is gone. */
  async poll(ms: number, match: (packet: string) => boolean, onPacket?: (packet: string) => void): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      let res: Response;
      try {
        res = await fetch(this.url, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) });
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') throw new Error('long-poll GET not answered in time');
        this.closed = true;
        return false;
      }
      const text = await res.text();
      if (res.status !== 200) {
        this.closed = true;
        return false;
      }
      let hit = false;
      for (const p of text.split('\x1e')) {
        onPacket?.(p);
        if (p === '2') await this.post(Buffer.from('3'), 'text/plain;charset=UTF-8').catch(() => 0);
        if (p === '1') this.closed = true;
        if (match(p)) hit = true;
      }
      if (hit) return true;
      if (this.closed) return false;
    }
    throw new Error('long-poll answer not received in time');
  }
  async close() {
    if (this.closed || !this.sid) return;
    this.closed = true;
    await this.post(Buffer.from('1'), 'text/plain;charset=UTF-8').catch(() => 0);
  }
}

export function rawHttp(port: number, bytes: Buffer, ms: number): Promise<{ status?: number; closed: boolean; timedOut: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (v: { status?: number; closed: boolean; timedOut: boolean }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish({ closed: false, timedOut: true }), ms);
    s.on('error', () => finish({ closed: true, timedOut: false }));
    s.on('close', () => finish({ closed: true, timedOut: false }));
    s.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data.toString('latin1'));
      if (m && data.includes('\r\n\r\n')) finish({ status: Number(m[1]), closed: false, timedOut: false });
    });
    s.on('connect', () => {
      s.write(bytes);
      // Then a half-close: a request whose framing promises more body must be answered or closed, not left waiting.
      setTimeout(() => s.end(), 300).unref();
    });
  });
}

/** The node's error log lines (pino level ≥ 50) as one-line summaries: message, error, first frames. */
export function errorLines(output: string): string[] {
  const out: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: { level?: number; msg?: string; err?: { type?: string; message?: string; stack?: string } };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      continue;
    }
    if ((j.level ?? 0) < 50) continue;
    const frames = (j.err?.stack ?? '')
      .split('\n')
      .filter((l) => l.trim().startsWith('at '))
      .slice(0, 3)
      .map((l) => l.trim().replace(/file:\/\/\S*\/(node_modules|dist)\//, '$1/'));
    out.push(`${j.msg}: ${j.err?.type}: ${j.err?.message?.split('\n')[0]} ${frames.join(' < ')}`);
  }
  return out;
}

/** Distinct error lines with counts. */
export function nodeErrors(output: string): string[] {
  const seen = new Map<string, number>();
  for (const k of errorLines(output)) seen.set(k, (seen.get(k) ?? 0) + 1);
  return [...seen].map(([k, n]) => `${n}× ${k}`);
}
