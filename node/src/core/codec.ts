// Publication data in JSON-safe form and back: bytes (Buffer, ArrayBuffer, typed arrays) travel as base64
// inside a marker object, so the Redis bus, history, SSE and the HTTP API keep them as bytes.
//
// The wire form, documented in the README ("Binary data"):
//   bytes                              -> { "$sb": "bin", "b64": "<base64>" }
//   a user object with its own "$sb"   -> { "$sb": "esc", "v": { ...that object, its values encoded } }
// Escaping every user object that has a "$sb" key is what makes the form unambiguous: after encoding, an
// object with "$sb" is always one of ours, so user data can never be mistaken for bytes.

import { SbError } from './errors.js';

const MARK = '$sb';

type Bytes = Buffer | ArrayBuffer | ArrayBufferView;

function isBytes(v: unknown): v is Bytes {
  return v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

function toBuffer(v: Bytes): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** True when `data` holds bytes or an object that needs escaping: only then does encoding copy anything. */
function needsEncoding(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (isBytes(v)) return true;
  if (Array.isArray(v)) return v.some((x) => needsEncoding(x));
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
  if (Object.hasOwn(v, MARK)) return true;
  for (const k in v) if (Object.hasOwn(v, k) && needsEncoding((v as Record<string, unknown>)[k])) return true;
  return false;
}

function enc(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (isBytes(v)) return { [MARK]: 'bin', b64: toBuffer(v).toString('base64') };
  if (Array.isArray(v)) return v.map(enc);
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = enc(x);
  return Object.hasOwn(v, MARK) ? { [MARK]: 'esc', v: out } : out;
}

/** Publication data → a value JSON.stringify keeps exactly. Returns `data` itself when nothing needs encoding. */
export function encodeData(data: unknown): unknown {
  return needsEncoding(data) ? enc(data) : data;
}

function dec(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(dec);
  const o = v as Record<string, unknown>;
  if (Object.hasOwn(o, MARK)) {
    if (o[MARK] === 'bin' && typeof o.b64 === 'string') return Buffer.from(o.b64, 'base64');
    if (o[MARK] === 'esc' && o.v !== null && typeof o.v === 'object' && !Array.isArray(o.v))
      return decFields(o.v as Record<string, unknown>);
  }
  return decFields(o);
}

function decFields(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) out[k] = dec(x);
  return out;
}

/** True when a parsed JSON value holds a marker object anywhere: only then does decoding copy anything. */
function needsDecoding(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some(needsDecoding);
  if (Object.hasOwn(v, MARK)) return true;
  for (const k in v) if (Object.hasOwn(v, k) && needsDecoding((v as Record<string, unknown>)[k])) return true;
  return false;
}

/**
 * The inverse of encodeData, on a parsed JSON value: markers become Buffers again. Returns `value` itself when it
 * holds no marker (as encodeData does), so ordinary data published over HTTP is not copied on its way.
 */
export function decodeData(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  try {
    return needsDecoding(value) ? dec(value) : value;
  } catch (err) {
    // JSON.parse takes data nested thousands of levels deep; a recursive walk does not. Bad input, as in
    // Publisher.validate, not an internal error (found by the fuzz tests).
    if (err instanceof RangeError) throw new SbError('bad_request', 'data cannot be decoded (nested too deeply?)');
    throw err;
  }
}

/**
 * decodeData for a value parsed from `json` (by JSON.parse, so keys are spelled as written): skips the walk
 * when the text cannot hold a marker, which keeps the bus's hot path free of it for ordinary data.
 */
export function decodeParsed(value: unknown, json: string): unknown {
  return mayHoldMarker(json) ? decodeData(value) : value;
}

/** False when JSON text in the wire form cannot hold bytes or an escaped object: its parsed value is the data itself. */
export function mayHoldMarker(json: string): boolean {
  return json.includes(`"${MARK}"`);
}

/** JSON text of publication data in the wire form (what SSE and history carry). */
export function stringifyData(data: unknown): string {
  return JSON.stringify(encodeData(data) ?? null);
}

/** What answerShape() found in an answer. */
export const enum Shape {
  /** JSON text: JSON.stringify alone encodes it as Socket.IO's encoder would (no bytes, no toJSON to call). */
  Plain = 0,
  /** Holds bytes (which Socket.IO sends as attachments) or an object with toJSON(): Socket.IO's encoder must see it. */
  Special = 1,
  /** Nests objects or arrays more than the limit. */
  TooDeep = 2,
}

/**
 * Walks `v` once, at most `max` levels deep, so it answers for any input: whether it nests deeper than `max` (the
 * Socket.IO encoder walks an answer recursively and would throw on one nested thousands deep), and else whether it
 * is plain JSON text or holds something Socket.IO's encoder treats on its own (bytes, toJSON()).
 */
export function answerShape(v: unknown, max: number): Shape {
  return shapeOf(v, 0, max);
}

/** answerShape's walk: recursion (at most `max` frames) over own enumerable values, no pair per value. */
function shapeOf(x: unknown, depth: number, max: number): Shape {
  if (x === null || typeof x !== 'object') return Shape.Plain;
  if (ArrayBuffer.isView(x) || x instanceof ArrayBuffer || x instanceof Blob) return Shape.Special;
  if (depth >= max) return Shape.TooDeep;
  // An object with toJSON() is still walked for depth (Socket.IO walks what toJSON() gives, JSON.stringify too).
  let shape = typeof (x as { toJSON?: unknown }).toJSON === 'function' ? Shape.Special : Shape.Plain;
  const values: unknown[] = Array.isArray(x) ? x : Object.values(x);
  for (let i = 0; i < values.length; i++) {
    const y = values[i];
    if (y === null || typeof y !== 'object') continue;
    const s = shapeOf(y, depth + 1, max);
    if (s === Shape.TooDeep) return s;
    if (s === Shape.Special) shape = s;
  }
  return shape;
}
