// Small things clients trip over: the msgpack bundle (this server speaks the default parser only) is
// refused rather than served, and the demo page's `pattern` attribute compiles as browsers compile it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, type TestNode } from '../helpers/node.js';

let node: TestNode;
before(async () => {
  node = await startNode();
});
after(async () => {
  await node?.stop();
});

test('the msgpack client bundle is refused with a pointer to the default one, which is served', async () => {
  for (const f of ['socket.io.msgpack.min.js', 'socket.io.msgpack.min.js.map']) {
    const res = await fetch(`${node.url}/socket.io/${f}`);
    assert.equal(res.status, 404, f);
    assert.match(((await res.json()) as any).error.message, /msgpack parser is not supported/);
  }
  for (const f of ['socket.io.min.js', 'socket.io.esm.min.js']) {
    const res = await fetch(`${node.url}/socket.io/${f}`);
    assert.equal(res.status, 200, f);
    await res.arrayBuffer();
  }
});

test("the demo page's pattern attributes are valid regular expressions with the v flag (as Chromium compiles them)", async () => {
  const html = await (await fetch(`${node.url}/`)).text();
  const patterns = [...html.matchAll(/\spattern="([^"]*)"/g)].map((m) => m[1]!.replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
  assert.ok(patterns.length > 0);
  for (const p of patterns) {
    const re = new RegExp(`^(?:${p})$`, 'v');
    assert.ok(re.test('demo:lobby') && re.test('a-b/c@d=e,f.g_h') && !re.test('no spaces'), p);
  }
});
