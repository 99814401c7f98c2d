// many-channels: `connections` sockets, each in `channelsPerConnection` of `channels` channels; publications
// round-robin over the channels (HTTP API by default). Same metrics as fanout.
//   SB_URL=wss://localhost:8443 SB_API=https://localhost:8443 SB_API_KEY=… SB_INSECURE=1 k6 run loadtest/k6/many-channels.ts
import { pubsub } from './lib/pubsub.ts';

export const { options, setup, subscribers, publishOne, publisher } = pubsub('many-channels');
