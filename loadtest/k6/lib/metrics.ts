// The custom metrics every script reports, named as in loadtest/harness/scenarios.ts (METRICS) so the scenario
// files' thresholds mean the same in k6 and in the harness. Trends are in milliseconds.
import { Counter, Trend } from 'k6/metrics';

/** Publish time (server `meta.ts`) to receipt. */
export const e2eLatency = new Trend('sb_e2e_latency', true);
/** Round trip of an acknowledged call: publish, subscribe, rpc (or the HTTP publish request). */
export const ackLatency = new Trend('sb_ack_latency', true);
/** WebSocket open to the namespace connect ack (`40`). */
export const handshakeDuration = new Trend('sb_handshake_duration', true);
export const deliveries = new Counter('sb_deliveries');
/** Sequence numbers skipped within a (channel, publisher) stream. */
export const messagesLost = new Counter('sb_messages_lost');
/** Discontinuities in a stream (one gap may lose many). */
export const seqGaps = new Counter('sb_seq_gaps');
export const publishErrors = new Counter('sb_publish_errors');
export const rpcErrors = new Counter('sb_rpc_errors');
export const connectErrors = new Counter('sb_connect_errors');
export const reconnects = new Counter('sb_reconnects');
/** Resubscribes with `since` that answered `recovered: false`. */
export const unrecovered = new Counter('sb_unrecovered');
