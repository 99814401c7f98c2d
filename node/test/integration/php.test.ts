// The README's PHP, run for real (issue 12): its code blocks are written to files as they are and served by
// Debian's php-cli (`php -S`) as the backend of a real node. A socket.io-client with the PHP session cookie
// connects as its user; a replayed or re-pathed webhook call is refused; one HTTP call from PHP publishes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startNode, type TestNode } from '../helpers/node.js';
import { apiPublish, call, clientPool, collect, refused } from '../helpers/client.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { hasBinary, requireOptional } from '../helpers/prereq.js';
import { readmeBlock, writeBlocks } from '../helpers/readme.js';
import { sign } from '../../src/hooks/signature.js';

const SECRET = 'php-webhook-secret-0123456789abcdefgh';
const KEY = 'test-key-0123456789abcdef';

/** The test's own part of the PHP app: a router for `php -S`, a login page, and the README's user_in_team(). */
const ROUTER = `<?php
require_once __DIR__ . '/app.php';
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if (strncmp($path, '/switchboard/', 13) === 0) { require __DIR__ . '/webhooks.php'; return true; }
if ($path === '/login') { session_start(); $_SESSION['user_id'] = (int) $_GET['id']; echo 'logged in'; return true; }
if ($path === '/up') { echo 'up'; return true; }
http_response_code(404);
return true;
`;
const APP = `<?php
function user_in_team($user, string $team): bool { return $user === '42' && $team === 'red'; }
`;

describe("the README's PHP under php-cli", { timeout: 120_000 }, () => {
  const present = hasBinary('php');
  let dir = '';
  let php: ChildProcess | undefined;
  let phpUrl = '';
  let node: TestNode | undefined;
  const pool = clientPool();

  before(async () => {
    if (!present) return;
    dir = writeBlocks({
      'switchboard-verify.php': readmeBlock('php', 'switchboard-verify.php: checks'),
      'webhooks.php': readmeBlock('php', '// webhooks.php'),
      'switchboard-publish.php': readmeBlock('php', 'switchboard-publish.php'),
      'router.php': ROUTER,
      'app.php': APP,
    });
    mkdirSync(join(dir, 'sessions'));
    const port = await freePort();
    phpUrl = `http://127.0.0.1:${port}`;
    // Its own process group: `php -S` with workers forks, and stop() ends the whole group it started.
    php = spawn('php', ['-d', `session.save_path=${join(dir, 'sessions')}`, '-S', `127.0.0.1:${port}`, 'router.php'], {
      cwd: dir,
      env: { PATH: process.env.PATH, WEBHOOK_SECRET: SECRET, PHP_CLI_SERVER_WORKERS: '4' },
      stdio: 'ignore',
      detached: true,
    });
    await waitFor(async () => (await fetch(`${phpUrl}/up`).catch(() => undefined))?.ok, { what: 'php -S answering', timeout: 30_000 });
    node = await startNode({
      env: {
        BACKEND_URL: `${phpUrl}/switchboard`,
        WEBHOOK_SECRET: SECRET,
        CHANNEL_RULES: JSON.stringify([{ prefix: '', subscribe: 'authorized', publish: 'nobody' }]),
      },
    });
  });
  after(async () => {
    pool.close();
    await node?.stop();
    if (php?.pid) {
      try {
        process.kill(-php.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  });

  async function login(id: number): Promise<string> {
    const res = await fetch(`${phpUrl}/login?id=${id}`);
    assert.equal(res.status, 200);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('PHPSESSID='));
    assert.ok(cookie, 'PHP set its session cookie');
    return cookie.split(';')[0]!;
  }

  test('/connect from the PHP session cookie: the logged-in user gets in with their channel, others are refused', async (t) => {
    if (!requireOptional(t, 'php')) return;
    const session = await login(42);
    const s = await pool.open(node!, { extraHeaders: { cookie: `theme=dark; ${session}` } });
    const got = collect(s);
    // /connect answered channels: ["user:42"], subscribed server-side.
    assert.equal((await apiPublish(node!.url, { channel: 'user:42', event: 'hello', data: 1 }, KEY)).status, 200);
    await waitFor(() => got.find((g) => g.event === 'hello'), { what: 'a publication on user:42' });
    // /subscribe runs the README's rule (user_in_team() is the test's).
    assert.equal((await call(s, 'subscribe', 'team:red')).ok, true);
    assert.equal((await call(s, 'subscribe', 'team:blue')).error?.code, 'forbidden');
    // /rpc/{method}: the README's backend has none.
    assert.equal((await call(s, 'rpc', 'anything', {})).error?.code, 'not_found');

    const anonymous = await refused(node!.url, { extraHeaders: { cookie: 'theme=dark' } });
    assert.deepEqual(anonymous, { code: 'unauthorized', message: 'not logged in' });
  });

  test("the README's verification: a call signed now passes; replayed 852 s later or re-sent to another hook it is refused", async (t) => {
    if (!requireOptional(t, 'php')) return;
    const session = await login(7);
    const body = JSON.stringify({ headers: { cookie: session }, auth: {}, ip: '127.0.0.1' });
    const post = (path: string, header: string) =>
      fetch(`${phpUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-switchboard-signature': header },
        body,
      });
    const now = Math.floor(Date.now() / 1000);
    const fresh = await post('/switchboard/connect', sign(SECRET, { method: 'POST', path: '/switchboard/connect', body }, now));
    assert.equal(fresh.status, 200);
    assert.deepEqual(await fresh.json(), { user: '7', channels: ['user:7'] });
    const replayed = await post('/switchboard/connect', sign(SECRET, { method: 'POST', path: '/switchboard/connect', body }, now - 852));
    assert.equal(replayed.status, 401, 'replayed 852 s later');
    const repathed = await post('/switchboard/subscribe', sign(SECRET, { method: 'POST', path: '/switchboard/connect', body }, now));
    assert.equal(repathed.status, 401, 'the /connect signature sent to /subscribe');
    const unsigned = await post('/switchboard/connect', '');
    assert.equal(unsigned.status, 401);

    // The function itself, through php -r: the tolerance both ways.
    const header = sign(SECRET, { method: 'POST', path: '/switchboard/rpc/echo', body }, now);
    const verdict = (path: string, at: number) =>
      spawnSync(
        'php',
        [
          '-r',
          `require 'switchboard-verify.php'; echo switchboard_verify($argv[1], $argv[2], 'POST', $argv[3], $argv[4], (int) $argv[5]) ? 'yes' : 'no';`,
          SECRET,
          header,
          path,
          body,
          String(at),
        ],
        { cwd: dir, encoding: 'utf8' },
      ).stdout;
    assert.equal(verdict('/switchboard/rpc/echo', now + 300), 'yes');
    assert.equal(verdict('/switchboard/rpc/echo', now + 301), 'no');
    assert.equal(verdict('/switchboard/rpc/echo', now - 301), 'no');
    assert.equal(verdict('/switchboard/publish', now), 'no');
  });

  test('publish with one HTTP call from PHP: switchboard_publish() reaches a subscriber, and an error comes back as { error }', async (t) => {
    if (!requireOptional(t, 'php')) return;
    const s = await pool.open(node!, { extraHeaders: { cookie: await login(42) } });
    const got = collect(s);
    const run = (key: string) =>
      spawnSync(
        'php',
        ['-r', `require 'switchboard-publish.php'; echo json_encode(switchboard_publish('user:42', 'status', ['state' => 'shipped']));`],
        {
          cwd: dir,
          env: { PATH: process.env.PATH, SWITCHBOARD_URL: node!.url, SWITCHBOARD_KEY: key },
          encoding: 'utf8',
        },
      );
    const r = run(KEY);
    assert.equal(r.status, 0, r.stderr);
    const answer = JSON.parse(r.stdout);
    assert.equal(answer.ok, true);
    await waitFor(() => got.find((g) => g.event === 'status'), { what: 'the PHP publication' });
    assert.deepEqual(got.find((g) => g.event === 'status')!.data, { state: 'shipped' });
    assert.equal(got.find((g) => g.event === 'status')!.meta.id, answer.id);
    assert.equal(JSON.parse(run('wrong-key-0123456789abcdef').stdout).error.code, 'unauthorized');
  });
});
