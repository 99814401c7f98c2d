// Channel patterns in token claims: a `*` segment matches exactly one `:`-separated segment; nothing crosses a `:`.
const cache = new Map<string, RegExp>();

/**
 * `user:*` matches `user:alice`, not `user:alice:inbox` (write `user:alice:*` for that). A `*` inside a segment
 * (`user:alice*`) is no wildcard: it would let `user:alice*` reach `user:alicebob`, so it matches only itself,
 * and channel names cannot contain `*`. Everything else is literal.
 */
export function matchesPattern(pattern: string, channel: string): boolean {
  let re = cache.get(pattern);
  if (!re) {
    const segments = pattern.split(':').map((s) => (s === '*' ? '[^:]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    re = new RegExp(`^${segments.join(':')}$`);
    if (cache.size < 10_000) cache.set(pattern, re);
  }
  return re.test(channel);
}

export function matchesAny(patterns: readonly string[] | undefined, channel: string): boolean {
  return !!patterns && patterns.some((p) => matchesPattern(p, channel));
}
