// CHANNEL_RULES: the schema of one channel rule and the reader of the setting (inline JSON or `@file`).
// The rules' meaning (which rule a channel gets) lives in channels/rules.ts.
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
    history: z
      .object({ size: z.number().int().min(0).max(1_000_000), ttlSeconds: z.number().int().min(1) })
      .partial()
      .optional(),
  })
  .strict();

export type ChannelRule = z.output<typeof ruleSchema>;

/**
 * Reads CHANNEL_RULES at start-up: a JSON array of rules, or `@path` of a JSON file holding one.
 * Throws with the reason (the config loader names the variable).
 */
export function readRules(text: string): ChannelRule[] {
  const file = text.startsWith('@') ? text.slice(1) : undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(file === undefined ? text : readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${file ?? 'the value'} as JSON: ${(err as Error).message}`);
  }
  const r = z.array(ruleSchema).min(1).safeParse(raw);
  if (!r.success) throw new Error(formatIssues(r.error));
  return r.data;
}
