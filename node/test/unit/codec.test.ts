// The binary codec: bytes survive JSON, and user data can never be mistaken for the marker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answerShape, decodeData, decodeParsed, encodeData, Shape, stringifyData } from '../../src/core/codec.js';
import { SbError } from '../../src/core/errors.js';

const roundTrip = (v: unknown) => {
  const json = stringifyData(v);
  return decodeParsed(JSON.parse(json), json);
};

test('Buffer, ArrayBuffer and typed arrays come back as the same bytes (a Buffer)', () => {
  const bytes = Buffer.from([0, 1, 2, 254, 255]);
  for (const v of [bytes, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 5), new Uint8Array(bytes), new Uint16Array([1, 65535])]) {
    const out = roundTrip({ file: v, n: [v] }) as { file: Buffer; n: Buffer[] };
    const expect = Buffer.isBuffer(v)
      ? v
      : v instanceof ArrayBuffer
        ? Buffer.from(v)
        : Buffer.from((v as ArrayBufferView).buffer, (v as ArrayBufferView).byteOffset, (v as ArrayBufferView).byteLength);
    assert.ok(Buffer.isBuffer(out.file));
    assert.deepEqual([...out.file], [...expect]);
    assert.deepEqual([...out.n[0]!], [...expect]);
  }
  assert.ok(Buffer.isBuffer(roundTrip(Buffer.from('top'))));
});

test('the wire form is the documented marker', () => {
  assert.equal(stringifyData({ b: Buffer.from('hi') }), '{"b":{"$sb":"bin","b64":"aGk="}}');
});

test('user objects shaped like the marker stay user objects, at any depth', () => {
  const tricky = [
    { $sb: 'bin', b64: 'aGk=' },
    { $sb: 'esc', v: { $sb: 'bin', b64: 'aGk=' } },
    { a: [{ $sb: 'bin', b64: 'AA==', extra: Buffer.from([7]) }] },
    { $sb: null },
    '"$sb"',
  ];
  for (const v of tricky) {
    const out = roundTrip(v);
    assert.deepEqual(
      JSON.parse(JSON.stringify(out, (_k, x) => (x?.type === 'Buffer' ? `bytes:${x.data}` : x))),
      JSON.parse(JSON.stringify(v, (_k, x) => (x?.type === 'Buffer' ? `bytes:${x.data}` : x))),
    );
  }
  assert.ok(Buffer.isBuffer((roundTrip(tricky[2]) as any).a[0].extra));
});

test('data without bytes or markers is passed through untouched (no copy)', () => {
  const plain = { a: [1, 'x', { b: null }], d: new Date(0) };
  assert.equal(encodeData(plain), plain);
  const parsed = { a: 1 };
  assert.equal(decodeParsed(parsed, '{"a":1}'), parsed);
  // What the HTTP API decodes: a parsed body's data, copied only when it holds a marker.
  const body = JSON.parse('{"a":[1,{"b":"x"}],"c":{"d":null}}');
  assert.equal(decodeData(body), body);
  assert.deepEqual(decodeData(JSON.parse('{"a":[1,{"b":"x"}]}')), { a: [1, { b: 'x' }] });
  assert.equal(decodeData(5), 5);
});

test('data nested too deeply to walk is bad input (bad_request), as the HTTP API answers it, not a crash', () => {
  // What JSON.parse accepts from a 16 KB body: brackets 8000 deep.
  const deep = JSON.parse(`${'['.repeat(8000)}${']'.repeat(8000)}`);
  assert.throws(
    () => decodeData(deep),
    (e: unknown) => e instanceof SbError && e.code === 'bad_request',
  );
});

test('answerShape: plain JSON, bytes or toJSON anywhere (Socket.IO must encode it), or nested past the limit', () => {
  assert.equal(answerShape({ ok: true, result: { a: [1, 'x', null, { b: false }] } }, 100), Shape.Plain);
  assert.equal(answerShape('text', 100), Shape.Plain);
  assert.equal(answerShape({ ok: true, result: [{ bytes: Buffer.from([1]) }] }, 100), Shape.Special);
  assert.equal(answerShape({ r: new Uint8Array(2).buffer }, 100), Shape.Special);
  assert.equal(answerShape({ r: new Blob(['x']) }, 100), Shape.Special);
  assert.equal(answerShape({ when: new Date(0) }, 100), Shape.Special);
  // Depth decides first, also below an object with toJSON (its own values are walked as before).
  let deep: unknown = 1;
  for (let i = 0; i < 150; i++) deep = [deep];
  assert.equal(answerShape({ when: new Date(0), deep }, 100), Shape.TooDeep);
  const dated = Object.assign(new Date(0), { deep });
  assert.equal(answerShape(dated, 100), Shape.TooDeep);
  let edge: unknown = 1;
  for (let i = 0; i < 99; i++) edge = [edge];
  assert.equal(answerShape({ edge }, 100), Shape.Plain, 'exactly the limit is allowed');
  assert.equal(answerShape({ edge: [edge] }, 100), Shape.TooDeep);
});
