// Who may subscribe and publish where: the channel's rule, then token claims, the embedded app, the backend.
import type { ClientContext, SwitchboardApp } from '../core/app.js';
import type { Backend } from '../hooks/backend.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Logger } from '../log/logger.js';
import { SbError } from '../core/errors.js';
import { matchesAny } from './patterns.js';
import type { ChannelRules } from './rules.js';

export interface AuthorizerDeps {
  rules: ChannelRules;
  app: SwitchboardApp;
  backend: Backend | undefined;
  /** Tokens are verified (a JWT key is set): with no other authority, `authorized` channels then need a claim. */
  tokensRequired: boolean;
  metrics: Metrics;
  log: Logger;
}

export class Authorizer {
  constructor(private readonly d: AuthorizerDeps) {}

  async subscribe(ctx: ClientContext, channel: string): Promise<void> {
    const rule = this.d.rules.for(channel);
    if (rule.subscribe === 'anyone') return;
    if (matchesAny(ctx.channels, channel)) return;
    if (this.d.app.authorizeSubscribe) {
      if (await callApp(this.d.metrics, this.d.log, 'authorizeSubscribe', () => this.d.app.authorizeSubscribe!(ctx, channel))) return;
      throw new SbError('forbidden', `not allowed to subscribe to ${channel}`);
    }
    if (this.d.backend) {
      if (await this.d.backend.subscribe(ctx, channel)) return;
      throw new SbError('forbidden', `the backend refused the subscription to ${channel}`);
    }
    // No authority is configured at all (no JWT_SECRET, app hook or BACKEND_URL): the node is open.
    if (!this.d.tokensRequired) return;
    throw new SbError('forbidden', `the token does not allow ${channel}`);
  }

  /**
   * Returns (or throws) at once when the channel's rule or the token's claims decide, with no promise on the way of
   * every client publication; a promise when the app or the backend is asked.
   */
  publish(ctx: ClientContext, channel: string, event: string, data: unknown): void | Promise<void> {
    const rule = this.d.rules.for(channel);
    if (rule.publish === 'anyone') return;
    if (rule.publish === 'nobody') throw new SbError('forbidden', `clients may not publish to ${channel}`);
    if (matchesAny(ctx.publish, channel)) return;
    return this.askPublish(ctx, channel, event, data);
  }

  private async askPublish(ctx: ClientContext, channel: string, event: string, data: unknown): Promise<void> {
    if (this.d.app.authorizePublish) {
      if (await callApp(this.d.metrics, this.d.log, 'authorizePublish', () => this.d.app.authorizePublish!(ctx, channel, event, data)))
        return;
      throw new SbError('forbidden', `not allowed to publish to ${channel}`);
    }
    if (this.d.backend) {
      if (await this.d.backend.publish(ctx, channel, event, data)) return;
      throw new SbError('forbidden', `the backend refused the publication to ${channel}`);
    }
    throw new SbError('forbidden', `not allowed to publish to ${channel}`);
  }
}

/**
 * Runs embedded app code: its result, or on a throw / rejection an `internal` error for that one call,
 * logged and counted. SbErrors thrown on purpose by the app pass through with their code.
 */
export async function callApp<T>(metrics: Metrics, log: Logger, hook: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw appFailure(metrics, log, hook, err);
  }
}

/** What app code's throw becomes: an SbError as it is; anything else logged, counted, and `internal` for the client. */
export function appFailure(metrics: Metrics, log: Logger, hook: string, err: unknown): SbError {
  if (err instanceof SbError) return err;
  metrics.appErrors.inc({ hook });
  log.error({ err, hook }, 'application code failed');
  return new SbError('internal', `${hook} failed`);
}
