// Where a channel's keys live must not change between versions: nodes of two releases run side by side during a
// rolling deploy, and a channel mapped to another slot by one of them would split its sequence and history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelSlot } from '../../src/bus/slots.js';

test('a channel slot is FNV-1a of the name’s UTF-8 bytes modulo 16384, for ASCII and other names alike', () => {
  const known: Record<string, number> = {
    'chat:room-1': 5726,
    'bench:x:1999': 11591,
    'user/42@example.com': 12252,
    a: 10540,
    // Channel names are ASCII, but the function is defined on any string.
    é: 10433,
    'ch:日本': 5244,
  };
  for (const [name, slot] of Object.entries(known)) assert.equal(channelSlot(name), slot, name);
});
