// WebSocket-first sessions (transport=websocket without a session id): upgraded at once, their address admitted
// alongside. A session that opens stays open; one whose admission is refused is closed with the reason, and its
// CONNECT gets the refusal, never an accepted namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type TestNode } from '../helpers/node.js';
import { metricValue } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';

interface RawSession {
  /** Text frames from the server, in order. */
  frames: string[];
  closed: Promise<void>;
  isClosed(): boolean;
  send(text: string): void;
  next(pred: (f: string) => boolean, what: string): Promise<string>;
  end(): void;
}

/**
 * A WebSocket handshake written by hand, so the request can say `Connection: close` (no WebSocket library lets
 * it). uWS marks such a request's response as closing; an upgrade answered after an await inside uWS's cork()
 * then reads that mark from the reallocated socket and closes the fresh WebSocket at once (uWebSockets#1928) —
 * every time, where a normal request hits it only now and then, on a fresh node.
 */
function rawWebSocket(port: number, headers: string[]): Promise<RawSession> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const frames: string[] = [];
    const waiters: Array<() => void> = [];
    let buf = Buffer.alloc(0);
    let upgraded = false;
    let closed = false;
    const closedP = new Promise<void>((r) => s.once('close', () => ((closed = true), r(), waiters.forEach((w) => w()))));
    s.once('error', reject);
    s.on('connect', () =>
      s.write(
        [
          'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1',
          `Host: 127.0.0.1:${port}`,
          'Upgrade: websocket',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          ...headers,
          '',
          '',
        ].join('\r\n'),
      ),
    );
    const session: RawSession = {
      frames,
      closed: closedP,
      isClosed: () => closed,
      send(text) {
        const payload = Buffer.from(text);
        const mask = randomBytes(4);
        const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
        s.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
      },
      next(pred, what) {
        return new Promise((res, rej) => {
          const check = () => {
            const f = frames.find(pred);
            if (f !== undefined) res(f);
            else if (closed) rej(new Error(`the session closed before ${what}; frames: ${JSON.stringify(frames)}`));
            else waiters.push(check);
          };
          check();
        });
      },
      end: () => s.destroy(),
    };
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const endOfHead = buf.indexOf('\r\n\r\n');
        if (endOfHead < 0) return;
        const head = buf.subarray(0, endOfHead).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${head.split('\r\n')[0]}`));
        upgraded = true;
        buf = buf.subarray(endOfHead + 4);
        resolve(session);
      }
      // Unmasked server frames, short ones only (what Engine.IO sends here): text, or close (code + reason).
      while (buf.length >= 2) {
        const len = buf[1]! & 0x7f;
        if (len > 125 || buf.length < 2 + len) break;
        const payload = buf.subarray(2, 2 + len);
        if ((buf[0]! & 0x0f) === 0x8) frames.push(`close ${payload.readUInt16BE(0)} ${payload.subarray(2).toString()}`);
        else frames.push(payload.toString());
        buf = buf.subarray(2 + len);
      }
      waiters.splice(0).forEach((w) => w());
    });
  });
}

describe('WebSocket-first sessions', { timeout: 60_000 }, () => {
  let redis: TestRedis;
  let node: TestNode;

  before(async () => {
    redis = await startRedis();
    node = await startNode({
      env: { REDIS_URL: redis.url, TRUSTED_PROXIES: '127.0.0.1', CONNECTIONS_PER_IP: '2', CONNECTION_LIMITS_HEARTBEAT_MS: '200' },
    });
  });
  after(async () => {
    await node?.stop();
    await redis?.stop();
  });

  test('a session stays open after the 101 and accepts CONNECT, even for a request that says Connection: close', async () => {
    // Each from its own address: one slot each, all held until the end.
    const sessions: RawSession[] = [];
    for (let i = 1; i <= 6; i++) {
      const ws = await rawWebSocket(node.port, ['Connection: close', `X-Forwarded-For: 10.60.0.${i}`]);
      sessions.push(ws);
      await ws.next((f) => f.startsWith('0{'), 'the Engine.IO open packet');
      ws.send('40');
      const answer = await ws.next((f) => f.startsWith('40') || f.startsWith('44'), 'the CONNECT answer');
      assert.match(answer, /^40\{"sid":/, `session ${i}: ${JSON.stringify(ws.frames)}`);
    }
    for (const ws of sessions) assert.equal(ws.isClosed(), false, `closed: ${JSON.stringify(ws.frames)}`);
    for (const ws of sessions) ws.end();
  });

  test('past the address limit the session is closed with 1013 and the reason; its CONNECT is refused', async () => {
    const ip = '10.61.0.1';
    const before = await metricValue(node.internalUrl, 'switchboard_rejections_total', { reason: 'connections_per_ip' });
    const held = [
      await rawWebSocket(node.port, ['Connection: Upgrade', `X-Forwarded-For: ${ip}`]),
      await rawWebSocket(node.port, ['Connection: Upgrade', `X-Forwarded-For: ${ip}`]),
    ];
    for (const ws of held) {
      ws.send('40');
      await ws.next((f) => f.startsWith('40{'), 'the CONNECT answer');
    }
    // The third from the address: open, CONNECT sent at once; refused either way round the race.
    const third = await rawWebSocket(node.port, ['Connection: Upgrade', `X-Forwarded-For: ${ip}`]);
    third.send('40');
    await third.closed;
    const close = third.frames.find((f) => f.startsWith('close '));
    assert.equal(close, 'close 1013 rate_limited: at most 2 connections per address', JSON.stringify(third.frames));
    assert.ok(!third.frames.some((f) => f.startsWith('40')), `accepted: ${JSON.stringify(third.frames)}`);
    for (const f of third.frames.filter((x) => x.startsWith('44')))
      assert.deepEqual(JSON.parse(f.slice(2)), {
        message: 'at most 2 connections per address',
        data: { code: 'rate_limited', message: 'at most 2 connections per address' },
      });
    assert.equal(await metricValue(node.internalUrl, 'switchboard_rejections_total', { reason: 'connections_per_ip' }), before + 1);

    // The refused session held nothing: with one of the two closed, the address connects again (the ws library).
    held[0]!.end();
    await held[0]!.closed;
    // The slot comes back once the node has seen the close (a Redis script): until then 1013 again.
    const again = await waitFor(
      () =>
        new Promise<string | undefined>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${node.port}/socket.io/?EIO=4&transport=websocket`, {
            headers: { 'x-forwarded-for': ip },
          });
          ws.on('message', (m: Buffer) => {
            const t = m.toString();
            if (t.startsWith('0{')) ws.send('40');
            else if (t.startsWith('40{')) {
              ws.close();
              resolve(t);
            }
          });
          ws.on('close', (code) => resolve(code === 1013 ? undefined : `closed ${code}`));
          ws.on('error', reject);
        }),
      { what: 'the address to connect again', interval: 100 },
    );
    assert.match(again, /^40\{"sid":/);
    held[1]!.end();
  });
});
