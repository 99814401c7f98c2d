// Channel rules: namespaces by prefix that say who may subscribe and publish, and presence and history bounds.
import type { ChannelRule } from '../config/channel-rules.js';

export interface ResolvedRule extends ChannelRule {
  historySize: number;
  historyTtlMs: number;
}

/**
 * What a node does with no CHANNEL_RULES: demo channels are open (for the demo page), nothing else is
 * client-publishable. Anyone may publish there, so they keep a short history (and anonymous publishing is
 * rate-limited per address: ANONYMOUS_PUBLISHES_PER_SECOND_PER_IP).
 */
export const DEFAULT_RULES: ChannelRule[] = [
  { prefix: '', subscribe: 'authorized', publish: 'nobody', presence: true },
  { prefix: 'demo:', subscribe: 'anyone', publish: 'anyone', presence: true, history: { size: 20, ttlSeconds: 300 } },
];

const NO_RULE: ChannelRule = { prefix: '', subscribe: 'authorized', publish: 'nobody', presence: false };

export class ChannelRules {
  private readonly sorted: ChannelRule[];
  private readonly cache = new Map<ChannelRule, ResolvedRule>();

  constructor(
    rules: ChannelRule[],
    private readonly defaults: { historySize: number; historyTtlMs: number },
  ) {
    this.sorted = [...rules].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The rule for `channel`; channels no rule matches are neither subscribable nor publishable. */
  for(channel: string): ResolvedRule {
    const rule = this.sorted.find((r) => channel.startsWith(r.prefix)) ?? NO_RULE;
    let resolved = this.cache.get(rule);
    if (!resolved) {
      resolved = {
        ...rule,
        historySize: rule.history?.size ?? this.defaults.historySize,
        historyTtlMs: (rule.history?.ttlSeconds ?? this.defaults.historyTtlMs / 1000) * 1000,
      };
      this.cache.set(rule, resolved);
    }
    return resolved;
  }
}
