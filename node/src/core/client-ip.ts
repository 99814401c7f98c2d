// The client's address: the last X-Forwarded-For hop added by a trusted proxy, else the peer address.
import { BlockList, isIP } from 'node:net';

function normalize(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

/** Trusted proxies as addresses or CIDR ranges (`10.0.0.0/8`, `fd00::/8`), for pods without fixed IPs. */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    for (const e of entries) {
      const [addr, bits] = e.split('/');
      const family = isIP(addr ?? '') === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(addr!, family);
      else this.list.addSubnet(addr!, Number(bits), family);
    }
  }

  has(addr: string): boolean {
    if (this.empty) return false;
    const v = isIP(addr);
    return v !== 0 && this.list.check(addr, v === 6 ? 'ipv6' : 'ipv4');
  }
}

/** A TRUSTED_PROXIES entry: an IP address, or an address with a prefix length. */
export function isAddressOrCidr(e: string): boolean {
  const [addr, bits, extra] = e.split('/');
  const v = isIP(addr ?? '');
  if (v === 0 || extra !== undefined) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n >= 0 && n <= (v === 6 ? 128 : 32);
}

export function clientIp(peer: string, forwardedFor: string | undefined, trusted: TrustedProxies): string {
  const remote = normalize(peer);
  if (!forwardedFor || !trusted.has(remote)) return remote;
  // Walk from the right: the first hop that is not one of our proxies is the client.
  const hops = forwardedFor
    .split(',')
    .map((h) => normalize(h.trim()))
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.has(hops[i]!)) return hops[i]!;
  return hops[0] ?? remote;
}
