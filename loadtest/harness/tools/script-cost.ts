// What one publication costs Redis, next to what stock Socket.IO's PUBLISH costs: starts its own redis-server,
// sends N calls of each kind over C channels (pipelined in batches, so the request I/O is spread thin), and
// prints Redis's own time per call (INFO commandstats: the command, and for scripts the Lua and the commands
// inside) beside the Redis process's CPU per call (commandstats plus reading, parsing and answering requests).
//   node dist/loadtest/harness/tools/script-cost.js [--calls 40000] [--channels 2000] [--history 100] [--rounds 2]
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { PUBLISH_LUA } from '../../../node/src/bus/redis-bus.js';
import { startRedis } from '../cluster.js';
import { cpuSeconds, Processes } from '../proc.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '40000' },
    channels: { type: 'string', default: '2000' },
    history: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '2' },
    batch: { type: 'string', default: '50' },
  },
});
const [calls, channels, rounds, batch] = [values.calls, values.channels, values.rounds, values.batch].map(Number) as [
  number,
  number,
  number,
  number,
];

const redis = await startRedis({ registry: new Processes() }, 'script-cost');
const port = redis.port;
const r = new Redis({ port, maxRetriesPerRequest: 0 });
const sub = new Redis({ port });
try {
  // A subscriber on every kind's channels, as a node with subscribers of them would be.
  await sub.psubscribe('socket.io#/#*');
  for (let i = 0; i < channels; i += 500)
    await sub.ssubscribe(...Array.from({ length: Math.min(500, channels - i) }, (_, j) => `sb:{${(i + j) % 16}}:c:ch${i + j}`));

  const payload = JSON.stringify({ c: 'bench:ch', e: 'msg', d: { s: 1, x: 'x'.repeat(100) }, t: Date.now(), o: 'node-1' });
  const sha = (await r.script('LOAD', PUBLISH_LUA)) as string;
  const empty = (await r.script('LOAD', "return {'1-1', 0}")) as string;
  const script = (history: string) => (i: number) => {
    const c = `ch${i % channels}`;
    // The hash tag only needs to be the same for a channel's keys (one Redis here: no slots).
    const tag = `{${(i % channels) % 16}}`;
    return r.evalsha(
      sha,
      4,
      `sb:${tag}:h:${c}`,
      `sb:${tag}:m:${c}`,
      `sb:${tag}:h:${c}`,
      `sb:${tag}:c:${c}`,
      payload,
      history,
      '600000',
      '',
      '86400000',
    );
  };
  const kinds: [string, string, (i: number) => Promise<unknown>][] = [
    [`publish script, history ${values.history}`, 'evalsha', script(values.history)],
    ['publish script, no history', 'evalsha', script('0')],
    ['empty script (EVALSHA alone)', 'evalsha', () => r.evalsha(empty, 0)],
    ["PUBLISH (stock's, one pattern subscriber)", 'publish', (i) => r.publish(`socket.io#/#ch${i % channels}#`, payload)],
    ['PING (a request and its answer)', 'ping', () => r.ping()],
  ];
  const rows: string[] = [];
  for (let round = 0; round < rounds; round++)
    for (const [name, stat, call] of kinds) {
      // Every channel exists before measuring (a first XADD creates the stream: a cost of its own).
      for (let i = 0; i < channels; i += batch) await Promise.all(Array.from({ length: batch }, (_, j) => call(i + j)));
      await r.config('RESETSTAT');
      const cpu0 = cpuSeconds(redis.pid);
      for (let i = 0; i < calls; i += batch) await Promise.all(Array.from({ length: batch }, (_, j) => call(i + j)));
      const cpu = cpuSeconds(redis.pid) - cpu0;
      const stats = await r.info('commandstats');
      const m = new RegExp(`cmdstat_${stat}:calls=(\\d+),usec=(\\d+)`).exec(stats);
      const usec = m ? Number(m[2]) / Number(m[1]) : NaN;
      rows.push(`| ${round + 1} | ${name} | ${usec.toFixed(2)} | ${((cpu * 1e6) / calls).toFixed(1)} |`);
    }
  const how = batch === 1 ? 'one call per round trip' : `pipelined ${batch} at a time`;
  console.log(`${calls} calls per kind over ${channels} channels, ${how}, on redis-server ${port}\n`);
  console.log('| round | call | Redis time per call, µs (commandstats) | Redis process CPU per call, µs |');
  console.log('|---|---|---:|---:|');
  for (const row of rows) console.log(row);
} finally {
  r.disconnect();
  sub.disconnect();
  await redis.managed.stop();
}
