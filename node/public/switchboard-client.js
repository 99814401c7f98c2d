// Switchboard client helper (ESM, browser or Node): wraps a socket.io-client socket, remembers the last
// publication id per channel, and re-subscribes with `since` after every reconnect, so an application sees
// each publication once, in order, and is told (onLost) whenever something could not be recovered.
//
//   import { io } from 'socket.io-client';            // or /socket.io/socket.io.esm.min.js in a browser
//   import { SwitchboardClient } from 'switchboard/client';
//   const sb = new SwitchboardClient(io(url));
//   sb.onLost((channel) => reloadFromYourApi(channel)); // history could not fill a gap
//   await sb.subscribe('chat:1');
//   sb.socket.on('chat', (data, meta) => …);

export class SwitchboardClient {
  /** @param {import('socket.io-client').Socket} socket */
  constructor(socket) {
    this.socket = socket;
    /** @type {Map<string, string | undefined>} channel → last id seen */
    this.channels = new Map();
    this.lostHandlers = [];
    this.recoverHandlers = [];
    this.connectedOnce = socket.connected;
    socket.onAny((_event, _data, meta) => {
      if (meta && typeof meta === 'object' && typeof meta.id === 'string' && this.channels.has(meta.channel))
        this.channels.set(meta.channel, meta.id);
    });
    socket.on('connect', () => {
      if (this.connectedOnce) for (const channel of this.channels.keys()) this.resubscribe(channel);
      this.connectedOnce = true;
    });
    // The node could not fill a gap from history (Redis restarted empty, history trimmed): say so.
    socket.on('switchboard:resync', (msg) => {
      if (msg && this.channels.has(msg.channel) && msg.recovered === false) for (const fn of this.lostHandlers) fn(msg.channel, msg);
    });
  }

  /** Subscribes (replaying from `opts.since` if given); resolves with the server's ack. */
  async subscribe(channel, opts = {}) {
    const ack = await this.socket.emitWithAck('subscribe', channel, opts);
    if (ack && ack.ok) this.channels.set(channel, this.channels.get(channel) ?? opts.since);
    return ack;
  }

  async unsubscribe(channel) {
    this.channels.delete(channel);
    return this.socket.emitWithAck('unsubscribe', channel);
  }

  /** The last publication id seen on `channel`. */
  lastId(channel) {
    return this.channels.get(channel);
  }

  /** fn(channel, ack) after a re-subscription that recovered everything. */
  onRecovered(fn) {
    this.recoverHandlers.push(fn);
  }

  /** fn(channel, ack) when publications may have been lost (history trimmed or gone): reload from your source of truth. */
  onLost(fn) {
    this.lostHandlers.push(fn);
  }

  async resubscribe(channel) {
    const since = this.channels.get(channel);
    let ack;
    try {
      ack = await this.socket.timeout(10000).emitWithAck('subscribe', channel, since ? { since } : {});
    } catch {
      return; // disconnected again: the next connect retries
    }
    if (!ack || !ack.ok) return;
    const handlers = since && !ack.recovered ? this.lostHandlers : this.recoverHandlers;
    for (const fn of handlers) fn(channel, ack);
  }
}
