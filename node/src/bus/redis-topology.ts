// Which Redis master serves which slot, and the clients to reach them: one Redis (URL or Sentinel) is a cluster
// of one shard that owns every slot; a Redis Cluster is read from ioredis's slot map, refreshed on a timer.
import type { Cluster, Redis } from 'ioredis';
import {
  createClusterNodeClient,
  createRedisClient,
  createRedisCluster,
  type ClientRole,
  type RedisConnectOptions,
} from './redis-connect.js';

export interface RedisTopology {
  readonly clustered: boolean;
  /** Scripts and single-key commands; routed by key in cluster mode. Fails fast while disconnected. */
  readonly commands: Redis | Cluster;
  /** The master serving `slot` now ('' while unknown). */
  ownerOf(slot: number): string;
  /** Every master with the first slot it serves. */
  masters(): Map<string, number>;
  /** A command client connected to that master itself (for pipelines that must all run there), if any. */
  nodeClient(master: string): Redis | undefined;
  /** A new subscriber connection to that master (the caller owns it). */
  subscriber(master: string, role: ClientRole): Redis;
  /** A new client for the Socket.IO adapter's classic pub/sub (PUBLISH reaches every node of a cluster). */
  adapterSubscriber(): Redis | Cluster;
  /** Called after the slot map was re-read (cluster mode); the caller compares owners itself. */
  onRefresh(fn: () => void): void;
  /** Asks for the slot map again now (after a failed canary, a MOVED, a pushed unsubscribe). */
  refresh(): void;
  connect(): Promise<void>;
  close(): Promise<void>;
}

const SINGLE = 'single';

/** One Redis (a URL, or the master Sentinel names): one shard that serves every slot. */
class SingleTopology implements RedisTopology {
  readonly clustered = false;
  readonly commands: Redis;
  constructor(
    private readonly o: RedisConnectOptions,
    commandTimeoutMs: number,
  ) {
    this.commands = createRedisClient(o, { role: 'publisher', failFast: true, commandTimeoutMs, lazyConnect: true });
  }
  ownerOf() {
    return SINGLE;
  }
  masters() {
    return new Map([[SINGLE, 0]]);
  }
  nodeClient() {
    return this.commands;
  }
  subscriber(_master: string, role: ClientRole) {
    return createRedisClient(this.o, role);
  }
  adapterSubscriber() {
    return createRedisClient(this.o, { role: 'adapter-subscriber', failFast: false });
  }
  onRefresh() {}
  refresh() {}
  async connect() {
    if (this.commands.status === 'wait') await this.commands.connect();
  }
  async close() {
    await this.commands.quit().catch(() => {});
    this.commands.disconnect();
  }
}

/**
 * A Redis Cluster. Sharded subscriptions are not left to ioredis's `shardedSubscribers` (5.11 handles a
 * server-pushed `sunsubscribe` as a command reply and resubscribes only on a refresh that sees a topology
 * change): the bus keeps one subscriber connection per master itself and moves channels when the slot map,
 * refreshed here on a timer, says their slot changed master.
 */
class ClusterTopology implements RedisTopology {
  readonly clustered = true;
  readonly commands: Cluster;
  constructor(
    private readonly o: RedisConnectOptions,
    commandTimeoutMs: number,
    slotsRefreshMs: number,
  ) {
    this.commands = createRedisCluster(o, { role: 'publisher', failFast: true, commandTimeoutMs, lazyConnect: true, slotsRefreshMs });
  }
  ownerOf(slot: number) {
    return this.commands.slots[slot]?.[0] ?? '';
  }
  masters() {
    const out = new Map<string, number>();
    this.commands.slots.forEach((nodes, slot) => {
      const m = nodes?.[0];
      if (m && !out.has(m)) out.set(m, slot);
    });
    return out;
  }
  nodeClient(master: string) {
    return this.commands.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === master);
  }
  subscriber(master: string, role: ClientRole) {
    const at = master.lastIndexOf(':');
    return createClusterNodeClient(this.o, role, { host: master.slice(0, at), port: Number(master.slice(at + 1)) });
  }
  adapterSubscriber() {
    return createRedisCluster(this.o, { role: 'adapter-subscriber', failFast: false });
  }
  onRefresh(fn: () => void) {
    this.commands.on('refresh', fn);
  }
  refresh() {
    this.commands.refreshSlotsCache();
  }
  async connect() {
    if (this.commands.status === 'wait') await this.commands.connect();
  }
  async close() {
    await this.commands.quit().catch(() => {});
    this.commands.disconnect();
  }
}

export function createTopology(o: RedisConnectOptions, opts: { commandTimeoutMs: number; slotsRefreshMs: number }): RedisTopology {
  return o.target.mode === 'cluster'
    ? new ClusterTopology(o, opts.commandTimeoutMs, opts.slotsRefreshMs)
    : new SingleTopology(o, opts.commandTimeoutMs);
}
