// Graceful drain: readiness off at once, no new connections, clients told to reconnect and disconnected
// in paced batches over the drain window (so they spread over the other nodes), then Redis closed.
import type { Server } from 'socket.io';
import type { Bus } from '../bus/bus.js';
import type { Readiness } from '../health/readiness.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';

export interface DrainOptions {
  /** Time between /readyz turning 503 and the first disconnect (DRAIN_DELAY_MS). @default 2000 */
  drainDelayMs: number;
  /** Window over which clients are disconnected in paced batches (DRAIN_TIMEOUT_MS). @default 10000 */
  drainTimeoutMs: number;
}

export interface DrainDeps {
  options: DrainOptions;
  io: Server;
  bus: Bus;
  readiness: Readiness;
  metrics: Metrics;
  log: Logger;
  closePublic(): void;
  closeInternal(): void;
  /** Other connections to end (SSE streams). */
  extraClients?: () => { end(): void }[];
}

const TICK_MS = 100;

export async function drain(d: DrainDeps): Promise<void> {
  const log = d.log.child({ module: 'lifecycle' });
  d.readiness.startDrain();
  d.metrics.draining.set(1);
  // HAProxy (or Kubernetes) needs a few health checks to see /readyz 503; until then it may still send
  // new clients here, so the listener stays open and nobody is disconnected yet.
  if (d.options.drainDelayMs > 0) await new Promise((r) => setTimeout(r, d.options.drainDelayMs));
  d.closePublic();
  const sockets = [...d.io.of('/').sockets.values()];
  const extra = d.extraClients?.() ?? [];
  const total = sockets.length + extra.length;
  log.info({ connections: total, windowMs: d.options.drainTimeoutMs }, 'draining');
  const ticks = Math.max(1, Math.floor(d.options.drainTimeoutMs / TICK_MS));
  const perTick = Math.max(1, Math.ceil(total / ticks));
  const queue: (() => void)[] = [
    ...sockets.map((s) => () => {
      if (!s.connected) return;
      // A transport close (not a namespace disconnect) makes socket.io-client reconnect by itself.
      s.emit('switchboard:reconnect', { reason: 'draining' });
      (s.conn as unknown as { sbCloseReason?: string }).sbCloseReason = 'draining';
      // Polling: an Engine.IO CLOSE packet is final for python-engineio (it reconnects only after a failed
      // request), so the session is dropped without one: the reconnect event above went out on the pending
      // poll if there was one, and the client's next poll fails (unknown session, or refused) — after which
      // python-socketio and socket.io-client both reconnect. A WebSocket is simply closed.
      const t = s.conn.transport as unknown as { name: string; writable?: boolean; send?(packets: { type: string }[]): void };
      if (t.name === 'polling' && t.writable) t.send?.([{ type: 'noop' }]);
      s.conn.close(t.name === 'polling');
    }),
    ...extra.map((c) => () => c.end()),
  ];
  while (queue.length > 0) {
    for (const fn of queue.splice(0, perTick)) fn();
    d.metrics.drainRemaining.set(d.io.engine.clientsCount + queue.length);
    if (queue.length) await new Promise((r) => setTimeout(r, TICK_MS));
  }
  // Give the last close frames a moment to flush.
  const deadline = Date.now() + 2000;
  while (d.io.engine.clientsCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  d.metrics.drainRemaining.set(d.io.engine.clientsCount);
  await d.bus.close();
  d.closeInternal();
  log.info('drained');
}
