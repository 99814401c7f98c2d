// The Socket.IO Admin UI (ADMIN_UI): off by default, refused without the right credentials, its page served by
// the node itself, and in Chromium it shows the sockets and the servers of a two-node cluster.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { launchChromium } from '../helpers/browser.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { connect, type Client } from '../helpers/client.js';

const USER = 'ops';
const PASSWORD = 'correct horse battery staple';
// bcrypt of PASSWORD (cost 4: quick in tests; operators use 10 or more, see the README).
const HASH = '$2a$04$Sp2UjTPt6DQn4Wo0.u3A0O6eFQc1D6PEZTJNW2LjhPwt9TDl5cwoy';

/** Connects to a node's /admin namespace; resolves with the connect error's message, or 'connected'. */
async function adminConnect(url: string, auth: Record<string, string>): Promise<string> {
  const s = io(`${url}/admin`, { forceNew: true, reconnection: false, transports: ['websocket'], auth });
  try {
    return await new Promise<string>((resolve) => {
      s.once('connect', () => resolve('connected'));
      s.once('connect_error', (err) => resolve(err.message));
    });
  } finally {
    s.close();
  }
}

describe('admin view (@socket.io/admin-ui)', () => {
  let redis: TestRedis;
  let nodes: TestNode[] = [];
  let plain: TestNode;
  const clients: Client[] = [];

  before(async () => {
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      ADMIN_UI: 'true',
      ADMIN_UI_USERNAME: USER,
      ADMIN_UI_PASSWORD_HASH: HASH,
      ADMIN_UI_MODE: 'development',
    };
    nodes = await Promise.all([startNode({ env }), startNode({ env })]);
    plain = await startNode({ env: { REDIS_URL: redis.url } });
    for (const n of nodes) clients.push(await connect(n.url, { transports: ['websocket'] }));
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all([...nodes, plain].map((n) => n?.stop()));
    await redis?.stop();
  });

  test('off by default: no page, no /admin namespace', async () => {
    assert.equal((await fetch(`${plain.url}/admin/`)).status, 404);
    assert.equal(await adminConnect(plain.url, { username: USER, password: PASSWORD }), 'Invalid namespace');
  });

  test('the /admin namespace refuses a wrong password and no credentials, and admits the right ones', async () => {
    const [a] = nodes as [TestNode];
    assert.equal(await adminConnect(a.url, { username: USER, password: 'wrong' }), 'invalid credentials');
    assert.equal(await adminConnect(a.url, {}), 'invalid credentials');
    assert.equal(await adminConnect(a.url, { username: USER, password: PASSWORD }), 'connected');
  });

  test('Chromium: the UI served by a node logs in and shows the sockets and servers of both nodes', { timeout: 120_000 }, async (t) => {
    const browser = await launchChromium(t);
    if (!browser) return;
    const [a, b] = nodes as [TestNode, TestNode];
    try {
      const page = await browser.newPage();
      const elsewhere: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(a.url) && !r.url().startsWith(a.url.replace('http', 'ws'))) elsewhere.push(r.url());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`${a.url}/admin/`);
      await page.getByLabel('Server URL').fill(a.url);
      await page.getByLabel('Username').fill(USER);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: /connect/i }).click();
      await page
        .getByText(/^connected$/i)
        .first()
        .waitFor({ timeout: 30_000 });

      await page.getByRole('link', { name: 'Sockets' }).click();
      // One client on each node: the list is cluster-wide (fetchSockets through the Redis adapter).
      for (const c of clients) await page.getByText(c.id!, { exact: true }).waitFor({ timeout: 30_000 });

      await page.getByRole('link', { name: 'Servers' }).click();
      for (const n of [a, b]) await page.getByRole('cell', { name: n.id, exact: true }).waitFor({ timeout: 30_000 });

      assert.deepEqual(elsewhere, [], 'the page loads nothing from outside the node');
      assert.deepEqual(problems, [], 'no page errors');
    } finally {
      await browser.close();
    }
  });
});
