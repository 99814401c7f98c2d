// Channel presence: who is subscribed to a channel across the cluster, counted per user.
import type { Server } from 'socket.io';
import type { ClientContext } from '../core/app.js';
import { SbError } from '../core/errors.js';

/** Cluster-wide members of a channel (Socket.IO clients, through the adapter on every node). */
export async function presenceOf(io: Server, channel: string) {
  let sockets;
  try {
    sockets = await io.in(channel).fetchSockets();
  } catch (err) {
    throw new SbError('timeout', `presence query timed out: ${(err as Error).message}`);
  }
  const byUser = new Map<string, number>();
  for (const s of sockets) {
    const user = (s.data as { ctx?: ClientContext } | undefined)?.ctx?.user ?? 'anonymous';
    byUser.set(user, (byUser.get(user) ?? 0) + 1);
  }
  return { count: sockets.length, members: [...byUser].map(([user, connections]) => ({ user, connections })) };
}
