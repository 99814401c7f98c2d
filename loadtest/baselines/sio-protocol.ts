// Switchboard's client protocol (subscribe, unsubscribe, publish, rpc) on a bare Socket.IO server, shared by the
// `stock` (ws engine) and `plain` (uWS) baselines: rooms for channels, nothing else (no history, auth, limits or metrics).
import type { Server, Socket } from 'socket.io';
import { checkPublish, fail, idGenerator, webhookCaller, type BaselineConfig } from './common.js';

type Ack = (res: unknown) => void;

/** Socket.IO hands the ack as the last argument; a client may leave optional arguments out. */
function split(args: unknown[]): { ack: Ack; rest: unknown[] } | undefined {
  const last = args[args.length - 1];
  if (typeof last !== 'function') return undefined;
  return { ack: last as Ack, rest: args.slice(0, -1) };
}

/** Serves the protocol on `io`; returns the publish function the HTTP API uses too. */
export function serveProtocol(io: Server, cfg: BaselineConfig): (channel: string, event: string, data: unknown) => string {
  const nextId = idGenerator(cfg.nodeId);
  const callWebhook = cfg.backendUrl ? webhookCaller(cfg.backendUrl) : undefined;
  const publish = (channel: string, event: string, data: unknown): string => {
    const id = nextId();
    io.to(channel).emit(event, data, { channel, id, ts: Date.now() });
    return id;
  };
  const handlers: Record<string, (socket: Socket, args: unknown[], ack: Ack) => void> = {
    subscribe(socket, [channel], ack) {
      const bad = checkPublish(channel, 'x');
      if (bad) return ack(bad);
      void socket.join(channel as string);
      ack({ ok: true, recovered: false, replayed: 0 });
    },
    unsubscribe(socket, [channel], ack) {
      if (typeof channel !== 'string') return ack(fail('invalid_channel', 'channel'));
      void socket.leave(channel);
      ack({ ok: true });
    },
    publish(_socket, [channel, event, data], ack) {
      const bad = checkPublish(channel, event);
      if (bad) return ack(bad);
      ack({ ok: true, id: publish(channel as string, event as string, data) });
    },
    rpc(_socket, [method, params], ack) {
      if (typeof method !== 'string') return ack(fail('bad_request', 'method'));
      if (callWebhook) {
        void callWebhook(method, params).then(ack);
        return;
      }
      if (method !== 'echo') return ack(fail('not_found', `no rpc method ${method}`));
      ack({ ok: true, result: params });
    },
  };
  io.on('connection', (socket) => {
    socket.onAny((event: string, ...args: unknown[]) => {
      const call = split(args);
      if (!call) return;
      const handler = handlers[event];
      if (!handler) return call.ack(fail('not_found', `unknown event ${event}`));
      handler(socket, call.rest, call.ack);
    });
  });
  return publish;
}
