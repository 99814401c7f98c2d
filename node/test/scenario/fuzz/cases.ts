// The fuzz cases: seeded generators of Engine.IO / Socket.IO frames, polling bodies, SSE requests, HTTP API
// bodies, handshakes and raw HTTP requests. Case i of a seed is the same in every target file.
import { Rng, mix, seedFrom } from '../../helpers/rng.js';

export const SEED = seedFrom('FUZZ_SEED');
// The node under fuzz runs with these small limits (16 KB frames and bodies: enough for JSON nested ~8000 deep).
export const MAX_PAYLOAD = 16384;
export const MAX_BODY = 16384;
export const MAX_PUBLISH = 4096;
export const MAX_SUBS = 10;

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
const CHANNELS_BAD = [
  '',
  ' ',
  'a b',
  'x'.repeat(201),
  'démo:a',
  'demo:\u0000',
  'demo:a\n',
  '../../etc',
  '%2F',
  'demo:a?x=1',
  'demo:*',
  '#',
  '\ud800',
];
function channel(r: Rng): string {
  return r.weighted([
    [60, () => r.pick(CHANNELS_OK)],
    [20, () => r.pick(CHANNELS_BAD)],
    [10, () => Array.from({ length: r.range(1, 30) }, () => CHANNEL_CHARS[r.int(CHANNEL_CHARS.length)]).join('')],
    [10, () => randStr(r, 20)],
  ] as const)();
}

const EVENTS = [
  'e',
  'message',
  'tick',
  'chat',
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'error',
  'ping',
  'pong',
  'message_ack',
  'newListener',
  'removeListener',
  'switchboard:closing',
  'switchboard:x',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '',
  'x'.repeat(100),
  'x'.repeat(101),
  '😀',
  '\u0000',
];
const KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'since',
  'channel',
  'channels',
  'event',
  'data',
  'ok',
  '_placeholder',
  'num',
  'id',
  'formats',
  'items',
  '',
];
const NUMBERS = [
  '0',
  '-0',
  '1',
  '-1',
  '42',
  '1.5',
  '1e400',
  '-1e400',
  '1e-400',
  '9007199254740993',
  '123456789012345678901234567890',
  '1E+2',
  '0.1e1',
  '2147483648',
  '-2147483649',
  '4294967296',
  '1e21',
  '5e-324',
];

function pubId(r: Rng): string {
  return r.pick([
    `${Date.now() - r.int(100_000)}-${r.int(5)}`,
    '0-0',
    '1-0',
    '9999999999999999-9999999999999999',
    '99999999999999999-0',
    '1-',
    '-1',
    '1-2-3',
    'abc',
    '',
    ' 1-0',
    '1700000000000-0\n',
    `${Date.now() + 1e9}-0`,
  ]);
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
      return r.pick([
        '""',
        '"\\u0000"',
        '"\\ud800"',
        '"\\udfff\\ud800"',
        '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
        JSON.stringify('x'.repeat(r.int(6000))),
        JSON.stringify(channel(r)),
        JSON.stringify(pubId(r)),
      ]);
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
  return r.pick([
    '{"_placeholder":true,"num":0}',
    '{"_placeholder":true,"num":1}',
    '{"_placeholder":true,"num":-1}',
    '{"_placeholder":true,"num":"0"}',
    '{"_placeholder":true}',
    '{"_placeholder":1,"num":0}',
  ]);
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
      if (r.chance(0.6))
        args.push(
          arg(r, () => r.pick(['{}', `{"since":${JSON.stringify(pubId(r))}}`, '{"since":null}', '{"since":1}', '{"x":1}', 'null'])),
        );
      break;
    case 'unsubscribe':
    case 'presence':
      args = [arg(r, ch)];
      break;
    case 'publish':
      args = [arg(r, ch), arg(r, () => JSON.stringify(r.pick(EVENTS))), arg(r, () => jsonText(r, 3))];
      break;
    case 'rpc':
      args = [
        arg(r, () =>
          JSON.stringify(r.pick(['echo', 'x', 'a.b:c-d', '', 'x'.repeat(101), '__proto__', 'constructor', 'toString', randStr(r, 10)])),
        ),
        arg(r, () => jsonText(r, 2)),
      ];
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
  return r.pick([
    '1',
    '2',
    '2probe',
    '3',
    '3probe',
    '5',
    '6',
    '0',
    '0{}',
    '7',
    '8',
    '9',
    'x',
    '',
    ' ',
    '4',
    '40',
    '41',
    '40{}',
    '44',
    '44{"message":"x"}',
    '4\u0000',
    '\u0000',
    'b',
    'bAAAA',
    '4' + randStr(r, 20),
    randStr(r, 30),
  ]);
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

export type Frame = { t: 'text'; s: string } | { t: 'textBytes'; b: Buffer } | { t: 'bin'; b: Buffer };

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
    [
      3,
      () => [
        {
          t: 'textBytes',
          b: Buffer.concat([Buffer.from('42["publish","demo:a","e","'), r.bytes(r.range(1, 8)), Buffer.from('"]')]),
        } as Frame,
      ],
    ],
    [
      4,
      () => [
        {
          t: 'text',
          s: r.chance(0.5)
            ? 'x'.repeat(r.range(MAX_PAYLOAD + 1, MAX_PAYLOAD * 2))
            : `421["publish","demo:a","e",${JSON.stringify('y'.repeat(r.range(MAX_PAYLOAD - 100, MAX_PAYLOAD + 100)))}]`,
        } as Frame,
      ],
    ],
    [
      4,
      () => [
        { t: 'text', s: `42${r.range(1, 1000)}["publish","demo:a","e",${jsonText(r, 1)}]` } as Frame,
        { t: 'text', s: `42${r.range(1, 1000)}["subscribe","demo:a",{"since":${JSON.stringify(pubId(r))}}]` } as Frame,
      ],
    ],
  ] as const)();
}

const CONTENT_TYPES = [
  'text/plain;charset=UTF-8',
  'text/plain;charset=UTF-8',
  'text/plain',
  'application/octet-stream',
  'application/json',
  'text/html',
  'multipart/form-data; boundary=x',
  '',
  'x/y;;;',
  'text/plain; charset=latin1',
];

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
            [
              10,
              () =>
                `42${r.range(1, 1000)}["subscribe",${JSON.stringify(r.pick(CHANNELS_OK))}${r.chance(0.5) ? `,{"since":${JSON.stringify(pubId(r))}}` : ''}]`,
            ],
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
export function pct(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8'))
    out += /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
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
  if (r.chance(0.2))
    params.push(r.pick(['%', '%zz', '&&&', '=', 'channel', 'channel=', '%E0%A4%A', 'channel=%00', 'x=' + 'y'.repeat(3000)]));
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
  if (r.chance(0.8))
    add(
      'channel',
      arg(r, () => JSON.stringify(channel(r))),
    );
  if (r.chance(0.15))
    add(
      'channels',
      arg(r, () => `[${Array.from({ length: r.pick([0, 1, 2, 101]) }, () => JSON.stringify(channel(r))).join(',')}]`),
    );
  if (r.chance(0.85))
    add(
      'event',
      arg(r, () => JSON.stringify(r.pick(EVENTS))),
    );
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
    [85, 'Bearer test-key-0123456789abcdef'],
    [5, 'Bearer wrong'],
    [3, ''],
    [3, 'Basic dGVzdA=='],
    [2, 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x'],
    [2, 'bearer   test-key-0123456789abcdef  '],
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
  const path = r.pick([
    '/api/publish',
    '/publish/',
    '/sse?channel=demo:a',
    '/socket.io/?EIO=4&transport=polling',
    '/api/stats',
    '/api/channels/demo:a',
    `/${randStr(r, 10)}`,
  ]);
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
  const head: string[] = [`${method} ${path} ${version}`, 'Host: 127.0.0.1', 'Authorization: Bearer test-key-0123456789abcdef'];
  const framing = r.pick([
    'short',
    'none',
    'chunked',
    'chunked-bad',
    'dup-length',
    'negative',
    'huge',
    'long-header',
    'many-headers',
    'bad-header',
    'exact',
    'exact',
  ]);
  switch (framing) {
    case 'short':
      head.push(`Content-Length: ${Math.max(0, body.length - r.range(1, 10))}`);
      break;
    case 'none':
      break;
    case 'chunked':
      head.push('Transfer-Encoding: chunked');
      return Buffer.concat([
        Buffer.from(head.join('\r\n') + '\r\n\r\n'),
        Buffer.from(`${body.length.toString(16)}\r\n`),
        body,
        Buffer.from('\r\n0\r\n\r\n'),
      ]);
    case 'chunked-bad':
      head.push('Transfer-Encoding: chunked');
      return Buffer.concat([
        Buffer.from(head.join('\r\n') + '\r\n\r\n'),
        Buffer.from(`${r.pick(['zz', 'fffffffffffffffff', '-1', ''])}\r\n`),
        body,
        Buffer.from('\r\n0\r\n\r\n'),
      ]);
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
      head.push(
        r.pick([
          'NoColon',
          ': empty-name',
          'X-Bin: \u0000\u0001',
          'Content-Type: application/json\u0000',
          ' folded: x',
          'Last-Event-ID: \u00ff\u00fe',
        ]),
        `Content-Length: ${body.length}`,
      );
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
  return {
    via: r.chance(0.5) ? 'http' : 'ws',
    method: r.weighted<string>([
      [8, 'GET'],
      [2, r.pick(['POST', 'PUT', 'OPTIONS', 'DELETE'])],
    ]),
    query: params.join('&'),
    headers,
  };
}

export type Case =
  | { kind: 'handshake'; hs: HandshakeCase }
  | { kind: 'ws'; frames: Frame[] }
  | { kind: 'polling'; body: Buffer; contentType: string }
  | { kind: 'sse'; sse: SseCase; raw: boolean }
  | { kind: 'api'; api: ApiCase }
  | { kind: 'raw'; bytes: Buffer };

/** The kinds of case, by target, with their weights (the share of cases each gets). */
export const KINDS = [
  [55, 'ws'],
  [15, 'polling'],
  [10, 'sse'],
  [16, 'api'],
  [4, 'raw'],
  [4, 'handshake'],
] as const;
export type Kind = Case['kind'];

const MAKE: { [K in Kind]: (r: Rng) => Extract<Case, { kind: K }> } = {
  ws: (r) => ({ kind: 'ws', frames: wsFrames(r) }),
  polling: (r) => ({ kind: 'polling', ...pollingBody(r) }),
  sse: (r) => ({ kind: 'sse', sse: sseCase(r), raw: r.chance(0.2) }),
  api: (r) => ({ kind: 'api', api: apiCase(r) }),
  raw: (r) => ({ kind: 'raw', bytes: rawRequest(r) }),
  handshake: (r) => ({ kind: 'handshake', hs: handshakeCase(r) }),
};

/** Case `index` of the seed: the same for every target file, which runs only the cases of its kinds. */
export function makeCase(index: number): Case {
  const r = new Rng(mix(SEED, index));
  return MAKE[r.weighted(KINDS)](r);
}

/** The kind of case `index`, from its first draw alone: a file skips other targets' cases without generating them. */
export function kindOf(index: number): Kind {
  return new Rng(mix(SEED, index)).weighted(KINDS);
}

export function describeCase(c: Case): string {
  const show = (x: unknown) => (Buffer.isBuffer(x) ? { utf8: x.toString('utf8'), base64: x.toString('base64') } : x);
  const text = JSON.stringify(c, (_k, v) =>
    v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data) ? show(Buffer.from(v.data)) : v,
  );
  return text.length > 1500 ? `${text.slice(0, 1500)}… (${text.length} chars)` : text;
}
