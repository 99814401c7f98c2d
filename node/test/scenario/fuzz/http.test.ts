// Fuzz, by target: HTTP API bodies (publish, GRIP, channel info) and raw HTTP requests with broken framing (cases and checks in suite.ts).
import { fuzzTarget } from './suite.js';

fuzzTarget('http', ['api', 'raw']);
