// Socket.IO rooms as a delivery sink: the local members of a channel's room get each publication as
// (event, data, meta), through the fast room publisher; volatile ones skip sockets whose buffer is filling.
import type { Server } from 'socket.io';
import type { Publication } from '../bus/bus.js';
import type { Delivery, DeliverySink } from '../channels/delivery.js';
import type { Metrics } from '../metrics/metrics.js';
import { metaOf, publicationPacket, type Meta } from '../protocol/publication.js';
import { mayHoldMarker } from '../core/codec.js';
import type { RoomPublisher } from './room-publisher.js';

export interface SocketIoSinkOptions {
  io: Server;
  rooms: RoomPublisher;
  delivery: Delivery;
  metrics: Metrics;
  /** Outbound bytes past which a subscriber misses volatile publications. */
  volatileLimit: number;
}

export class SocketIoSink implements DeliverySink {
  private readonly delivered: { n: number };

  constructor(private readonly o: SocketIoSinkOptions) {
    this.delivered = o.metrics.deliveryCells.cell('socketio');
    const adapter = o.io.of('/').adapter;
    // A room goes when its last local member leaves (unsubscribe, disconnect): the node may stop receiving it.
    adapter.on('delete-room', (room: string) => {
      if (!adapter.sids.has(room)) o.delivery.untrack(room);
    });
    o.delivery.addSink(this);
  }

  private members(channel: string): Set<string> | undefined {
    const adapter = this.o.io.of('/').adapter;
    // Every socket also sits in a room named by its id; a channel can't be told from it by name alone.
    if (adapter.sids.has(channel)) return undefined;
    return adapter.rooms.get(channel);
  }

  has(channel: string): boolean {
    return (this.members(channel)?.size ?? 0) > 0;
  }

  deliver(p: Publication): number {
    const room = this.members(p.channel);
    if (!room || room.size === 0) return 0;
    let n: number;
    if (p.volatile) n = this.emitVolatile(room, p, metaOf(p));
    else {
      // Data the bus brought as text goes out as that text; only bytes take the encoder (binary attachments).
      const json = p.json;
      if (json !== undefined && !mayHoldMarker(json)) this.o.rooms.emitEncoded(p.channel, room, publicationPacket(p, json));
      else this.o.rooms.emit(p.channel, room, p.event, [p.data, metaOf(p)]);
      n = room.size;
    }
    this.delivered.n += n;
    return n;
  }

  notice(channel: string, data: { channel: string; recovered: false }) {
    this.o.io.local.to(channel).emit('switchboard:resync', data);
  }

  /**
   * Volatile publications skip subscribers whose WebSocket buffer is already half full (counted as dropped)
   * rather than pushing them toward a slow_consumer close. One send per socket: opt-in, not the fast path.
   */
  private emitVolatile(room: Set<string>, p: Publication, meta: Meta): number {
    const sockets = this.o.io.of('/').sockets;
    let n = 0;
    for (const sid of room) {
      const s = sockets.get(sid);
      if (!s) continue;
      const ws = (s.conn.transport as { socket?: { getBufferedAmount?(): number } }).socket;
      if ((ws?.getBufferedAmount?.() ?? 0) > this.o.volatileLimit) {
        this.o.metrics.dropped.inc({ reason: 'volatile' });
        continue;
      }
      s.emit(p.event, p.data, meta);
      n++;
    }
    return n;
  }
}
