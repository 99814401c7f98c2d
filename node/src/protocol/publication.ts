// How a publication reaches a Socket.IO client: event name, data, and meta, the client protocol's wire shape.
import type { Socket } from 'socket.io';
import type { Publication } from '../bus/bus.js';

/** The third argument of every delivered event. */
export interface Meta {
  channel: string;
  id: string;
  ts: number;
}

export function metaOf(p: Publication): Meta {
  return { channel: p.channel, id: p.id, ts: p.ts };
}

/**
 * The Socket.IO packet (socket.io-parser's text form, no namespace, no ack) of `p` with its data as `json`, text that
 * holds no bytes (codec.mayHoldMarker): what encoding [event, data, meta] would give, byte for byte, without parsing
 * the data or walking it for bytes.
 */
export function publicationPacket(p: Publication, json: string): string {
  return `2[${JSON.stringify(p.event)},${json},{"channel":${JSON.stringify(p.channel)},"id":${JSON.stringify(p.id)},"ts":${JSON.stringify(p.ts)}}]`;
}

/** Sends one publication to one socket, as live delivery would (history replay). */
export function sendPublication(socket: Socket, p: Publication) {
  socket.emit(p.event, p.data, metaOf(p));
}
