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
  private readonly rules: ChannelRules;
  private readonly app: SwitchboardApp;
  private readonly backend: Backend | undefined;
  private readonly tokensRequired: boolean;
  private readonly metrics: Metrics;
  private readonly log: Logger;

  constructor(d: AuthorizerDeps) {
    this.rules = d.rules;
    this.app = d.app;
    this.backend = d.backend;
    this.tokensRequired = d.tokensRequired;
    this.metrics = d.metrics;
    this.log = d.log;
  }

  async subscribe(ctx: ClientContext, channel: string): Promise<void> {
    const rule = this.rules.for(channel);
    if (rule.subscribe === 'anyone') return;
    if (matchesAny(ctx.channels, channel)) return;
    if (this.app.authorizeSubscribe) {
      if (await callApp(this.metrics, this.log, 'authorizeSubscribe', () => this.app.authorizeSubscribe!(ctx, channel))) return;
      throw new SbError('forbidden', `not allowed to subscribe to ${channel}`);
    }
    if (this.backend) {
      if (await this.backend.subscribe(ctx, channel)) return;
      throw new SbError('forbidden', `the backend refused the subscription to ${channel}`);
    }
    // No authority is configured at all (no JWT_SECRET, app hook or BACKEND_URL): the node is open.
    if (!this.tokensRequired) return;
    throw new SbError('forbidden', `the token does not allow ${channel}`);
  }

  async publish(ctx: ClientContext, channel: string, event: string, data: unknown): Promise<void> {
    const rule = this.rules.for(channel);
    if (rule.publish === 'anyone') return;
    if (rule.publish === 'nobody') throw new SbError('forbidden', `clients may not publish to ${channel}`);
    if (matchesAny(ctx.publish, channel)) return;
    if (this.app.authorizePublish) {
      if (await callApp(this.metrics, this.log, 'authorizePublish', () => this.app.authorizePublish!(ctx, channel, event, data))) return;
      throw new SbError('forbidden', `not allowed to publish to ${channel}`);
    }
    if (this.backend) {
      if (await this.backend.publish(ctx, channel, event, data)) return;
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
    if (err instanceof SbError) throw err;
    metrics.appErrors.inc({ hook });
    log.error({ err, hook }, 'application code failed');
    throw new SbError('internal', `${hook} failed`);
  }
}
