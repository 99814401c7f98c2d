// Fast local fan-out to one channel: one encode, one uWS publish to the room's topic for WebSocket clients,
// and direct writes only for clients still on long-polling.
// Why: Socket.IO's own uWS broadcast walks every socket of the room on every message to find the polling ones;
// with 100 subscribers a room, that walk was the subscriber node's top CPU cost in `npm run bench` (profile).
import type { Server, Socket } from 'socket.io';
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';

/** Socket.IO's topic for a room of the main namespace (socket.io/dist/uws.js: namespace, \x1f, room). */
const topicOf = (room: string) => `/\x1f${room}`;
const EVENT = 2; // socket.io-parser PacketType.EVENT

export class RoomPublisher {
  private readonly polling = new Set<Socket>();

  constructor(
    private readonly io: Server,
    private readonly app: TemplatedApp,
  ) {
    io.on('connection', (socket) => {
      if (socket.conn.transport.name === 'websocket') return;
      this.polling.add(socket);
      const forget = () => this.polling.delete(socket);
      socket.conn.once('upgrade', forget);
      socket.once('disconnect', forget);
    });
  }

  /** Sends (event, ...args) to this node's members of `room`. */
  emit(room: string, members: ReadonlySet<string>, event: string, args: unknown[]) {
    const encoded = (this.io.encoder as { encode(p: unknown): (string | Buffer)[] }).encode({
      type: EVENT,
      nsp: '/',
      data: [event, ...args],
    });
    this.send(room, members, encoded);
  }

  /** Sends a packet already encoded (socket.io-parser's text form of an event without binary parts). */
  emitEncoded(room: string, members: ReadonlySet<string>, packet: string) {
    this.send(room, members, [packet]);
  }

  private send(room: string, members: ReadonlySet<string>, encoded: (string | Buffer)[]) {
    const topic = topicOf(room);
    for (const e of encoded) this.app.publish(topic, typeof e === 'string' ? `4${e}` : e, typeof e !== 'string');
    if (this.polling.size === 0) return;
    for (const s of this.polling) {
      if (members.has(s.id))
        (s.client as unknown as { writeToEngine(p: unknown[], o: object): void }).writeToEngine(encoded, { preEncoded: true });
    }
  }
}
