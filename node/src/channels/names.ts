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
const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener', 'error', 'ping', 'pong', 'message_ack']);
export const SYSTEM_EVENT_PREFIX = 'switchboard:';

export function assertEventName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 100)
    throw new SbError('bad_request', 'event must be a string of 1-100 characters');
  if (RESERVED.has(name) || name.startsWith(SYSTEM_EVENT_PREFIX))
    throw new SbError('bad_request', `event name "${name}" is reserved`);
  return name;
}
