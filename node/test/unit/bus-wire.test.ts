// The bus's payload on the wire: read without parsing the data, still readable whole (an older node's JSON.parse),
// and payloads in the older key order still read; a publication's data text becomes the Socket.IO packet the
// encoder would have made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Encoder } from 'socket.io-parser';
import { BusPublication } from '../../src/bus/bus.js';
import { fromWire, toWire } from '../../src/bus/redis-bus.js';
import { stringifyData } from '../../src/core/codec.js';
import { metaOf, publicationPacket } from '../../src/protocol/publication.js';

const NODE = JSON.stringify('node-1');
const tricky = ['plain', 'quote " in it', 'back\\slash', 'unicode é ☃ 😀', 'ends with backslash \\', '","d":{"x":1}', ''];
const datas: unknown[] = [
  null,
  0,
  -1.5e-7,
  'text',
  'a "quoted" \\ string\nwith lines',
  [1, [2, [3]]],
  { nested: { deep: [true, false, null] }, '"d":': '}' },
  { '': 'empty key', é: '☃' },
];

test('a payload is read back exactly, with its data as the text it was written with', () => {
  for (const channel of tricky)
    for (const event of tricky)
      for (const data of datas)
        for (const volatile of [false, true]) {
          const json = stringifyData(data);
          const raw = toWire(channel, event, json, 1_700_000_000_123, NODE, volatile);
          const r = fromWire(raw);
          assert.ok(r, raw);
          assert.equal(r.e, event);
          assert.equal(r.t, 1_700_000_000_123);
          assert.equal(r.v, volatile);
          assert.equal(r.dataJson, json);
          assert.equal(r.data, undefined, 'the data is not parsed on the way');
          // What a node that parses the whole payload (the format before the data went last) reads.
          const whole = JSON.parse(raw) as Record<string, unknown>;
          assert.deepEqual(whole, { c: channel, e: event, d: data, t: 1_700_000_000_123, o: 'node-1', ...(volatile ? { v: 1 } : {}) });
        }
});

test('a payload in the older key order (data in the middle) is still read, bytes and all', () => {
  const old = JSON.stringify({ c: 'ch', e: 'ev', d: { b: { $sb: 'bin', b64: 'aGk=' }, n: 1 }, t: 5, o: 'n1', v: 1 });
  const r = fromWire(old);
  assert.ok(r);
  assert.equal(r.e, 'ev');
  assert.equal(r.t, 5);
  assert.equal(r.v, true);
  assert.equal(r.dataJson, '{"b":{"$sb":"bin","b64":"aGk="},"n":1}');
  const p = new BusPublication('ch', r.e, r.dataJson, r.t, '5-0', r.v, r.data);
  assert.deepEqual(p.data, { b: Buffer.from('hi'), n: 1 });
});

test('what is not a payload reads as nothing', () => {
  for (const raw of [
    '',
    'null',
    '[]',
    '{"c":"x"',
    '{"c":"x","e":1,"t":2,"o":"n","d":null}',
    '{"c":"x","e":"y","t":"z","o":"n","d":1}',
    'not json',
  ])
    assert.equal(fromWire(raw), undefined, raw);
  // The frame is checked (a payload without its closing brace is none); the data text inside it is not parsed: it
  // is what a node of this cluster wrote through the publish script.
  assert.equal(fromWire(toWire('c', 'e', '1', 1, NODE).slice(0, -1)), undefined);
});

test("a bus publication's data is parsed only when asked for, and bytes come back as bytes", () => {
  const json = stringifyData({ file: Buffer.from([1, 2, 3]), s: 'x' });
  const p = new BusPublication('ch', 'ev', json, 1, '1-0');
  assert.deepEqual(p.data, { file: Buffer.from([1, 2, 3]), s: 'x' });
  assert.equal(p.data, p.data, 'parsed once');
  assert.equal(new BusPublication('ch', 'ev', '{broken', 1, '1-0').data, null);
});

test("a publication's packet is the Socket.IO encoder's, byte for byte", () => {
  const encoder = new Encoder();
  for (const channel of tricky)
    for (const event of tricky.slice(0, 4))
      for (const data of datas) {
        const p = new BusPublication(channel, event, stringifyData(data), 1_700_000_000_123, '1700000000123-42');
        const [expected] = encoder.encode({ type: 2, nsp: '/', data: [p.event, p.data, metaOf(p)] });
        assert.equal(publicationPacket(p, p.json), expected);
      }
});
