// SSE resume positions: what one event id must say so that a stream of several channels resumes each of
// them exactly where it was cut. Documented in the README ("SSE resume").
//
// A stream of one channel uses the publication id itself (`1700000000000-3`), as before. A stream of several
// channels sends `sb1.<list>.<base>.<pos>_<pos>_…`: <list> is a hash of the stream's channel list (a resume
// for other channels is refused), <base> the newest millisecond among the positions (base 36), and one
// position per channel, in the order of the stream's channels:
//   <delta>[-<seq>]    the last publication id of that channel this stream delivered: ms = base - delta
//   ~<delta>[-<seq>]   nothing delivered yet on it: resume after that id (the channel's newest publication
//                      when the stream joined), with no check that it is still in history
// (numbers base 36; seq 0 omitted). Bounded: SSE_MAX_CHANNELS channels of at most ~20 characters each.
import { compareIds, parseId } from '../core/ids.js';
import { SbError } from '../core/errors.js';

/** Where a channel of a stream stands: a delivered publication id, or a watermark (nothing delivered since). */
export interface Position {
  id: string;
  /**
   * True: nothing was delivered on the channel yet; `id` is where it stood when the stream joined (its newest
   * publication then, or a point in time), so resuming replays what follows without asking history for it.
   */
  watermark: boolean;
}

const VERSION = 'sb1';

/** FNV-1a of the channel list, base 36: binds an id to the channels it describes. */
export function listHash(channels: readonly string[]): string {
  let h = 0x811c9dc5;
  for (const ch of channels.join('\n')) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

export function encodePositions(channels: readonly string[], positions: readonly Position[], hash = listHash(channels)): string {
  let base = 0;
  const parsed = positions.map((p) => parseId(p.id)!);
  for (const [ms] of parsed) if (ms > base) base = ms;
  const parts = parsed.map(([ms, seq], i) => {
    const pos = seq === 0 ? (base - ms).toString(36) : `${(base - ms).toString(36)}-${seq.toString(36)}`;
    return positions[i]!.watermark ? `~${pos}` : pos;
  });
  return `${VERSION}.${hash}.${base.toString(36)}.${parts.join('_')}`;
}

const POS = /^(~?)([0-9a-z]{1,11})(?:-([0-9a-z]{1,11}))?$/;

/**
 * What a client's Last-Event-ID asks for: per-channel positions (`sb1.…`), or one plain publication id
 * (from a one-channel stream, or from a client of an older version). Throws `bad_request` otherwise.
 */
export function decodeLastEventId(raw: string, channels: readonly string[]): { positions: Position[] } | { plain: string } {
  if (parseId(raw)) return { plain: raw };
  const parts = raw.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION) throw new SbError('bad_request', 'Last-Event-ID must be an event id this server sent');
  if (parts[1] !== listHash(channels))
    throw new SbError('bad_request', 'Last-Event-ID belongs to a stream of other channels: resume with the same channel list');
  const base = parseInt(parts[2]!, 36);
  const items = parts[3]!.split('_');
  if (!/^[0-9a-z]{1,11}$/.test(parts[2]!) || items.length !== channels.length)
    throw new SbError('bad_request', 'Last-Event-ID is malformed');
  const positions = items.map((item) => {
    const m = POS.exec(item);
    const ms = m ? base - parseInt(m[2]!, 36) : -1;
    if (!m || ms < 0) throw new SbError('bad_request', 'Last-Event-ID is malformed');
    return { id: `${ms}-${m[3] ? parseInt(m[3], 36) : 0}`, watermark: m[1] === '~' };
  });
  return { positions };
}

/**
 * Merges per-channel lists (each already in id order) into one order by id — Redis time, then sequence —
 * keeping each channel's own order whatever the clocks did.
 */
export function mergeById<T extends { id: string }>(lists: T[][]): T[] {
  const out: T[] = [];
  const at = lists.map(() => 0);
  for (;;) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) {
      const x = lists[i]![at[i]!];
      if (x && (best === -1 || compareIds(x.id, lists[best]![at[best]!]!.id) < 0)) best = i;
    }
    if (best === -1) return out;
    out.push(lists[best]![at[best]!++]!);
  }
}
