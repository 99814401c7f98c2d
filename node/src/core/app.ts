// The embedding API's application component (Ratchet's MessageComponentInterface, done safely):
// RPC methods and authorization hooks. Exceptions in app code answer one call with `internal`, never crash.

/** Who is calling: built at connect time, passed to every app hook. */
export interface ClientContext {
  /** The user from the token's `sub` or the backend's `/connect` answer; undefined for anonymous clients. */
  user: string | undefined;
  /** Socket.IO socket id, or `sse:<n>` for SSE clients. */
  connectionId: string;
  /** Client address (X-Forwarded-For from a trusted proxy, else the peer). */
  ip: string;
  /** Channel patterns from the token's `channels` claim (undefined: no claim). */
  channels?: string[];
  /** Channel patterns from the token's `publish` claim. */
  publish?: string[];
  /** Free-form data from the backend's `/connect` answer or the token's `data` claim. */
  data?: unknown;
}

export type RpcHandler = (params: unknown, ctx: ClientContext) => unknown;

export interface SwitchboardApp {
  /** In-process RPC methods; a method not here goes to `POST {BACKEND_URL}/rpc/{method}`. */
  rpc?: Record<string, RpcHandler>;
  /** Decides `authorized` subscriptions (after token claims, before the backend webhook). */
  authorizeSubscribe?(ctx: ClientContext, channel: string): boolean | Promise<boolean>;
  /** Decides `authorized` publications. */
  authorizePublish?(ctx: ClientContext, channel: string, event: string, data: unknown): boolean | Promise<boolean>;
}
