// Bounded history memory without Redis (issue 11 item 5): ten anonymous sockets publishing 100 KB payloads can't
// grow a node past its history caps; publishing past a cap answers `unavailable`, counted by reason.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, type TestNode } from '../helpers/node.js';
import { call, clientPool, metricValue } from '../helpers/client.js';

const MB = 1 << 20;
const SOCKETS = 10;
/** Publications per socket: 10 × 150 × 100 KB ≈ 150 MB offered, about ten times HISTORY_MAX_BYTES. */
const PER_SOCKET = 150;
const PAYLOAD = 'x'.repeat(100_000);

describe('history memory without Redis', { timeout: 180_000 }, () => {
  let node: TestNode;
  const pool = clientPool();

  before(async () => {
    node = await startNode({
      // A V8 heap limit as a container would set one: garbage is collected before the heap grows past it, so RSS
      // follows what is kept. 150 MB of history (the old behaviour) can't fit in it at all.
      nodeArgs: ['--max-old-space-size=128'],
      env: {
        // As the demo: channels, but with a long history and no per-address publish limit, so only the
        // history caps stand between the flood and the node's memory.
        CHANNEL_RULES: JSON.stringify([{ prefix: 'flood:', subscribe: 'anyone', publish: 'anyone', history: { size: 100000 } }]),
        ANONYMOUS_PUBLISHES_PER_SECOND_PER_IP: '100000',
        EVENTS_PER_SECOND: '10000',
        MAX_PUBLISH_BYTES: '102400',
        MAX_PAYLOAD_BYTES: '204800',
        HISTORY_MAX_BYTES: String(16 * MB),
        HISTORY_MAX_CHANNELS: '25',
      },
    });
  });
  after(async () => {
    pool.close();
    await node?.stop();
  });

  test('ten sockets publishing 100 KB payloads: past the caps publications are refused and RSS stays bounded', async (t) => {
    const rss = () => metricValue(node.internalUrl, 'process_resident_memory_bytes');
    const before = await rss();
    const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => pool.open(node, { transports: ['websocket'] })));
    // Five small channels first: with the flood's 20 that is HISTORY_MAX_CHANNELS (25).
    const small = [];
    for (let k = 0; k < 5; k++) small.push(await call(sockets[0]!, 'publish', `flood:small-${k}`, 'n', k));
    assert.deepEqual(
      small.map((r) => r.ok),
      [true, true, true, true, true],
    );
    const codes = new Map<string, number>();
    let refusal: { code: string; message: string } | undefined;
    await Promise.all(
      sockets.map(async (s, i) => {
        for (let j = 0; j < PER_SOCKET; j++) {
          const r = await call(s, 'publish', `flood:${i}-${j % 2}`, 'blob', PAYLOAD);
          const code = r.ok ? 'ok' : r.error.code;
          codes.set(code, (codes.get(code) ?? 0) + 1);
          if (!r.ok) refusal = r.error;
        }
      }),
    );
    const after = await rss();
    t.diagnostic(`RSS ${Math.round(before / MB)} MB -> ${Math.round(after / MB)} MB; answers ${JSON.stringify([...codes])}`);
    assert.ok((codes.get('unavailable') ?? 0) > 0, `some publications refused: ${JSON.stringify([...codes])}`);
    assert.deepEqual([...codes.keys()].sort(), ['ok', 'unavailable'], 'nothing but ok and unavailable');
    assert.match(refusal!.message, /^history is full: 16777216 bytes on this node \(HISTORY_MAX_BYTES\)$/);
    assert.equal(
      await metricValue(node.internalUrl, 'switchboard_rejections_total', { reason: 'history_bytes' }),
      codes.get('unavailable'),
    );
    // ~150 MB were offered and the old node kept them all; this one keeps at most 16 MB of history. 96 MB leaves
    // room for garbage not yet collected and socket buffers on a busy machine.
    assert.ok(after - before < 96 * MB, `RSS grew by ${Math.round((after - before) / MB)} MB (from ${Math.round(before / MB)} MB)`);

    // A 26th channel is refused, and a channel that has history still takes publications while there is room.
    const more = await call(sockets[0]!, 'publish', 'flood:small-5', 'n', 5);
    assert.equal(more.error?.code, 'unavailable');
    assert.equal(more.error.message, 'history is full: 25 channels with history on this node (HISTORY_MAX_CHANNELS)');
    assert.equal(await metricValue(node.internalUrl, 'switchboard_rejections_total', { reason: 'history_channels' }), 1);
  });
});
