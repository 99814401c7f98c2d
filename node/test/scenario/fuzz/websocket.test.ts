// Fuzz, by target: Engine.IO / Socket.IO frames over raw WebSockets and WebSocket or HTTP handshakes with odd parameters (cases and checks in suite.ts).
import { fuzzTarget } from './suite.js';

fuzzTarget('websocket', ['ws', 'handshake']);
