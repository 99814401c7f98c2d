// V8 settings of the server process, applied as it starts (imported first by main.ts; the library entry, index.ts,
// leaves the host process's V8 alone).
//
// Allocation-site pretenuring is off. V8 watches each object literal's allocation site; when nearly everything one
// site made survives a young-generation collection, every later object from that site is allocated in the old
// generation, for good. A gateway's traffic misleads it: objects made for a burst of connections (a /connect
// webhook in flight for each, all alive at once) and objects made for every RPC call afterwards come from the
// same sites (the webhook request, Node's HTTP client), so a burst decides that every later call's short-lived objects
// go straight to the old generation. Measured with 200 clients making 2,000 webhook RPC calls/s on one node
// (`--trace-gc --trace-pretenuring-statistics`): a dozen sites tenured during the connections; then every scavenge
// kept ~3 MB (the old generation grew by that much four times a second until a full collection) and took 5-8 ms
// instead of ~1 ms, the calls it held up made the p99 7-13 ms instead of 2-3 ms, and CPU per call was ~15 % higher.
// Whether it happened depended on whether a scavenge fell inside the burst. Without pretenuring, objects that do
// live long (a connection's) are copied once more before they reach the old generation: the same memory in the end.
// An operator who wants V8's default back runs `node --allocation-site-pretenuring dist/node/src/main.js listen`.
import { setFlagsFromString } from 'node:v8';

/** True when the command line already chose pretenuring either way (V8 takes it there, not in NODE_OPTIONS). */
function pretenuringChosen(execArgv: readonly string[]): boolean {
  return execArgv.some((a) => /^--(no-)?allocation[-_]site[-_]pretenuring(=|$)/.test(a));
}

if (!pretenuringChosen(process.execArgv)) setFlagsFromString('--no-allocation-site-pretenuring');
