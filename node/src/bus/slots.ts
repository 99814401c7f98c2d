// Where a channel lives in Redis: channel name → one of the 16,384 Redis Cluster hash slots → a hash tag that
// Redis maps to exactly that slot. Every key and the shard channel of one publish carry that tag.
//
// Why not `{<channel name>}` as the tag: the partition must not be the user's choice (a name could then pick
// its slot, or its tag, and pile channels on one shard on purpose), and a stable hash of the name spreads
// channels evenly. Why the slots themselves as partitions: Redis Cluster already moves data by slot, so a
// resharding or a failover moves whole partitions with no key migration of ours, and every shard owns a share
// of partitions equal to its share of slots (thirds with `redis-cli --cluster create` on 3 masters).
// The tags are found once per process: short decimal strings tried in order until each slot has one. The
// mapping is a pure function of the name, identical on every node and across versions; changing the hash
// below would be a key migration (history and sequences of every channel would start over).

export const SLOT_COUNT = 16384;

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for key slots. */
export function crc16(buf: Uint8Array): number {
  let crc = 0;
  for (const b of buf) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc;
}

/** The slot Redis Cluster assigns to `key` (honouring a `{tag}`, as Redis does). */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key)) % SLOT_COUNT;
}

let tags: string[] | undefined;

/** A hash tag (without braces) that Redis maps to `slot`. */
export function slotTag(slot: number): string {
  if (!tags) {
    const t: string[] = new Array(SLOT_COUNT);
    let left = SLOT_COUNT;
    // About 170,000 tries (coupon collector over 16,384 slots); a few ms, once.
    for (let i = 0; left > 0; i++) {
      const s = String(i);
      const slot = crc16(Buffer.from(s)) % SLOT_COUNT;
      if (t[slot] === undefined) {
        t[slot] = s;
        left--;
      }
    }
    tags = t;
  }
  return tags[slot]!;
}

/** FNV-1a (32 bits) over the UTF-8 bytes of the name: stable, fast, and not Redis's own CRC16. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  // Channel names are ASCII (names.ts), where a char code is the UTF-8 byte: no Buffer per publication.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return fnv1aBytes(s);
    h ^= c;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function fnv1aBytes(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The slot a channel's keys and shard channel live in. */
export function channelSlot(channel: string): number {
  return fnv1a(channel) % SLOT_COUNT;
}
