// LateAdmission: a WebSocket-first session's address admission, decided after the session opened.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LateAdmission, releaseSlots, type Admitted, type SessionSlots } from '../../src/limits/connections.js';

function slot(ip: string) {
  const s = { ip, released: 0, release: () => void s.released++ };
  return s;
}

test('once admitted, the slot takes its place on the session, and the session releases the slot', async () => {
  const s = slot('10.0.0.1');
  const session: SessionSlots = {};
  const late = new LateAdmission(Promise.resolve<Admitted>(s), session);
  session.sbAdmission = late;
  assert.equal(await late.settled, undefined);
  assert.equal(session.sbAdmission, s);
  assert.equal(late.ip, '10.0.0.1');
  releaseSlots(session);
  assert.equal(s.released, 1);
});

test('released before the verdict: the slot is given back as it comes, and the session never holds it', async () => {
  const s = slot('10.0.0.2');
  const session: SessionSlots = {};
  let admit!: (a: Admitted) => void;
  const late = new LateAdmission(new Promise<Admitted>((r) => (admit = r)), session);
  session.sbAdmission = late;
  releaseSlots(session);
  admit(s);
  assert.equal(await late.settled, undefined);
  assert.equal(s.released, 1);
  assert.equal(session.sbAdmission, late);
});

test('refused: settled gives the refusal, the session keeps nothing to release', async () => {
  const session: SessionSlots = {};
  const refusal = new Error('at most 2 connections per address');
  const late = new LateAdmission(Promise.reject(refusal), session);
  session.sbAdmission = late;
  assert.equal(await late.settled, refusal);
  assert.equal(late.ip, undefined);
  releaseSlots(session);
});
