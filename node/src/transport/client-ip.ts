// The client's address: the last X-Forwarded-For hop added by a trusted proxy, else the peer address.

function normalize(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

export function clientIp(peer: string, forwardedFor: string | undefined, trusted: readonly string[]): string {
  const remote = normalize(peer);
  if (!forwardedFor || !trusted.includes(remote)) return remote;
  // Walk from the right: the first hop that is not one of our proxies is the client.
  const hops = forwardedFor.split(',').map((h) => normalize(h.trim())).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.includes(hops[i]!)) return hops[i]!;
  return hops[0] ?? remote;
}
