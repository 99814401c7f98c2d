// The cluster bus: how publications get their ids, reach every node in order, and are kept in history.
// Two implementations: MemoryBus (one node, no Redis) and RedisBus. Everything above the bus is shared.
import type { ServerOptions } from 'socket.io';
import { decodeParsed } from '../core/codec.js';

/** A publication as it travels and as history keeps it. */
export interface Publication {
  channel: string;
  event: string;
  data: unknown;
  /** Unique within the channel, increasing in history order ("<ms>-<seq>", as Redis stream ids). */
  id: string;
  /** Milliseconds since the epoch at publish. */
  ts: number;
  /** Delivered on this node only (the cluster bus was down); not in history. */
  localOnly?: boolean;
  /** May be dropped for a subscriber whose outbound buffer is filling, instead of closing it (never in history). */
  volatile?: boolean;
  /**
   * `data` as JSON in the codec's wire form (`stringifyData(data)`), when the bus has it as text: a transport sends
   * it as it is instead of encoding `data` again.
   */
  json?: string;
}

const UNREAD = Symbol('unread');

/**
 * A publication as it came off the bus: its data stays the JSON text it arrived as until something asks for the
 * value (Socket.IO rooms and SSE streams send the text as it is, so a publication is never parsed on its way through).
 */
export class BusPublication implements Publication {
  private value: unknown;

  constructor(
    readonly channel: string,
    readonly event: string,
    readonly json: string,
    readonly ts: number,
    readonly id: string,
    readonly volatile?: boolean,
    data: unknown = UNREAD,
  ) {
    this.value = data;
  }

  get data(): unknown {
    if (this.value === UNREAD) {
      try {
        this.value = decodeParsed(JSON.parse(this.json), this.json);
      } catch {
        // Text the bus carried that is not JSON (a damaged Redis): nothing a subscriber could use.
        this.value = null;
      }
    }
    return this.value;
  }
}

export interface PublishInput {
  channel: string;
  event: string;
  data: unknown;
  ts: number;
  /** History bounds for this publication's channel (its rule's, else the node's); size 0 keeps none. */
  history: { size: number; ttlMs: number };
  /**
   * Publish at most once per `key` within `ttlSeconds`, cluster-wide (Idempotency-Key, GRIP item ids).
   * The check and the publish are one atomic step, so a retry after an ambiguous failure (a timeout whose
   * command ran later) answers with the first publication's id instead of publishing again or losing it.
   */
  once?: { key: string; ttlSeconds: number };
  /** See Publication.volatile. */
  volatile?: boolean;
  /** `stringifyData(data)`, when the caller already made it (Publisher.validate): the bus splices it in, not encoding twice. */
  dataJson?: string;
}

export interface PublishResult {
  id: string;
  /** True when the bus was down and only this node's subscribers got it (see RedisBus.publishLocal). */
  localOnly?: boolean;
  /** True when `once.key` had already published: `id` is that publication's. */
  duplicate?: boolean;
}

export interface HistoryRead {
  /** True when `since` is still in history, so `entries` holds everything after it. */
  found: boolean;
  entries: Publication[];
}

export interface NodeInfo {
  id: string;
  connections: number;
}

export interface BusHealth {
  ready: boolean;
  reason?: string;
}

/** Where a channel stood when this node started receiving it. */
export interface ChannelPosition {
  /** The channel's newest publication id, or (exact: false) a time-based id below anything published later. */
  id: string;
  /** True when `id` is this channel's own newest id ('0-0': none yet), so history can say whether it still holds it. */
  exact: boolean;
}

/** Why the bus asks for a channel to be resynchronised. */
export type ResyncKind =
  /** Publications of the channel were missed (a sequence gap, or a resubscribe): catch up from history. */
  | 'gap'
  /** The channel's state was lost or diverged (new epoch, a sequence handed out twice): history cannot say. */
  | 'reset';

export interface Bus {
  readonly mode: 'memory' | 'redis';
  /** Connects and verifies; resolves once the bus is usable (Redis: first canary round-trip). */
  start(): Promise<void>;
  /** Stores and fans out one publication. */
  publish(p: PublishInput): Promise<PublishResult>;
  /** Publications after `since` (exclusive), oldest first; `since` undefined: the last `limit`. */
  history(channel: string, since: string | undefined, limit: number, ttlMs: number): Promise<HistoryRead>;
  /**
   * Interest: from when this resolves, this node receives the channel's publications (and only then, so a
   * history read that follows misses nothing). Calls for a channel already received resolve at once.
   */
  subscribe(channel: string): Promise<ChannelPosition>;
  /** No local subscriber is left: the bus may stop receiving the channel (after a short linger). */
  unsubscribe(channel: string): void;
  /** Publications of subscribed channels, in id order per channel. */
  onPublication(fn: (p: Publication) => void): void;
  /**
   * Called, before the publication that revealed it is handed on, when the bus may have missed publications
   * of one channel. Other channels are not affected.
   */
  onResync(fn: (channel: string, kind: ResyncKind) => void): void;
  /**
   * A lower bound of the ids this node will receive from now on, for streams that must name a position on a
   * channel nothing was delivered on yet (SSE multi-channel resume): the newest Redis time this node has seen
   * (its channels' publications and its shard canaries).
   */
  watermark(): string;
  /** Called when readiness changes. */
  onHealth(fn: (h: BusHealth) => void): void;
  health(): BusHealth;
  /** The Socket.IO adapter constructor for cluster-wide rooms (undefined: Socket.IO's in-memory one). */
  adapter(): ServerOptions['adapter'] | undefined;
  /** Tells the bus how to describe this node to the cluster (heartbeats). */
  setSelf(fn: () => NodeInfo): void;
  /** Every live node with its connection count. */
  nodes(): Promise<NodeInfo[]>;
  close(): Promise<void>;
}
