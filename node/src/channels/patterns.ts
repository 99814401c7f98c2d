// Channel patterns in token claims: `*` matches any run of characters, everything else is literal.
const cache = new Map<string, RegExp>();

export function matchesPattern(pattern: string, channel: string): boolean {
  let re = cache.get(pattern);
  if (!re) {
    re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
    if (cache.size < 10_000) cache.set(pattern, re);
  }
  return re.test(channel);
}

export function matchesAny(patterns: readonly string[] | undefined, channel: string): boolean {
  return !!patterns && patterns.some((p) => matchesPattern(p, channel));
}
