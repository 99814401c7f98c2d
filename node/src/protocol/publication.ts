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

/** Sends one publication to one socket, as live delivery would (history replay). */
export function sendPublication(socket: Socket, p: Publication) {
  socket.emit(p.event, p.data, metaOf(p));
}
