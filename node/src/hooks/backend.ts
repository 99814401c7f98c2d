// What the node asks of the backend over HTTP (implemented by webhooks.ts); undefined when BACKEND_URL is unset.
import type { ClientContext } from '../core/app.js';

export interface ConnectInput {
  headers: Record<string, string>;
  auth: unknown;
  ip: string;
}
export interface ConnectVerdict {
  user: string;
  channels?: string[];
  data?: unknown;
}

export interface Backend {
  connect(input: ConnectInput): Promise<ConnectVerdict>;
  subscribe(ctx: ClientContext, channel: string): Promise<boolean>;
  publish(ctx: ClientContext, channel: string, event: string, data: unknown): Promise<boolean>;
  rpc(ctx: ClientContext, method: string, params: unknown): Promise<unknown>;
  disconnect(ctx: ClientContext, reason: string): void;
}
