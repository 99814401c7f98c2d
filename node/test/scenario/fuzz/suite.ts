// The fuzz harness each target file runs: one single-node Switchboard with small limits, the cases of the file's
// kinds (case i of FUZZ_SEED is the same in every file), a bystander that must keep receiving, and the checks:
// every case gets an answer (an ack, an HTTP status, a close, or — for fire-and-forget input — a connection that
// still answers a probe event), the node never stops, no case earns an `internal` error, a 5xx or an error in the
// node's log, and at the end the node's accounting is back to the bystander alone.
//
//   FUZZ_SEED=<n>        the seed (default: from the clock; printed at start and with every failure)
//   FUZZ_CASES=<n>       how many case indices (default 3000, split among the files by kind; each file stops at
//                        FUZZ_BUDGET_MS, 60 s by default: a cap for a loaded machine, not a target)
//   FUZZ_CASE=<i>        replay case i of FUZZ_SEED alone, on a fresh connection (the command is printed with
//                        every failure; publication ids in a case are relative to the clock)
//   FUZZ_WORKERS=<n>     cases run at once (default 6; 1 attributes the node's log lines exactly)
//   FUZZ_VERBOSE=1       print every case and its answer
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startNode, type TestNode } from '../../helpers/node.js';
import { connect, metricValue, type Client } from '../../helpers/client.js';
import { sleep, waitFor } from '../../helpers/ports.js';
import { MAX_BODY, MAX_PAYLOAD, MAX_PUBLISH, MAX_SUBS, SEED, describeCase, kindOf, makeCase, type Case, type Kind } from './cases.js';
import {
  ANSWER_MS,
  CODES,
  PROBE_EVENT,
  PollSession,
  RawWs,
  checkAck,
  errorLines,
  nextProbe,
  nodeErrors,
  predictedAck,
  rawHttp,
  type Outcome,
} from './clients.js';

const ONLY = process.env.FUZZ_CASE !== undefined ? Number(process.env.FUZZ_CASE) : undefined;
const CASES = ONLY !== undefined ? 1 : Number(process.env.FUZZ_CASES ?? 3000);
const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? (process.env.FUZZ_CASES ? 3_600_000 : 60_000));
const VERBOSE = process.env.FUZZ_VERBOSE === '1';
const WORKERS = ONLY !== undefined ? 1 : Number(process.env.FUZZ_WORKERS ?? 6);
const BYSTANDER_CHANNEL = 'demo:bystander';
const API_STATUSES = new Set([200, 400, 401, 403, 404, 413, 429, 503]);
const SSE_STATUSES = new Set([200, 400, 401, 403, 429, 503]);

export function fuzzTarget(target: string, kinds: readonly Kind[]): void {
  // The whole budget for each file, not a share by weight: a polling case costs ten times a WebSocket frame, and a
  // share would cut the slow kinds short on a loaded machine where the single file ran them all.
  const budgetMs = BUDGET_MS;
  const mine = (i: number) => kinds.includes(kindOf(i));
  const replay = (i: number) => `FUZZ_SEED=${SEED} FUZZ_CASE=${i} node --test dist/node/test/scenario/fuzz/${target}.test.js`;
  // FUZZ_CASE replays one case: only the file of its kind runs it.
  const skip = ONLY !== undefined && !mine(ONLY) ? `case ${ONLY} is not a ${target} case` : false;

  describe(`fuzz ${target}: ${kinds.join(', ')} (FUZZ_SEED=${SEED})`, { timeout: budgetMs + 120_000, skip }, () => {
    let node: TestNode;
    let bystander: Client;
    const ticks: number[] = [];
    const hard: string[] = []; // hangs, exits, bystander failures
    const problems: string[] = []; // contract violations: internal errors, 5xx, malformed acks
    const openWs = new Set<RawWs>();
    const openPolls = new Set<PollSession>();
    const stats = { cases: 0, byKind: {} as Record<string, number>, answers: {} as Record<string, number> };
    let ran = 0;
    let startedAt = 0;
    let logCursor = 0;

    const fail = (list: string[], index: number | undefined, c: Case | undefined, msg: string) => {
      const line =
        index === undefined
          ? msg
          : `case ${index} (${c?.kind}): ${msg}\n    replay: ${replay(index)}\n    payload: ${c ? describeCase(c) : '?'}`;
      list.push(line);
      if (list.length <= 20) console.error(`[fuzz] ${line}`);
    };

    before(async () => {
      console.log(
        `[fuzz] ${target}: FUZZ_SEED=${SEED} cases=${CASES}${ONLY !== undefined ? ` (only case ${ONLY})` : ''} budget=${budgetMs} ms`,
      );
      node = await startNode({
        env: {
          MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD),
          MAX_HTTP_BODY_BYTES: String(MAX_BODY),
          MAX_PUBLISH_BYTES: String(MAX_PUBLISH),
          MAX_SUBSCRIPTIONS: String(MAX_SUBS),
          EVENTS_PER_SECOND: '100000',
          HANDSHAKES_PER_SECOND_PER_IP: '100000',
          CONNECTIONS_PER_IP: '100000',
          CONNECTIONS_PER_USER: '100000',
          // Sessions fuzzed into a half-open state end at the ping timeout: the last tests wait for that.
          PING_INTERVAL_MS: '2500',
          PING_TIMEOUT_MS: '2500',
          LOG_LEVEL: 'warn',
          // The last test stops the node with SIGTERM to read every line it logged: no need to wait for a load balancer.
          DRAIN_DELAY_MS: '0',
          DRAIN_TIMEOUT_MS: '500',
        },
      });
      logCursor = node.output().length;
      bystander = await connect(node.url);
      bystander.on('tick', (data: { seq: number }, meta: { channel: string }) => {
        if (meta?.channel === BYSTANDER_CHANNEL) ticks.push(data.seq);
      });
      const ack = await bystander.timeout(5000).emitWithAck('subscribe', BYSTANDER_CHANNEL);
      assert.equal(ack.ok, true);
    });

    after(async () => {
      for (const w of openWs) w.terminate();
      for (const p of openPolls) await p.close().catch(() => {});
      bystander?.disconnect();
      await node?.stop();
      if (hard.length || problems.length) console.error(`[fuzz] seed was FUZZ_SEED=${SEED}`);
    });

    const alive = () => node.proc.exitCode === null && node.proc.signalCode === null;

    async function runWs(w: { ws?: RawWs }, c: Extract<Case, { kind: 'ws' }>, out: Outcome) {
      if (!w.ws || w.ws.closed) {
        if (w.ws) openWs.delete(w.ws);
        w.ws = new RawWs(node.port);
        openWs.add(w.ws);
        await w.ws.open();
      }
      const ws = w.ws;
      const want: number[] = [];
      if (c.frames.length === 1 && c.frames[0]!.t === 'text') {
        const id = predictedAck(c.frames[0]!.s);
        if (id !== undefined && id < 900_000_000) want.push(id);
      }
      for (const f of c.frames) ws.send(f);
      const probe = nextProbe();
      ws.send({ t: 'text', s: `42${probe}["${PROBE_EVENT}"]` });
      const answered = await ws.until(() => ws.hasAck(probe) && want.every((id) => ws.hasAck(id)), ANSWER_MS);
      if (!answered)
        throw new Error(`no answer within ${ANSWER_MS} ms: waiting for acks ${JSON.stringify([...want, probe])}, connection still open`);
      for (const [id, v] of ws.drainAcks()) {
        out.acks.set(id, v);
        if (id === probe) {
          const a = Array.isArray(v) ? (v[0] as { error?: { code?: string } }) : undefined;
          if (a?.error?.code !== 'not_found') out.problems.push(`the probe after the case was answered ${JSON.stringify(v)}`);
        } else checkAck(`ack ${id}`, v, out.problems);
      }
      out.answer = ws.closed ? `close ${ws.closeInfo.split(' ')[0]}` : 'ack';
      if (ws.closed) openWs.delete(ws);
    }

    async function runPolling(w: { poll?: PollSession }, c: Extract<Case, { kind: 'polling' }>, out: Outcome) {
      if (!w.poll || w.poll.closed) {
        if (w.poll) openPolls.delete(w.poll);
        w.poll = new PollSession(node.url);
        openPolls.add(w.poll);
        await w.poll.open();
      }
      const p = w.poll;
      const status = await p.post(c.body, c.contentType);
      if (status >= 500) out.problems.push(`polling POST answered ${status}`);
      // Whatever the body did, the session answers a probe or is gone.
      const probe = nextProbe();
      const st = await p.post(Buffer.from(`42${probe}["${PROBE_EVENT}"]`), 'text/plain;charset=UTF-8').catch(() => 0);
      if (st !== 200) {
        p.closed = true;
        out.answer = `status ${status}, then closed`;
      } else {
        const got = await p.poll(
          ANSWER_MS,
          (pk) => pk.startsWith(`43${probe}[`),
          (pk) => {
            const m = /^43(\d+)(\[[\s\S]*)$/.exec(pk);
            if (m && Number(m[1]) !== probe) {
              let v: unknown;
              try {
                v = JSON.parse(m[2]!);
              } catch {
                v = pk;
              }
              checkAck(`polling ack ${m[1]}`, v, out.problems);
            }
          },
        );
        out.answer = got ? `status ${status}, probe ack` : `status ${status}, then closed`;
      }
      if (p.closed) openPolls.delete(p);
    }

    async function runSse(c: Extract<Case, { kind: 'sse' }>, out: Outcome) {
      let status: number | undefined;
      let body = '';
      if (c.raw) {
        const headers = Object.entries(c.sse.headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('');
        const r = await rawHttp(
          node.port,
          Buffer.from(`GET /sse?${c.sse.query} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`, 'latin1'),
          ANSWER_MS,
        );
        if (r.timedOut) throw new Error(`raw SSE request not answered within ${ANSWER_MS} ms`);
        status = r.status;
        out.answer = status !== undefined ? `status ${status}` : 'close';
      } else {
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(new Error('timeout')), ANSWER_MS);
        try {
          const res = await fetch(`${node.url}/sse?${c.sse.query}`, { headers: c.sse.headers, signal: ac.signal });
          status = res.status;
          if (status === 200) {
            // The stream starts with the retry line; then the client goes away.
            const reader = res.body!.getReader();
            const first = await reader.read();
            body = Buffer.from(first.value ?? []).toString();
            if (!/retry: \d+/.test(body))
              out.problems.push(`SSE stream started without its retry line: ${JSON.stringify(body.slice(0, 100))}`);
            ac.abort();
          } else {
            body = await res.text();
          }
        } catch (err) {
          if (ac.signal.aborted && status === undefined) throw new Error(`SSE request not answered within ${ANSWER_MS} ms`);
          if (status === undefined) throw err;
        } finally {
          clearTimeout(timer);
        }
        out.answer = `status ${status}`;
      }
      if (status !== undefined && !SSE_STATUSES.has(status)) out.problems.push(`SSE answered ${status} ${body.slice(0, 200)}`);
      if (status !== undefined && status !== 200 && !c.raw) checkErrorBody(body, out);
    }

    function checkErrorBody(body: string, out: Outcome) {
      try {
        const j = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
        if (!j.error || !CODES.has(String(j.error.code)) || typeof j.error.message !== 'string')
          out.problems.push(`error body is not { error: { code, message } }: ${body.slice(0, 200)}`);
      } catch {
        out.problems.push(`error body is not JSON: ${body.slice(0, 200)}`);
      }
    }

    async function runApi(c: Extract<Case, { kind: 'api' }>, out: Outcome) {
      let res: Response;
      try {
        res = await fetch(`${node.url}${c.api.path}`, {
          method: c.api.method,
          headers: c.api.headers,
          body: c.api.method === 'GET' || c.api.method === 'HEAD' ? undefined : c.api.body,
          signal: AbortSignal.timeout(ANSWER_MS),
        });
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') throw new Error(`HTTP API request not answered within ${ANSWER_MS} ms`);
        // fetch refused to send it (invalid header value, …): nothing reached the node.
        out.answer = `not sent: ${(err as Error).message}`;
        return;
      }
      const body = await res.text();
      out.answer = `status ${res.status}`;
      if (!API_STATUSES.has(res.status) && !(c.api.method === 'OPTIONS' || c.api.method === 'HEAD'))
        out.problems.push(`HTTP ${c.api.method} ${c.api.path} answered ${res.status}: ${body.slice(0, 200)}`);
      if (res.status !== 200 && c.api.method !== 'HEAD' && c.api.method !== 'OPTIONS') checkErrorBody(body, out);
    }

    async function runHandshake(c: Extract<Case, { kind: 'handshake' }>, out: Outcome) {
      const path = `/socket.io/?${c.hs.query}`;
      if (c.hs.via === 'http') {
        let res: Response;
        try {
          res = await fetch(`${node.url}${path}`, {
            method: c.hs.method,
            headers: c.hs.headers,
            body: c.hs.method === 'POST' || c.hs.method === 'PUT' ? '40' : undefined,
            signal: AbortSignal.timeout(ANSWER_MS),
          });
        } catch (err) {
          if ((err as Error).name === 'TimeoutError') throw new Error(`handshake request not answered within ${ANSWER_MS} ms`);
          out.answer = 'close';
          return;
        }
        await res.arrayBuffer();
        out.answer = `status ${res.status}`;
        if (res.status >= 500 && res.status !== 503)
          out.problems.push(`handshake ${c.hs.method} ${path.slice(0, 100)} answered ${res.status}`);
        return;
      }
      const ws = new WebSocket(`ws://127.0.0.1:${node.port}${path}`, { headers: c.hs.headers, maxPayload: 64 * 1024 * 1024 });
      ws.on('error', () => {});
      out.answer = await new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve('timeout'), ANSWER_MS);
        ws.once('unexpected-response', (_req, res) => {
          clearTimeout(timer);
          resolve(`status ${res.statusCode}`);
          res.resume();
        });
        ws.once('open', () => {
          clearTimeout(timer);
          resolve('open');
        });
        ws.once('close', () => {
          clearTimeout(timer);
          resolve('close');
        });
      });
      ws.terminate();
      if (out.answer === 'timeout') throw new Error(`WebSocket handshake not answered within ${ANSWER_MS} ms`);
      if (/^status 5/.test(out.answer) && out.answer !== 'status 503')
        out.problems.push(`WebSocket handshake ${path.slice(0, 100)} answered ${out.answer}`);
    }

    async function runRaw(c: Extract<Case, { kind: 'raw' }>, out: Outcome) {
      const r = await rawHttp(node.port, c.bytes, ANSWER_MS);
      if (r.timedOut) throw new Error(`raw HTTP request not answered (no status line, no close) within ${ANSWER_MS} ms`);
      out.answer = r.status !== undefined ? `status ${r.status}` : 'close';
      if (r.status !== undefined && r.status >= 500 && r.status !== 503) out.problems.push(`raw request answered ${r.status}`);
    }

    async function runCase(w: { ws?: RawWs; poll?: PollSession }, index: number) {
      let c: Case;
      try {
        c = makeCase(index);
      } catch (err) {
        fail(hard, index, undefined, `the test's case generator threw: ${(err as Error).stack}`);
        return;
      }
      const out: Outcome = { answer: '?', acks: new Map(), problems: [] };
      try {
        switch (c.kind) {
          case 'ws':
            await runWs(w, c, out);
            break;
          case 'polling':
            await runPolling(w, c, out);
            break;
          case 'sse':
            await runSse(c, out);
            break;
          case 'api':
            await runApi(c, out);
            break;
          case 'raw':
            await runRaw(c, out);
            break;
          case 'handshake':
            await runHandshake(c, out);
            break;
        }
      } catch (err) {
        if (!alive()) fail(hard, index, c, `the node exited (code ${node.proc.exitCode}, signal ${node.proc.signalCode}) around this case`);
        else fail(hard, index, c, (err as Error).message);
        // A connection that hung is replaced.
        w.ws?.terminate();
        w.ws = undefined;
        w.poll = undefined;
        return;
      }
      // Errors the node logged meanwhile (with several workers, possibly caused by a concurrent case).
      const output = node.output();
      if (output.length > logCursor) {
        const fresh = errorLines(output.slice(output.lastIndexOf('\n', logCursor) + 1));
        logCursor = output.length;
        for (const e of fresh)
          out.problems.push(`the node logged an error around this case${WORKERS > 1 ? ' (or a concurrent one)' : ''}: ${e}`);
      }
      for (const p of out.problems) fail(problems, index, c, p);
      stats.cases++;
      stats.byKind[c.kind] = (stats.byKind[c.kind] ?? 0) + 1;
      const a = out.answer.replace(/not sent:.*/, 'not sent');
      stats.answers[`${c.kind}: ${a}`] = (stats.answers[`${c.kind}: ${a}`] ?? 0) + 1;
      if (VERBOSE) console.log(`[fuzz] case ${index} ${c.kind} → ${out.answer} ${describeCase(c).slice(0, 300)}`);
    }

    test('every case is answered; the node never stops and the bystander keeps receiving', async () => {
      startedAt = Date.now();
      let nextIndex = ONLY ?? 0;
      const last = ONLY !== undefined ? ONLY + 1 : CASES;
      let stop = false;

      // Watchdog: the process, /healthz and the bystander's publications, all along.
      const watchdog = (async () => {
        let seq = 0;
        while (!stop) {
          if (!alive()) {
            fail(
              hard,
              undefined,
              undefined,
              `the node exited (code ${node.proc.exitCode}, signal ${node.proc.signalCode}) after about ${ran} cases\n${node.output().slice(-3000)}`,
            );
            stop = true;
            return;
          }
          try {
            const h = await fetch(`${node.internalUrl}/healthz`, { signal: AbortSignal.timeout(ANSWER_MS) });
            if (h.status !== 200) fail(hard, undefined, undefined, `/healthz answered ${h.status} after about ${ran} cases`);
            const n = seq++;
            const res = await fetch(`${node.url}/api/publish`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: 'Bearer test-key-0123456789abcdef' },
              body: JSON.stringify({ channel: BYSTANDER_CHANNEL, event: 'tick', data: { seq: n } }),
              signal: AbortSignal.timeout(ANSWER_MS),
            });
            if (res.status !== 200)
              fail(hard, undefined, undefined, `publishing to the bystander answered ${res.status} after about ${ran} cases`);
            await res.arrayBuffer();
            await waitFor(() => ticks.includes(n), { timeout: ANSWER_MS, interval: 10, what: `bystander tick ${n}` });
          } catch (err) {
            fail(hard, undefined, undefined, `bystander/health check failed after about ${ran} cases: ${(err as Error).message}`);
          }
          await sleep(200);
        }
      })();

      const worker = async () => {
        const w: { ws?: RawWs; poll?: PollSession } = {};
        try {
          while (!stop && nextIndex < last) {
            if (Date.now() - startedAt > budgetMs) {
              stop = true;
              break;
            }
            const i = nextIndex++;
            if (!mine(i)) continue;
            await runCase(w, i);
            ran++;
            if (hard.length > 50) stop = true;
          }
        } finally {
          stop = true;
        }
      };
      const results = await Promise.allSettled(Array.from({ length: ONLY !== undefined ? 1 : WORKERS }, worker));
      stop = true;
      await watchdog;
      for (const r of results) if (r.status === 'rejected') throw r.reason;
      // Give the bystander's last tick a moment, then check it got every one, once, in order.
      const elapsed = Date.now() - startedAt;
      console.log(`[fuzz] FUZZ_SEED=${SEED}: ${ran} cases in ${elapsed} ms (${stats.cases} completed)`);
      console.log(`[fuzz] cases by kind: ${JSON.stringify(stats.byKind)}`);
      console.log(`[fuzz] answers: ${JSON.stringify(Object.fromEntries(Object.entries(stats.answers).sort((a, b) => b[1] - a[1])))}`);
      const errs = nodeErrors(node.output());
      if (errs.length) console.log(`[fuzz] the node logged errors:\n  ${errs.join('\n  ')}`);
      if (nextIndex < last) console.log(`[fuzz] stopped at the time budget after ${ran} of ${CASES} cases`);
      assert.ok(alive(), 'the node process is still running');
      assert.equal((await fetch(`${node.internalUrl}/healthz`)).status, 200);
      assert.ok(bystander.connected, 'the bystander is still connected');
      assert.deepEqual(
        ticks,
        Array.from({ length: ticks.length }, (_, i) => i),
        'the bystander got every tick once, in order',
      );
      assert.ok(ticks.length > 0, 'the bystander received ticks');
      assert.deepEqual(hard, [], `${hard.length} case(s) hung or broke the node (FUZZ_SEED=${SEED}):\n${hard.slice(0, 10).join('\n')}`);
    });

    test('no case gets an internal error, a 5xx or a malformed answer; no uncaught exception in the node', async () => {
      const uncaught = await metricValue(node.internalUrl, 'switchboard_uncaught_exceptions_total');
      const distinct = [
        ...new Set(
          problems.map((p) =>
            p
              .split('\n')[0]!
              .replace(/^case \d+ \(\w+\): /, '')
              .replace(/ around this case( \(or a concurrent one\))?/, '')
              .replace(/ack \d+/, 'ack N')
              .replace(/\/api\/channels\/\S+/, '/api/channels/…'),
          ),
        ),
      ];
      assert.deepEqual(
        problems,
        [],
        `${problems.length} contract violation(s) (FUZZ_SEED=${SEED}); distinct:\n  ${distinct.slice(0, 20).join('\n  ')}\nthe node logged:\n  ${nodeErrors(node.output()).join('\n  ')}\nfirst cases:\n${problems.slice(0, 8).join('\n')}`,
      );
      assert.equal(
        uncaught,
        0,
        `switchboard_uncaught_exceptions_total is ${uncaught}:\n${node
          .output()
          .split('\n')
          .filter((l) => l.includes('uncaught') || l.includes('unhandled'))
          .slice(0, 5)
          .join('\n')}`,
      );
    });

    test('afterwards the accounting is back to the bystander alone', async () => {
      for (const w of openWs) w.ws.close();
      for (const p of openPolls) await p.close().catch(() => {});
      openWs.clear();
      openPolls.clear();
      // Sessions fuzzed into a half-open state end at the ping timeout (2.5 s + 2.5 s).
      let last = '';
      try {
        await waitFor(
          async () => {
            const [ws, polling, sse, stats] = await Promise.all([
              metricValue(node.internalUrl, 'switchboard_connections', { transport: 'websocket' }),
              metricValue(node.internalUrl, 'switchboard_connections', { transport: 'polling' }),
              metricValue(node.internalUrl, 'switchboard_connections', { transport: 'sse' }),
              fetch(`${node.url}/api/stats`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } }).then(
                (r) => r.json() as Promise<{ connections: number }>,
              ),
            ]);
            last = JSON.stringify({ websocket: ws, polling, sse, statsConnections: stats.connections });
            return ws + polling === 1 && sse === 0 && stats.connections === 1;
          },
          { timeout: 20_000, interval: 250, what: 'connections back to the bystander alone' },
        );
      } catch {
        assert.fail(`connections did not return to the bystander alone within 20 s; last seen ${last} (FUZZ_SEED=${SEED})`);
      }
      const problems: string[] = [];
      const get = async (c: string) =>
        (await (
          await fetch(`${node.url}/api/channels/${c}`, { headers: { authorization: 'Bearer test-key-0123456789abcdef' } })
        ).json()) as { subscribers: number; members?: unknown[] };
      const by = await get(BYSTANDER_CHANNEL);
      if (by.subscribers !== 1) problems.push(`${BYSTANDER_CHANNEL}: ${JSON.stringify(by)}`);
      for (const c of ['demo:a', 'demo:b', 'demo:c', 'orders:x', 'chat:1', 'a']) {
        const info = await get(c);
        if (info.subscribers !== 0 || (info.members ?? []).length !== 0) problems.push(`${c}: ${JSON.stringify(info)}`);
      }
      const subs = await metricValue(node.internalUrl, 'switchboard_subscriptions');
      if (subs !== 1)
        problems.push(
          `switchboard_subscriptions is ${subs} while only the bystander is connected, with one subscription: the gauge (or the adapter rooms it counts) leaks`,
        );
      assert.deepEqual(problems, [], `accounting is off after the fuzz (FUZZ_SEED=${SEED}):\n  ${problems.join('\n  ')}`);
    });

    test('nothing went wrong after the last case: the node logged no error up to its graceful stop', async () => {
      // The stop is the fence: once its output is closed, no line the node logged is still on the way.
      const closed = new Promise((r) => node.proc.once('close', r));
      node.kill('SIGTERM');
      await closed;
      const late = errorLines(node.output().slice(node.output().lastIndexOf('\n', logCursor) + 1));
      const after = ONLY !== undefined ? `case ${ONLY} (replay: ${replay(ONLY)})` : 'the last cases';
      assert.deepEqual(late, [], `the node logged errors after ${after} or while stopping (FUZZ_SEED=${SEED})`);
    });
  });
}
