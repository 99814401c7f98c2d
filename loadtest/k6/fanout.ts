// fanout: `subscribers` sockets in `channels` channels, one publisher at `publishRate` (Socket.IO `publish` or
// `POST /api/publish`). Reports end-to-end latency from meta.ts, deliveries, loss and gaps from sequence numbers.
// To measure cross-node latency, point subscribers and publisher at different nodes with SB_URL_SUB / SB_URL_PUB.
//   SB_URL=wss://localhost:8443 SB_API=https://localhost:8443 SB_API_KEY=… SB_INSECURE=1 k6 run loadtest/k6/fanout.ts
import { pubsub } from './lib/pubsub.ts';

export const { options, setup, subscribers, publishOne, publisher } = pubsub('fanout');
