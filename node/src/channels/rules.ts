// Channel rules: namespaces by prefix that say who may subscribe and publish, and presence and history bounds.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { formatIssues } from '../core/issues.js';

const ruleSchema = z
  .object({
    /** Channels starting with this prefix; '' matches every channel. The longest matching prefix wins. */
    prefix: z.string().max(200),
    /** `anyone`, or `authorized`: a token claim, the embedded app or the backend's `/subscribe` must say yes. */
    subscribe: z.enum(['anyone', 'authorized']).default('authorized'),
    /** `nobody` (default), `anyone`, or `authorized` (token `publish` claim, the app, or the backend's `/publish`). */
    publish: z.enum(['nobody', 'anyone', 'authorized']).default('nobody'),
    /** Track members: `presence()` answers with users, `GET /api/channels/{c}` with `members`. */
    presence: z.boolean().default(false),
    /** History bounds for these channels (default: HISTORY_SIZE and HISTORY_TTL_S). */
    history: z.object({ size: z.number().int().min(0).max(1_000_000), ttlSeconds: z.number().int().min(1) }).partial().optional(),
  })
  .strict();

export type ChannelRule = z.output<typeof ruleSchema>;
export interface ResolvedRule extends ChannelRule {
  historySize: number;
  historyTtlMs: number;
}

/** What a node does with no CHANNEL_RULES: demo channels are open (for the demo page), nothing else is client-publishable. */
export const DEFAULT_RULES: ChannelRule[] = [
  { prefix: '', subscribe: 'authorized', publish: 'nobody', presence: true },
  { prefix: 'demo:', subscribe: 'anyone', publish: 'anyone', presence: true, history: { size: 100 } },
];

const NO_RULE: ChannelRule = { prefix: '', subscribe: 'authorized', publish: 'nobody', presence: false };

export function parseRules(text: string | undefined): ChannelRule[] {
  if (text === undefined) return DEFAULT_RULES;
  let raw: unknown;
  const source = text.startsWith('@') ? text.slice(1) : 'CHANNEL_RULES';
  try {
    raw = JSON.parse(text.startsWith('@') ? readFileSync(text.slice(1), 'utf8') : text);
  } catch (err) {
    throw new Error(`CHANNEL_RULES: cannot read ${source} as JSON: ${(err as Error).message}`);
  }
  const r = z.array(ruleSchema).min(1).safeParse(raw);
  if (!r.success) throw new Error(`CHANNEL_RULES: ${formatIssues(r.error)}`);
  return r.data;
}

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
