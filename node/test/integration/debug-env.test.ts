// DEBUG keeps tracing Socket.IO and Engine.IO: transport/quiet-debug.ts swaps their `debug` loggers for no-ops only
// when DEBUG is unset as the node starts (a dozen calls per client event that would find logging off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNode } from '../helpers/node.js';
import { call, connect } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';

test('DEBUG=engine,socket.io:socket traces the handshake and the ack as usual; without DEBUG the same calls print nothing of it', async () => {
  const traced = await startNode({ env: { DEBUG: 'engine,socket.io:socket' } });
  const quiet = await startNode();
  try {
    for (const n of [traced, quiet]) {
      const s = await connect(n.url, { transports: ['websocket'] });
      const r = await call(s, 'subscribe', 'news');
      assert.equal(r.ok, true, JSON.stringify(r));
      s.disconnect();
    }
    // debug's lines on a pipe: "<ISO time> <namespace> <message>".
    await waitFor(() => /Z engine handshaking client/.test(traced.output()) && /Z socket\.io:socket sending ack/.test(traced.output()), {
      what: "debug's lines for the handshake and the ack",
    });
    assert.doesNotMatch(quiet.output(), /Z (engine|socket\.io)\S* /);
  } finally {
    await traced.stop();
    await quiet.stop();
  }
});
