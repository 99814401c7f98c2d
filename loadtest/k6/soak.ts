// soak: steady publications for `durationSeconds` (30 min by default) while `churn.fraction` of the subscribers
// drop and resubscribe with `since` every `churn.intervalSeconds`. Loss counts sequence numbers missing within a
// stream; a resubscribe answered `recovered: false` restarts that stream (sb_unrecovered).
//   SB_URL=wss://localhost:8443 SB_API=https://localhost:8443 SB_API_KEY=… SB_INSECURE=1 k6 run loadtest/k6/soak.ts
import { pubsub } from './lib/pubsub.ts';

export const { options, setup, subscribers, publishOne, publisher } = pubsub('soak');
