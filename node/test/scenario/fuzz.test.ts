// Fuzzing with a seeded PRNG: random and mutated Engine.IO / Socket.IO frames over raw WebSockets, long-polling
// bodies, SSE requests, HTTP API bodies, Engine.IO handshakes with odd parameters and raw HTTP requests with
// broken framing, against one single-node Switchboard with small limits (16 KB frames and bodies: enough for
// JSON nested ~8000 deep). Every case must get an answer (an ack, an HTTP status, a close, or — for
// fire-and-forget input — a connection that still answers a probe event), the node never stops, a bystander
// keeps receiving, no case earns an `internal` error, a 5xx or an error in the node's log, and at the end the
// node's accounting is back to the bystander alone.
//
//   FUZZ_SEED=<n>        the seed (default: from the clock; printed at start and with every failure)
//   FUZZ_CASES=<n>       how many cases (default 3000, stopped after FUZZ_BUDGET_MS: 60 s by default)
//   FUZZ_CASE=<i>        replay case i of FUZZ_SEED alone, on a fresh connection (the command is printed with
//                        every failure; publication ids in a case are relative to the clock)
//   FUZZ_WORKERS=<n>     cases run at once (default 6; 1 attributes the node's log lines exactly)
//   FUZZ_VERBOSE=1       print every case and its answer
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { startNode, type TestNode } from '../helpers/node.js';
import { connect, metricValue, type Client } from '../helpers/client.js';
import { sleep, waitFor } from '../helpers/ports.js';

// ---------------------------------------------------------------------------------------------------------
// Seeded PRNG: mulberry32, one independent stream per case (seed, index), so one case replays alone.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mix(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** 0 … n-1 */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** lo … hi, inclusive */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  weighted<T>(xs: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of xs) total += w;
    let x = this.next() * total;
    for (const [w, v] of xs) {
      if ((x -= w) < 0) return v;
    }
    return xs[xs.length - 1]![1];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Settings

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const ONLY = process.env.FUZZ_CASE !== undefined ? Number(process.env.FUZZ_CASE) : undefined;
const CASES = ONLY !== undefined ? 1 : Number(process.env.FUZZ_CASES ?? 3000);
const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? (process.env.FUZZ_CASES ? 3_600_000 : 60_000));
const VERBOSE = process.env.FUZZ_VERBOSE === '1';
const WORKERS = ONLY !== undefined ? 1 : Number(process.env.FUZZ_WORKERS ?? 6);
const ANSWER_MS = 5000;
const MAX_PAYLOAD = 16384;
const MAX_BODY = 16384;
const MAX_PUBLISH = 4096;
const MAX_SUBS = 10;
const BYSTANDER_CHANNEL = 'demo:bystander';
const CODES = new Set(['bad_request', 'unauthorized', 'forbidden', 'not_found', 'invalid_channel', 'rate_limited', 'too_large', 'unavailable', 'timeout', 'internal']);
const API_STATUSES = new Set([200, 400, 401, 403, 404, 413, 429, 503]);
const SSE_STATUSES = new Set([200, 400, 401, 403, 429, 503]);
const REPLAY = (i: number) => `FUZZ_SEED=${SEED} FUZZ_CASE=${i} node --test dist/node/test/scenario/fuzz.test.js`;

// ---------------------------------------------------------------------------------------------------------
// Generators

const CTRL = [...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)), '\x7f'];
const UNI = ['é', 'ß', '中', '𝄞', '😀', '\u2028', '\u2029', '\ufeff', '\u200b', '\ud800', '\udfff', '\uffff', 'ǅ', '\u0301', '\u0085'];
const PUNCT = ['"', '[', ']', '{', '}', ',', ':', '\\', '-', '.', 'e', 'E', '+', '/', '%', '\x1e', ' '];
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const CHANNEL_CHARS = `${ALNUM}_:.-@/=,`;

function randStr(r: Rng, max: number): string {
  const n = r.int(max + 1);
  let s = '';
  for (let i = 0; i < n; i++) {
    s += r.weighted([
      [60, () => ALNUM[r.int(ALNUM.length)]!],
      [10, () => r.pick(CTRL)],
      [15, () => r.pick(UNI)],
      [15, () => r.pick(PUNCT)],
    ] as const)();
  }
  return s;
}

const CHANNELS_OK = ['demo:a', 'demo:b', 'demo:c', 'orders:x', 'chat:1', 'a', 'demo:' + 'x'.repeat(195)];
const CHANNELS_BAD = ['', ' ', 'a b', 'x'.repeat(201), 'démo:a', 'demo:\u0000', 'demo:a\n', '../../etc', '%2F', 'demo:a?x=1', 'demo:*', '#', '\ud800'];
function channel(r: Rng): string {
  return r.weighted([
    [60, () => r.pick(CHANNELS_OK)],
    [20, () => r.pick(CHANNELS_BAD)],
    [10, () => Array.from({ length: r.range(1, 30) }, () => CHANNEL_CHARS[r.int(CHANNEL_CHARS.length)]).join('')],
    [10, () => randStr(r, 20)],
  ] as const)();
}

const EVENTS = ['e', 'message', 'tick', 'chat', 'connect', 'connect_error', 'disconnect', 'disconnecting', 'error', 'ping', 'pong', 'message_ack', 'newListener', 'removeListener', 'switchboard:closing', 'switchboard:x', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '', 'x'.repeat(100), 'x'.repeat(101), '😀', '\u0000'];
const KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'since', 'channel', 'channels', 'event', 'data', 'ok', '_placeholder', 'num', 'id', 'formats', 'items', ''];
const NUMBERS = ['0', '-0', '1', '-1', '42', '1.5', '1e400', '-1e400', '1e-400', '9007199254740993', '123456789012345678901234567890', '1E+2', '0.1e1', '2147483648', '-2147483649', '4294967296', '1e21', '5e-324'];

function pubId(r: Rng): string {
  return r.pick([`${Date.now() - r.int(100_000)}-${r.int(5)}`, '0-0', '1-0', '9999999999999999-9999999999999999', '99999999999999999-0', '1-', '-1', '1-2-3', 'abc', '', ' 1-0', '1700000000000-0\n', `${Date.now() + 1e9}-0`]);
}

/** Random JSON text: valid JSON, but of every type, size and shape. */
function jsonText(r: Rng, depth: number): string {
  const k = r.int(depth > 0 ? 11 : 6);
  switch (k) {
    case 0:
      return 'null';
    case 1:
      return r.pick(['true', 'false']);
    case 2:
      return r.chance(0.5) ? r.pick(NUMBERS) : String(r.range(-1000, 1000));
    case 3:
    case 4:
      return JSON.stringify(randStr(r, 40));
    case 5:
      return r.pick(['""', '"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', '"\\"\\\\\\/\\b\\f\\n\\r\\t"', JSON.stringify('x'.repeat(r.int(6000))), JSON.stringify(channel(r)), JSON.stringify(pubId(r))]);
    case 6:
    case 7:
      return `[${Array.from({ length: r.int(5) }, () => jsonText(r, depth - 1)).join(',')}]`;
    case 8:
    case 9:
      return `{${Array.from({ length: r.int(5) }, () => `${JSON.stringify(r.chance(0.6) ? r.pick(KEYS) : randStr(r, 8))}:${jsonText(r, depth - 1)}`).join(',')}}`;
    default: {
      // Deep nesting: arrays or objects, up to what the frame limit allows.
      const n = r.pick([10, 100, 1000, 2500, 4000, 6000, 8000]);
      return r.chance(0.7) ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(Math.floor(n / 3)) + '1' + '}'.repeat(Math.floor(n / 3));
    }
  }
}

/** An argument: usually of the right type, sometimes of any type. */
function arg(r: Rng, good: () => string): string {
  return r.chance(0.75) ? good() : jsonText(r, 2);
}

function placeholder(r: Rng): string {
  return r.pick(['{"_placeholder":true,"num":0}', '{"_placeholder":true,"num":1}', '{"_placeholder":true,"num":-1}', '{"_placeholder":true,"num":"0"}', '{"_placeholder":true}', '{"_placeholder":1,"num":0}']);
}

function eventArray(r: Rng, binary: boolean): string {
  const ev = r.weighted([
    [20, 'subscribe'],
    [8, 'unsubscribe'],
    [20, 'publish'],
    [8, 'rpc'],
    [10, 'presence'],
    [4, 'auth:refresh'],
    [10, '*other'],
  ] as const);
  const ch = () => JSON.stringify(channel(r));
  let args: string[];
  switch (ev) {
    case 'subscribe':
      args = [arg(r, ch)];
      if (r.chance(0.6)) args.push(arg(r, () => r.pick(['{}', `{"since":${JSON.stringify(pubId(r))}}`, '{"since":null}', '{"since":1}', '{"x":1}', 'null'])));
      break;
    case 'unsubscribe':
    case 'presence':
      args = [arg(r, ch)];
      break;
    case 'publish':
      args = [arg(r, ch), arg(r, () => JSON.stringify(r.pick(EVENTS))), arg(r, () => jsonText(r, 3))];
      break;
    case 'rpc':
      args = [arg(r, () => JSON.stringify(r.pick(['echo', 'x', 'a.b:c-d', '', 'x'.repeat(101), '__proto__', 'constructor', 'toString', randStr(r, 10)]))), arg(r, () => jsonText(r, 2))];
      break;
    case 'auth:refresh':
      args = [arg(r, () => JSON.stringify(r.pick(['', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', randStr(r, 30)])))];
      break;
    default:
      args = Array.from({ length: r.int(3) }, () => jsonText(r, 2));
  }
  // Too few or too many arguments.
  if (r.chance(0.1)) args = args.slice(0, r.int(args.length + 1));
  if (r.chance(0.1)) args.push(...Array.from({ length: r.range(1, 3) }, () => jsonText(r, 1)));
  if (binary) args.splice(r.int(args.length + 1), 0, placeholder(r));
  const name =
    ev === '*other'
      ? r.weighted([
          [5, () => JSON.stringify(r.pick(EVENTS))],
          [3, () => JSON.stringify(randStr(r, 12))],
          [2, () => r.pick(NUMBERS)],
        ] as const)()
      : r.chance(0.05)
        ? r.pick(['1', '-1', '1e400', 'null', '{}', '[]'])
        : JSON.stringify(ev);
  return `[${[name, ...args].join(',')}]`;
}

function ackIdText(r: Rng): string {
  return r.weighted([
    [30, () => ''],
    [55, () => String(r.range(1, 100_000))],
    [5, () => r.pick(['0', '007', '4294967296', '9007199254740993', '99999999999999999999999', '1'.repeat(400)])],
    [5, () => r.pick(['-1', 'x', ' 1'])],
    [5, () => String(r.range(1, 9))],
  ] as const)();
}

/** One Engine.IO message carrying a Socket.IO packet (text), mostly well-formed. */
function sioFrame(r: Rng): string {
  const type = r.weighted<string | (() => string)>([
    [70, '2'],
    [5, '3'],
    [7, '5'],
    [2, '6'],
    [3, '0'],
    [3, '1'],
    [2, '4'],
    [4, () => r.pick(['7', '8', '9', 'a', '-', ' ', ''])],
  ]);
  let s = '4' + (typeof type === 'string' ? type : type());
  const binary = s === '45' || s === '46';
  if (binary) s += r.pick(['1', '1', '2', '0', '-1', '10', '11', '99999999999', 'abc', '']) + '-';
  if (r.chance(0.06)) s += r.pick(['/', '/admin', '/x', '//', '/\u0000', '/' + randStr(r, 10)]) + ',';
  s += ackIdText(r);
  switch (s[1]) {
    case '2':
    case '5':
      s += eventArray(r, binary);
      break;
    case '3':
    case '6':
      s += r.chance(0.7) ? `[${jsonText(r, 2)}]` : jsonText(r, 2);
      break;
    case '0':
      s += r.pick(['', '{}', '{"token":"x"}', '[]', '"x"', jsonText(r, 2)]);
      break;
    default:
      if (r.chance(0.5)) s += jsonText(r, 2);
  }
  return s;
}

/** Engine.IO-level frames: control packets, unknown types, junk. */
function engineFrame(r: Rng): string {
  return r.pick(['1', '2', '2probe', '3', '3probe', '5', '6', '0', '0{}', '7', '8', '9', 'x', '', ' ', '4', '40', '41', '40{}', '44', '44{"message":"x"}', '4\u0000', '\u0000', 'b', 'bAAAA', '4' + randStr(r, 20), randStr(r, 30)]);
}

function mutate(r: Rng, s: string): string {
  const n = r.range(1, 3);
  for (let i = 0; i < n; i++) {
    const at = r.int(s.length + 1);
    switch (r.int(10)) {
      case 0: // truncate
        s = s.slice(0, at);
        break;
      case 1: // delete a slice
        s = s.slice(0, at) + s.slice(at + r.range(1, 10));
        break;
      case 2: // insert random characters
        s = s.slice(0, at) + randStr(r, 4) + s.slice(at);
        break;
      case 3: // insert structure characters
        s = s.slice(0, at) + r.pick(PUNCT) + s.slice(at);
        break;
      case 4: // replace one character
        s = s.slice(0, at) + r.pick([...CTRL, ...UNI, ...PUNCT, ...'0123456789']) + s.slice(at + 1);
        break;
      case 5: // duplicate a slice
        s = s.slice(0, at) + s.slice(at, at + r.range(1, 20)) + s.slice(at);
        break;
      case 6: // a number becomes huge or weird
        s = s.replace(/\d+/, () => r.pick(NUMBERS));
        break;
      case 7: // another packet type
        s = s.slice(0, 1) + r.pick('0123456789ab-'.split('')) + s.slice(2);
        break;
      case 8: // whitespace around
        s = r.pick([' ', '\n', '\t', '\ufeff']) + s + r.pick(['', ' ', '\n', '\x1e']);
        break;
      default: // swap two halves
        s = s.slice(at) + s.slice(0, at);
    }
  }
  return s;
}

type Frame = { t: 'text'; s: string } | { t: 'textBytes'; b: Buffer } | { t: 'bin'; b: Buffer };

function textFrame(r: Rng): string {
  const s = r.weighted([
    [80, () => sioFrame(r)],
    [20, () => engineFrame(r)],
  ] as const)();
  return r.chance(0.3) ? mutate(r, s) : s;
}

function wsFrames(r: Rng): Frame[] {
  return r.weighted([
    [70, () => [{ t: 'text', s: textFrame(r) } as Frame]],
    [8, () => Array.from({ length: r.range(2, 4) }, () => ({ t: 'text', s: textFrame(r) }) as Frame)],
    [
      6,
      () => {
        // A binary event and its attachments, sometimes the right number of them.
        const head = `451-${r.chance(0.7) ? String(r.range(1, 100)) : ''}${eventArray(r, true)}`;
        const n = r.pick([0, 1, 1, 1, 2]);
        return [{ t: 'text', s: head } as Frame, ...Array.from({ length: n }, () => ({ t: 'bin', b: r.bytes(r.int(64)) }) as Frame)];
      },
    ],
    [5, () => [{ t: 'bin', b: r.bytes(r.pick([0, 1, 8, 64, 1000])) } as Frame]],
    [3, () => [{ t: 'textBytes', b: Buffer.concat([Buffer.from('42["publish","demo:a","e","'), r.bytes(r.range(1, 8)), Buffer.from('"]')]) } as Frame]],
    [
      4,
      () => [
        {
          t: 'text',
          s: r.chance(0.5) ? 'x'.repeat(r.range(MAX_PAYLOAD + 1, MAX_PAYLOAD * 2)) : `421["publish","demo:a","e",${JSON.stringify('y'.repeat(r.range(MAX_PAYLOAD - 100, MAX_PAYLOAD + 100)))}]`,
        } as Frame,
      ],
    ],
    [4, () => [{ t: 'text', s: `42${r.range(1, 1000)}["publish","demo:a","e",${jsonText(r, 1)}]` } as Frame, { t: 'text', s: `42${r.range(1, 1000)}["subscribe","demo:a",{"since":${JSON.stringify(pubId(r))}}]` } as Frame]],
  ] as const)();
}

const CONTENT_TYPES = ['text/plain;charset=UTF-8', 'text/plain;charset=UTF-8', 'text/plain', 'application/octet-stream', 'application/json', 'text/html', 'multipart/form-data; boundary=x', '', 'x/y;;;', 'text/plain; charset=latin1'];

/** A long-polling POST body: Engine.IO packets joined by the record separator, or junk. */
function pollingBody(r: Rng): { body: Buffer; contentType: string } {
  const contentType = r.pick(CONTENT_TYPES);
  const body = r.weighted([
    [
      70,
      () => {
        const parts = Array.from({ length: r.range(1, 4) }, () =>
          r.weighted([
            [75, () => textFrame(r)],
            [10, () => 'b' + r.bytes(r.int(40)).toString('base64')],
            [5, () => 'b' + randStr(r, 10)],
            [10, () => `42${r.range(1, 1000)}["subscribe",${JSON.stringify(r.pick(CHANNELS_OK))}${r.chance(0.5) ? `,{"since":${JSON.stringify(pubId(r))}}` : ''}]`],
          ] as const)(),
        );
        return Buffer.from(parts.join(r.chance(0.9) ? '\x1e' : r.pick(['\x1e\x1e', '\n', ''])) + (r.chance(0.1) ? '\x1e' : ''));
      },
    ],
    [8, () => r.bytes(r.range(1, 200))],
    [7, () => Buffer.from('4' + '2["publish","demo:a","e","' + 'z'.repeat(r.range(MAX_BODY - 50, MAX_BODY * 2)) + '"]')],
    [5, () => Buffer.alloc(0)],
    [10, () => Buffer.from(Array.from({ length: r.range(2, 40) }, () => textFrame(r)).join('\x1e'))],
  ] as const)();
  return { body, contentType };
}

/** Percent-encodes the UTF-8 bytes of `s` (lone surrogates become U+FFFD, as on the wire), never throws. */
function pct(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

interface SseCase {
  query: string;
  headers: Record<string, string>;
}

function sseCase(r: Rng): SseCase {
  const params: string[] = [];
  const n = r.range(0, 4);
  for (let i = 0; i < n; i++) params.push(`channel=${r.chance(0.8) ? pct(channel(r)) : randStr(r, 10).replace(/[#&]/g, '')}`);
  if (r.chance(0.1)) for (let i = 0; i < MAX_SUBS + r.range(1, 3); i++) params.push(`channel=demo:${i}`);
  if (r.chance(0.3)) params.push(`lastEventId=${pct(pubId(r))}`);
  if (r.chance(0.2)) params.push(`token=${pct(r.pick(['', 'x', 'a.b.c', randStr(r, 40)]))}`);
  if (r.chance(0.2)) params.push(r.pick(['%', '%zz', '&&&', '=', 'channel', 'channel=', '%E0%A4%A', 'channel=%00', 'x=' + 'y'.repeat(3000)]));
  const headers: Record<string, string> = {};
  if (r.chance(0.3)) headers['last-event-id'] = r.pick([pubId(r), 'garbage', '', ' ', '1-0 ', 'x'.repeat(500), '0-0', '-'.repeat(40)]);
  if (r.chance(0.1)) headers.origin = r.pick(['http://evil.example', 'null', '']);
  return { query: params.join('&'), headers };
}

interface ApiCase {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

function publishBodyText(r: Rng): string {
  const fields: string[] = [];
  const add = (k: string, v: string) => fields.push(`${JSON.stringify(k)}:${v}`);
  if (r.chance(0.8)) add('channel', arg(r, () => JSON.stringify(channel(r))));
  if (r.chance(0.15)) add('channels', arg(r, () => `[${Array.from({ length: r.pick([0, 1, 2, 101]) }, () => JSON.stringify(channel(r))).join(',')}]`));
  if (r.chance(0.85)) add('event', arg(r, () => JSON.stringify(r.pick(EVENTS))));
  if (r.chance(0.8)) add('data', jsonText(r, 3));
  if (r.chance(0.1)) add(r.pick(KEYS), jsonText(r, 1));
  return `{${fields.join(',')}}`;
}

function gripBodyText(r: Rng): string {
  const item = () => {
    const fmt = r.pick(['ws-message', 'http-stream', 'http-response', 'x']);
    const content = r.weighted([
      [6, () => `{"content":${jsonText(r, 2)}}`],
      [2, () => `{"content-bin":${JSON.stringify(r.chance(0.5) ? r.bytes(r.int(20)).toString('base64') : randStr(r, 10))}}`],
      [1, () => '{"action":"close"}'],
      [1, () => jsonText(r, 1)],
    ] as const)();
    return `{"channel":${arg(r, () => JSON.stringify(channel(r)))}${r.chance(0.3) ? `,"id":${arg(r, () => JSON.stringify(randStr(r, 10)))}` : ''},"formats":${r.chance(0.9) ? `{${JSON.stringify(fmt)}:${content}}` : jsonText(r, 1)}}`;
  };
  return r.chance(0.9) ? `{"items":[${Array.from({ length: r.pick([0, 1, 2, 3]) }, item).join(',')}]}` : jsonText(r, 2);
}

function apiCase(r: Rng): ApiCase {
  const auth = r.weighted([
    [85, 'Bearer test-key'],
    [5, 'Bearer wrong'],
    [3, ''],
    [3, 'Basic dGVzdA=='],
    [2, 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x'],
    [2, 'bearer   test-key  '],
  ] as const);
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = auth;
  const kind = r.weighted([
    [55, 'publish'],
    [15, 'grip'],
    [15, 'channel'],
    [5, 'stats'],
    [10, 'other'],
  ] as const);
  const ct = r.weighted<string | (() => string)>([
    [80, 'application/json'],
    [20, () => r.pick(CONTENT_TYPES)],
  ]);
  const contentType = typeof ct === 'string' ? ct : ct();
  if (contentType) headers['content-type'] = contentType;
  const bodyOf = (text: () => string): Buffer =>
    r.weighted([
      [80, () => Buffer.from(text())],
      [8, () => Buffer.from(mutate(r, text()))],
      [4, () => r.bytes(r.range(0, 100))],
      [4, () => Buffer.from(`{"channel":"demo:a","event":"e","data":"${'q'.repeat(r.range(MAX_BODY - 50, MAX_BODY + 500))}"}`)],
      [4, () => Buffer.alloc(0)],
    ] as const)();
  switch (kind) {
    case 'publish':
      if (r.chance(0.1)) headers['idempotency-key'] = r.pick(['k1', '', ' ', 'x'.repeat(201), 'é', String(r.int(1e6))]);
      return { method: 'POST', path: '/api/publish', headers, body: bodyOf(() => publishBodyText(r)) };
    case 'grip':
      if (r.chance(0.5)) headers.accept = 'application/json';
      return { method: 'POST', path: r.pick(['/publish/', '/publish']), headers, body: bodyOf(() => gripBodyText(r)) };
    case 'channel':
      return {
        method: 'GET',
        path: `/api/channels/${r.weighted([
          [60, () => pct(channel(r))],
          [40, () => r.pick(['%', '%zz', '%E0%A4%A', '%C0%80', '%FF', '%ED%A0%80', 'a%2Fb', '', 'a/b/c', '..%2F..', '%00'])],
        ] as const)()}`,
        headers,
      };
    case 'stats':
      return { method: 'GET', path: '/api/stats', headers };
    default:
      return {
        method: r.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']),
        path: r.pick(['/api/', '/api/x', '/api/publish', '/api/stats', '/api/channels/', '/api/node', '/publish/x']),
        headers,
        body: r.chance(0.5) ? bodyOf(() => publishBodyText(r)) : undefined,
      };
  }
}

/** Raw HTTP requests with broken framing, sent over a plain TCP socket. */
function rawRequest(r: Rng): Buffer {
  const path = r.pick(['/api/publish', '/publish/', '/sse?channel=demo:a', '/socket.io/?EIO=4&transport=polling', '/api/stats', '/api/channels/demo:a', `/${randStr(r, 10)}`]);
  const body = Buffer.from(r.chance(0.7) ? publishBodyText(r) : randStr(r, 50));
  const method = r.weighted<string>([
    [5, 'POST'],
    [3, 'GET'],
    [1, 'PUT'],
    [1, 'HEAD'],
    [1, r.pick(['FOO', 'G\u0000T', '', 'GET GET'])],
  ]);
  const version = r.weighted<string>([
    [8, 'HTTP/1.1'],
    [1, r.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', '', 'HTTP/1.1 x'])],
  ]);
  const head: string[] = [`${method} ${path} ${version}`, 'Host: 127.0.0.1', 'Authorization: Bearer test-key'];
  const framing = r.pick(['short', 'none', 'chunked', 'chunked-bad', 'dup-length', 'negative', 'huge', 'long-header', 'many-headers', 'bad-header', 'exact', 'exact']);
  switch (framing) {
    case 'short':
      head.push(`Content-Length: ${Math.max(0, body.length - r.range(1, 10))}`);
      break;
    case 'none':
      break;
    case 'chunked':
      head.push('Transfer-Encoding: chunked');
      return Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n'), Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
    case 'chunked-bad':
      head.push('Transfer-Encoding: chunked');
      return Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n'), Buffer.from(`${r.pick(['zz', 'fffffffffffffffff', '-1', ''])}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
    case 'dup-length':
      head.push(`Content-Length: ${body.length}`, `Content-Length: ${body.length + 5}`);
      break;
    case 'negative':
      head.push(`Content-Length: ${r.pick(['-1', 'abc', '1e3', ' ', '0x10'])}`);
      break;
    case 'huge':
      head.push(`Content-Length: ${r.pick(['99999999999999999999', '4294967296', String(MAX_BODY + 1)])}`);
      break;
    case 'long-header':
      head.push(`X-Long: ${'h'.repeat(r.pick([1000, 5000, 20000]))}`, `Content-Length: ${body.length}`);
      break;
    case 'many-headers':
      for (let i = 0; i < r.pick([50, 200]); i++) head.push(`X-H${i}: v`);
      head.push(`Content-Length: ${body.length}`);
      break;
    case 'bad-header':
      head.push(r.pick(['NoColon', ': empty-name', 'X-Bin: \u0000\u0001', 'Content-Type: application/json\u0000', ' folded: x', 'Last-Event-ID: \u00ff\u00fe']), `Content-Length: ${body.length}`);
      break;
    default:
      head.push(`Content-Length: ${body.length}`);
  }
  return Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

/** Engine.IO handshakes and upgrades with odd parameters: over HTTP (GET/POST) or as a WebSocket upgrade. */
interface HandshakeCase {
  via: 'http' | 'ws';
  method: string;
  query: string;
  headers: Record<string, string>;
}

function handshakeCase(r: Rng): HandshakeCase {
  const params: string[] = [];
  const eio = r.weighted<string | undefined>([
    [6, '4'],
    [1, '3'],
    [1, '5'],
    [1, undefined],
    [1, r.pick(['', 'x', '4.0', '04', '%00'])],
  ]);
  if (eio !== undefined) params.push(`EIO=${eio}`);
  const transport = r.weighted<string | undefined>([
    [4, 'polling'],
    [4, 'websocket'],
    [1, undefined],
    [1, r.pick(['', 'carrier-pigeon', 'webtransport', 'POLLING', 'websocket%00'])],
  ]);
  if (transport !== undefined) params.push(`transport=${transport}`);
  if (r.chance(0.3)) params.push(`sid=${r.pick(['', 'doesnotexist', 'x'.repeat(300), '%00', pct(randStr(r, 20))])}`);
  if (r.chance(0.15)) params.push(r.pick(['b64=1', 'j=0', 't=abc', 'token=x', 'EIO=4&EIO=3', '%zz', `x=${'y'.repeat(5000)}`]));
  const headers: Record<string, string> = {};
  if (r.chance(0.1)) headers.origin = r.pick(['http://evil.example', 'null']);
  if (r.chance(0.1)) headers['x-forwarded-for'] = r.pick(['1.2.3.4', 'garbage', '::1, 10.0.0.1', ',,,']);
  if (r.chance(0.1)) headers.cookie = r.pick(['io=x', 'a', '=;=;', 'x'.repeat(2000)]);
  return { via: r.chance(0.5) ? 'http' : 'ws', method: r.weighted<string>([[8, 'GET'], [2, r.pick(['POST', 'PUT', 'OPTIONS', 'DELETE'])]]), query: params.join('&'), headers };
}

type Case =
  | { kind: 'handshake'; hs: HandshakeCase }
  | { kind: 'ws'; frames: Frame[] }
  | { kind: 'polling'; body: Buffer; contentType: string }
  | { kind: 'sse'; sse: SseCase; raw: boolean }
  | { kind: 'api'; api: ApiCase }
  | { kind: 'raw'; bytes: Buffer };

function makeCase(index: number): Case {
  const r = new Rng(mix(SEED, index));
  return r.weighted([
    [55, () => ({ kind: 'ws', frames: wsFrames(r) }) as Case],
    [15, () => ({ kind: 'polling', ...pollingBody(r) }) as Case],
    [10, () => ({ kind: 'sse', sse: sseCase(r), raw: r.chance(0.2) }) as Case],
    [16, () => ({ kind: 'api', api: apiCase(r) }) as Case],
    [4, () => ({ kind: 'raw', bytes: rawRequest(r) }) as Case],
    [4, () => ({ kind: 'handshake', hs: handshakeCase(r) }) as Case],
  ] as const)();
}

function describeCase(c: Case): string {
  const show = (x: unknown) => (Buffer.isBuffer(x) ? { utf8: x.toString('utf8'), base64: x.toString('base64') } : x);
  const text = JSON.stringify(c, (_k, v) => (v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data) ? show(Buffer.from(v.data)) : v));
  return text.length > 1500 ? `${text.slice(0, 1500)}… (${text.length} chars)` : text;
}

// ---------------------------------------------------------------------------------------------------------
// Clients that run cases

/** The Socket.IO ack expected for a text frame, when the frame parses as an event with an id (as socket.io-parser would). */
function predictedAck(s: string): number | undefined {
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

interface Outcome {
  /** What answered: 'ack', 'close', 'status <n>'. */
  answer: string;
  /** Acks seen: id → the ack's first argument. */
  acks: Map<number, unknown>;
  /** Contract problems that are not hangs: internal errors, 5xx, malformed acks. */
  problems: string[];
}

let probeCounter = 900_000_000;
const PROBE_EVENT = '__fuzz_probe__';

function checkAck(where: string, value: unknown, problems: string[]) {
  const a = Array.isArray(value) ? value[0] : undefined;
  if (!a || typeof a !== 'object' || typeof (a as { ok?: unknown }).ok !== 'boolean') {
    problems.push(`${where}: ack is not { ok, … }: ${JSON.stringify(value)?.slice(0, 200)}`);
    return;
  }
  const ack = a as { ok: boolean; error?: { code?: unknown; message?: unknown } };
  if (ack.ok) return;
  if (!ack.error || !CODES.has(String(ack.error.code)) || typeof ack.error.message !== 'string') problems.push(`${where}: malformed error ack ${JSON.stringify(ack).slice(0, 200)}`);
  else if (ack.error.code === 'internal') problems.push(`${where}: internal error ack ${JSON.stringify(ack).slice(0, 200)}`);
}

/** A raw Engine.IO v4 WebSocket with a connected Socket.IO namespace. */
class RawWs {
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
    if (!(await this.until(() => this.nspConnected, ANSWER_MS)) || this.closed) throw new Error(`namespace connect not answered (${this.closeInfo || 'timeout'})`);
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
class PollSession {
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

function rawHttp(port: number, bytes: Buffer, ms: number): Promise<{ status?: number; closed: boolean; timedOut: boolean }> {
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
function errorLines(output: string): string[] {
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
    const frames = (j.err?.stack ?? '').split('\n').filter((l) => l.trim().startsWith('at ')).slice(0, 3).map((l) => l.trim().replace(/file:\/\/\S*\/(node_modules|dist)\//, '$1/'));
    out.push(`${j.msg}: ${j.err?.type}: ${j.err?.message?.split('\n')[0]} ${frames.join(' < ')}`);
  }
  return out;
}

/** Distinct error lines with counts. */
function nodeErrors(output: string): string[] {
  const seen = new Map<string, number>();
  for (const k of errorLines(output)) seen.set(k, (seen.get(k) ?? 0) + 1);
  return [...seen].map(([k, n]) => `${n}× ${k}`);
}

// ---------------------------------------------------------------------------------------------------------

describe(`fuzz (FUZZ_SEED=${SEED})`, { timeout: BUDGET_MS + 120_000 }, () => {
  let node: TestNode;
  let bystander: Client;
  const ticks: number[] = [];
  const hard: string[] = []; // hangs, exits, bystander failures
  const problems: string[] = []; // contract violations: internal errors, 5xx, malformed acks
  const openWs = new Set<RawWs>();
  const openPolls = new Set<PollSession>();
  const stats = { cases: 0, byKind: {} as Record<string, number>, answers: {} as Record<string, number> };
  let ran = 0;
  let startedAt = 0;
  let logCursor = 0;

  const fail = (list: string[], index: number | undefined, c: Case | undefined, msg: string) => {
    const line = index === undefined ? msg : `case ${index} (${c?.kind}): ${msg}\n    replay: ${REPLAY(index)}\n    payload: ${c ? describeCase(c) : '?'}`;
    list.push(line);
    if (list.length <= 20) console.error(`[fuzz] ${line}`);
  };

  before(async () => {
    console.log(`[fuzz] FUZZ_SEED=${SEED} cases=${CASES}${ONLY !== undefined ? ` (only case ${ONLY})` : ''} budget=${BUDGET_MS} ms`);
    node = await startNode({
      env: {
        MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD),
        MAX_HTTP_BODY_BYTES: String(MAX_BODY),
        MAX_PUBLISH_BYTES: String(MAX_PUBLISH),
        MAX_SUBSCRIPTIONS: String(MAX_SUBS),
        EVENTS_PER_SECOND: '100000',
        HANDSHAKES_PER_SECOND_PER_IP: '100000',
        CONNECTIONS_PER_IP: '100000',
        CONNECTIONS_PER_USER: '100000',
        PING_INTERVAL_MS: '4000',
        PING_TIMEOUT_MS: '4000',
        LOG_LEVEL: 'warn',
      },
    });
    logCursor = node.output().length;
    bystander = await connect(node.url);
    bystander.on('tick', (data: { seq: number }, meta: { channel: string }) => {
      if (meta?.channel === BYSTANDER_CHANNEL) ticks.push(data.seq);
    });
    const ack = await bystander.timeout(5000).emitWithAck('subscribe', BYSTANDER_CHANNEL);
    assert.equal(ack.ok, true);
  });

  after(async () => {
    for (const w of openWs) w.terminate();
    for (const p of openPolls) await p.close().catch(() => {});
    bystander?.disconnect();
    await node?.stop();
    if (hard.length || problems.length) console.error(`[fuzz] seed was FUZZ_SEED=${SEED}`);
  });

  const alive = () => node.proc.exitCode === null && node.proc.signalCode === null;

  async function runWs(w: { ws?: RawWs }, c: Extract<Case, { kind: 'ws' }>, out: Outcome) {
    if (!w.ws || w.ws.closed) {
      if (w.ws) openWs.delete(w.ws);
      w.ws = new RawWs(node.port);
      openWs.add(w.ws);
      await w.ws.open();
    }
    const ws = w.ws;
    const want: number[] = [];
    if (c.frames.length === 1 && c.frames[0]!.t === 'text') {
      const id = predictedAck(c.frames[0]!.s);
      if (id !== undefined && id < 900_000_000) want.push(id);
    }
    for (const f of c.frames) ws.send(f);
    const probe = ++probeCounter;
    ws.send({ t: 'text', s: `42${probe}["${PROBE_EVENT}"]` });
    const answered = await ws.until(() => ws.hasAck(probe) && want.every((id) => ws.hasAck(id)), ANSWER_MS);
    if (!answered) throw new Error(`no answer within ${ANSWER_MS} ms: waiting for acks ${JSON.stringify([...want, probe])}, connection still open`);
    for (const [id, v] of ws.drainAcks()) {
      out.acks.set(id, v);
      if (id === probe) {
        const a = Array.isArray(v) ? (v[0] as { error?: { code?: string } }) : undefined;
        if (a?.error?.code !== 'not_found') out.problems.push(`the probe after the case was answered ${JSON.stringify(v)}`);
      } else checkAck(`ack ${id}`, v, out.problems);
    }
    out.answer = ws.closed ? `close ${ws.closeInfo.split(' ')[0]}` : 'ack';
    if (ws.closed) openWs.delete(ws);
  }

  async function runPolling(w: { poll?: PollSession }, c: Extract<Case, { kind: 'polling' }>, out: Outcome) {
    if (!w.poll || w.poll.closed) {
      if (w.poll) openPolls.delete(w.poll);
      w.poll = new PollSession(node.url);
      openPolls.add(w.poll);
      await w.poll.open();
    }
    const p = w.poll;
    const status = await p.post(c.body, c.contentType);
    if (status >= 500) out.problems.push(`polling POST answered ${status}`);
    // Whatever the body did, the session answers a probe or is gone.
    const probe = ++probeCounter;
    const st = await p.post(Buffer.from(`42${probe}["${PROBE_EVENT}"]`), 'text/plain;charset=UTF-8').catch(() => 0);
    if (st !== 200) {
      p.closed = true;
      out.answer = `status ${status}, then closed`;
    } else {
      const got = await p.poll(ANSWER_MS, (pk) => pk.startsWith(`43${probe}[`), (pk) => {
        const m = /^43(\d+)(\[[\s\S]*)$/.exec(pk);
        if (m && Number(m[1]) !== probe) {
          let v: unknown;
          try {
            v = JSON.parse(m[2]!);
          } catch {
            v = pk;
          }
          checkAck(`polling ack ${m[1]}`, v, out.problems);
        }
      });
      out.answer = got ? `status ${status}, probe ack` : `status ${status}, then closed`;
    }
    if (p.closed) openPolls.delete(p);
  }

  async function runSse(c: Extract<Case, { kind: 'sse' }>, out: Outcome) {
    let status: number | undefined;
    let body = '';
    if (c.raw) {
      const headers = Object.entries(c.sse.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      const r = await rawHttp(node.port, Buffer.from(`GET /sse?${c.sse.query} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`, 'latin1'), ANSWER_MS);
      if (r.timedOut) throw new Error(`raw SSE request not answered within ${ANSWER_MS} ms`);
      status = r.status;
      out.answer = status !== undefined ? `status ${status}` : 'close';
    } else {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new Error('timeout')), ANSWER_MS);
      try {
        const res = await fetch(`${node.url}/sse?${c.sse.query}`, { headers: c.sse.headers, signal: ac.signal });
        status = res.status;
        if (status === 200) {
          // The stream starts with the retry line; then the client goes away.
          const reader = res.body!.getReader();
          const first = await reader.read();
          body = Buffer.from(first.value ?? []).toString();
          if (!/retry: \d+/.test(body)) out.problems.push(`SSE stream started without its retry line: ${JSON.stringify(body.slice(0, 100))}`);
          ac.abort();
        } else {
          body = await res.text();
        }
      } catch (err) {
        if (ac.signal.aborted && status === undefined) throw new Error(`SSE request not answered within ${ANSWER_MS} ms`);
        if (status === undefined) throw err;
      } finally {
        clearTimeout(timer);
      }
      out.answer = `status ${status}`;
    }
    if (status !== undefined && !SSE_STATUSES.has(status)) out.problems.push(`SSE answered ${status} ${body.slice(0, 200)}`);
    if (status !== undefined && status !== 200 && !c.raw) checkErrorBody(body, out);
  }

  function checkErrorBody(body: string, out: Outcome) {
    try {
      const j = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
      if (!j.error || !CODES.has(String(j.error.code)) || typeof j.error.message !== 'string') out.problems.push(`error body is not { error: { code, message } }: ${body.slice(0, 200)}`);
    } catch {
      out.problems.push(`error body is not JSON: ${body.slice(0, 200)}`);
    }
  }

  async function runApi(c: Extract<Case, { kind: 'api' }>, out: Outcome) {
    let res: Response;
    try {
      res = await fetch(`${node.url}${c.api.path}`, {
        method: c.api.method,
        headers: c.api.headers,
        body: c.api.method === 'GET' || c.api.method === 'HEAD' ? undefined : c.api.body,
        signal: AbortSignal.timeout(ANSWER_MS),
      });
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new Error(`HTTP API request not answered within ${ANSWER_MS} ms`);
      // fetch refused to send it (invalid header value, …): nothing reached the node.
      out.answer = `not sent: ${(err as Error).message}`;
      return;
    }
    const body = await res.text();
    out.answer = `status ${res.status}`;
    if (!API_STATUSES.has(res.status) && !(c.api.method === 'OPTIONS' || c.api.method === 'HEAD')) out.problems.push(`HTTP ${c.api.method} ${c.api.path} answered ${res.status}: ${body.slice(0, 200)}`);
    if (res.status !== 200 && c.api.method !== 'HEAD' && c.api.method !== 'OPTIONS') checkErrorBody(body, out);
  }

  async function runHandshake(c: Extract<Case, { kind: 'handshake' }>, out: Outcome) {
    const path = `/socket.io/?${c.hs.query}`;
    if (c.hs.via === 'http') {
      let res: Response;
      try {
        res = await fetch(`${node.url}${path}`, { method: c.hs.method, headers: c.hs.headers, body: c.hs.method === 'POST' || c.hs.method === 'PUT' ? '40' : undefined, signal: AbortSignal.timeout(ANSWER_MS) });
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') throw new Error(`handshake request not answered within ${ANSWER_MS} ms`);
        out.answer = 'close';
        return;
      }
      await res.arrayBuffer();
      out.answer = `status ${res.status}`;
      if (res.status >= 500 && res.status !== 503) out.problems.push(`handshake ${c.hs.method} ${path.slice(0, 100)} answered ${res.status}`);
      return;
    }
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}${path}`, { headers: c.hs.headers, maxPayload: 64 * 1024 * 1024 });
    ws.on('error', () => {});
    out.answer = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), ANSWER_MS);
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        resolve(`status ${res.statusCode}`);
        res.resume();
      });
      ws.once('open', () => {
        clearTimeout(timer);
        resolve('open');
      });
      ws.once('close', () => {
        clearTimeout(timer);
        resolve('close');
      });
    });
    ws.terminate();
    if (out.answer === 'timeout') throw new Error(`WebSocket handshake not answered within ${ANSWER_MS} ms`);
    if (/^status 5/.test(out.answer) && out.answer !== 'status 503') out.problems.push(`WebSocket handshake ${path.slice(0, 100)} answered ${out.answer}`);
  }

  async function runRaw(c: Extract<Case, { kind: 'raw' }>, out: Outcome) {
    const r = await rawHttp(node.port, c.bytes, ANSWER_MS);
    if (r.timedOut) throw new Error(`raw HTTP request not answered (no status line, no close) within ${ANSWER_MS} ms`);
    out.answer = r.status !== undefined ? `status ${r.status}` : 'close';
    if (r.status !== undefined && r.status >= 500 && r.status !== 503) out.problems.push(`raw request answered ${r.status}`);
  }

  async function runCase(w: { ws?: RawWs; poll?: PollSession }, index: number) {
    let c: Case;
    try {
      c = makeCase(index);
    } catch (err) {
      fail(hard, index, undefined, `the test's case generator threw: ${(err as Error).stack}`);
      return;
    }
    const out: Outcome = { answer: '?', acks: new Map(), problems: [] };
    try {
      switch (c.kind) {
        case 'ws':
          await runWs(w, c, out);
          break;
        case 'polling':
          await runPolling(w, c, out);
          break;
        case 'sse':
          await runSse(c, out);
          break;
        case 'api':
          await runApi(c, out);
          break;
        case 'raw':
          await runRaw(c, out);
          break;
        case 'handshake':
          await runHandshake(c, out);
          break;
      }
    } catch (err) {
      if (!alive()) fail(hard, index, c, `the node exited (code ${node.proc.exitCode}, signal ${node.proc.signalCode}) around this case`);
      else fail(hard, index, c, (err as Error).message);
      // A connection that hung is replaced.
      w.ws?.terminate();
      w.ws = undefined;
      w.poll = undefined;
      return;
    }
    // Errors the node logged meanwhile (with several workers, possibly caused by a concurrent case).
    const output = node.output();
    if (output.length > logCursor) {
      const fresh = errorLines(output.slice(output.lastIndexOf('\n', logCursor) + 1));
      logCursor = output.length;
      for (const e of fresh) out.problems.push(`the node logged an error around this case${WORKERS > 1 ? ' (or a concurrent one)' : ''}: ${e}`);
    }
    for (const p of out.problems) fail(problems, index, c, p);
    stats.cases++;
    stats.byKind[c.kind] = (stats.byKind[c.kind] ?? 0) + 1;
    const a = out.answer.replace(/not sent:.*/, 'not sent');
    stats.answers[`${c.kind}: ${a}`] = (stats.answers[`${c.kind}: ${a}`] ?? 0) + 1;
    if (VERBOSE) console.log(`[fuzz] case ${index} ${c.kind} → ${out.answer} ${describeCase(c).slice(0, 300)}`);
  }

  test('every case is answered; the node never stops and the bystander keeps receiving', async () => {
    startedAt = Date.now();
    let nextIndex = ONLY ?? 0;
    const last = ONLY !== undefined ? ONLY + 1 : CASES;
    let stop = false;

    // Watchdog: the process, /healthz and the bystander's publications, all along.
    const watchdog = (async () => {
      let seq = 0;
      while (!stop) {
        if (!alive()) {
          fail(hard, undefined, undefined, `the node exited (code ${node.proc.exitCode}, signal ${node.proc.signalCode}) after about ${ran} cases\n${node.output().slice(-3000)}`);
          stop = true;
          return;
        }
        try {
          const h = await fetch(`${node.internalUrl}/healthz`, { signal: AbortSignal.timeout(ANSWER_MS) });
          if (h.status !== 200) fail(hard, undefined, undefined, `/healthz answered ${h.status} after about ${ran} cases`);
          const n = seq++;
          const res = await fetch(`${node.url}/api/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: 'Bearer test-key' },
            body: JSON.stringify({ channel: BYSTANDER_CHANNEL, event: 'tick', data: { seq: n } }),
            signal: AbortSignal.timeout(ANSWER_MS),
          });
          if (res.status !== 200) fail(hard, undefined, undefined, `publishing to the bystander answered ${res.status} after about ${ran} cases`);
          await res.arrayBuffer();
          await waitFor(() => ticks.includes(n), { timeout: ANSWER_MS, interval: 10, what: `bystander tick ${n}` });
        } catch (err) {
          fail(hard, undefined, undefined, `bystander/health check failed after about ${ran} cases: ${(err as Error).message}`);
        }
        await sleep(200);
      }
    })();

    const worker = async () => {
      const w: { ws?: RawWs; poll?: PollSession } = {};
      try {
        while (!stop && nextIndex < last) {
          if (Date.now() - startedAt > BUDGET_MS) {
            stop = true;
            break;
          }
          const i = nextIndex++;
          await runCase(w, i);
          ran++;
          if (hard.length > 50) stop = true;
        }
      } finally {
        stop = true;
      }
    };
    const results = await Promise.allSettled(Array.from({ length: ONLY !== undefined ? 1 : WORKERS }, worker));
    stop = true;
    await watchdog;
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    // Errors the node logged after the last case finished (logging is asynchronous).
    await sleep(300);
    const rest = errorLines(node.output().slice(node.output().lastIndexOf('\n', logCursor) + 1));
    for (const e of rest) {
      if (ONLY !== undefined) fail(problems, ONLY, makeCase(ONLY), `the node logged an error after this case: ${e}`);
      else fail(problems, undefined, undefined, `the node logged an error after the last cases: ${e}`);
    }
    // Give the bystander's last tick a moment, then check it got every one, once, in order.
    const elapsed = Date.now() - startedAt;
    console.log(`[fuzz] FUZZ_SEED=${SEED}: ${ran} cases in ${elapsed} ms (${stats.cases} completed)`);
    console.log(`[fuzz] cases by kind: ${JSON.stringify(stats.byKind)}`);
    console.log(`[fuzz] answers: ${JSON.stringify(Object.fromEntries(Object.entries(stats.answers).sort((a, b) => b[1] - a[1])))}`);
    const errs = nodeErrors(node.output());
    if (errs.length) console.log(`[fuzz] the node logged errors:\n  ${errs.join('\n  ')}`);
    if (ran < last - (ONLY ?? 0)) console.log(`[fuzz] stopped at the time budget after ${ran} of ${CASES} cases`);
    assert.ok(alive(), 'the node process is still running');
    assert.equal((await fetch(`${node.internalUrl}/healthz`)).status, 200);
    assert.ok(bystander.connected, 'the bystander is still connected');
    assert.deepEqual(ticks, Array.from({ length: ticks.length }, (_, i) => i), 'the bystander got every tick once, in order');
    assert.ok(ticks.length > 0, 'the bystander received ticks');
    assert.deepEqual(hard, [], `${hard.length} case(s) hung or broke the node (FUZZ_SEED=${SEED}):\n${hard.slice(0, 10).join('\n')}`);
  });

  test('no case gets an internal error, a 5xx or a malformed answer; no uncaught exception in the node', async () => {
    const uncaught = await metricValue(node.internalUrl, 'switchboard_uncaught_exceptions_total');
    const distinct = [
      ...new Set(
        problems.map((p) =>
          p
            .split('\n')[0]!
            .replace(/^case \d+ \(\w+\): /, '')
            .replace(/ around this case( \(or a concurrent one\))?/, '')
            .replace(/ack \d+/, 'ack N')
            .replace(/\/api\/channels\/\S+/, '/api/channels/…'),
        ),
      ),
    ];
    assert.deepEqual(problems, [], `${problems.length} contract violation(s) (FUZZ_SEED=${SEED}); distinct:\n  ${distinct.slice(0, 20).join('\n  ')}\nthe node logged:\n  ${nodeErrors(node.output()).join('\n  ')}\nfirst cases:\n${problems.slice(0, 8).join('\n')}`);
    assert.equal(uncaught, 0, `switchboard_uncaught_exceptions_total is ${uncaught}:\n${node.output().split('\n').filter((l) => l.includes('uncaught') || l.includes('unhandled')).slice(0, 5).join('\n')}`);
  });

  test('afterwards the accounting is back to the bystander alone', async () => {
    for (const w of openWs) w.ws.close();
    for (const p of openPolls) await p.close().catch(() => {});
    openWs.clear();
    openPolls.clear();
    // Sessions fuzzed into a half-open state end at the ping timeout (4 s + 4 s).
    let last = '';
    try {
      await waitFor(
        async () => {
          const [ws, polling, sse, stats] = await Promise.all([
            metricValue(node.internalUrl, 'switchboard_connections', { transport: 'websocket' }),
            metricValue(node.internalUrl, 'switchboard_connections', { transport: 'polling' }),
            metricValue(node.internalUrl, 'switchboard_connections', { transport: 'sse' }),
            fetch(`${node.url}/api/stats`, { headers: { authorization: 'Bearer test-key' } }).then((r) => r.json() as Promise<{ connections: number }>),
          ]);
          last = JSON.stringify({ websocket: ws, polling, sse, statsConnections: stats.connections });
          return ws + polling === 1 && sse === 0 && stats.connections === 1;
        },
        { timeout: 20_000, interval: 250, what: 'connections back to the bystander alone' },
      );
    } catch {
      assert.fail(`connections did not return to the bystander alone within 20 s; last seen ${last} (FUZZ_SEED=${SEED})`);
    }
    const problems: string[] = [];
    const get = async (c: string) => (await (await fetch(`${node.url}/api/channels/${c}`, { headers: { authorization: 'Bearer test-key' } })).json()) as { subscribers: number; members?: unknown[] };
    const by = await get(BYSTANDER_CHANNEL);
    if (by.subscribers !== 1) problems.push(`${BYSTANDER_CHANNEL}: ${JSON.stringify(by)}`);
    for (const c of ['demo:a', 'demo:b', 'demo:c', 'orders:x', 'chat:1', 'a']) {
      const info = await get(c);
      if (info.subscribers !== 0 || (info.members ?? []).length !== 0) problems.push(`${c}: ${JSON.stringify(info)}`);
    }
    const subs = await metricValue(node.internalUrl, 'switchboard_subscriptions');
    if (subs !== 1) problems.push(`switchboard_subscriptions is ${subs} while only the bystander is connected, with one subscription: the gauge (or the adapter rooms it counts) leaks`);
    assert.deepEqual(problems, [], `accounting is off after the fuzz (FUZZ_SEED=${SEED}):\n  ${problems.join('\n  ')}`);
  });
});
