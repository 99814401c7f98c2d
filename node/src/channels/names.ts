// Channel and event name rules from the contract.
import { SbError } from '../core/errors.js';

const CHANNEL = /^[A-Za-z0-9_:.\-@/=,]{1,200}$/;

export function isValidChannel(name: unknown): name is string {
  return typeof name === 'string' && CHANNEL.test(name);
}

export function assertChannel(name: unknown): string {
  if (isValidChannel(name)) return name;
  throw new SbError('invalid_channel', 'a channel name is 1-200 characters of A-Z a-z 0-9 _ : . - @ / = ,');
}

/** Socket.IO's reserved event names, and our own `switchboard:` namespace for system events. */
const RESERVED = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
  'error',
  'ping',
  'pong',
  'message_ack',
]);
export const SYSTEM_EVENT_PREFIX = 'switchboard:';

/** Control characters (C0, DEL, C1) and Unicode line/paragraph separators: nothing that can end or bend a line. */
const UNSAFE_IN_EVENT = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * Event names: 1-100 characters, any but control characters (U+0000-U+001F, U+007F-U+009F) and U+2028/U+2029.
 * They are written raw after `event:` in SSE frames, where a line break would let a publisher forge events and ids.
 */
export function assertEventName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 100)
    throw new SbError('bad_request', 'event must be a string of 1-100 characters');
  if (UNSAFE_IN_EVENT.test(name)) throw new SbError('bad_request', 'event name must not contain control characters or line breaks');
  if (RESERVED.has(name) || name.startsWith(SYSTEM_EVENT_PREFIX)) throw new SbError('bad_request', `event name "${name}" is reserved`);
  return name;
}
