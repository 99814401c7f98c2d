// Fuzz, by target: SSE requests, through fetch and raw HTTP (cases and checks in suite.ts).
import { fuzzTarget } from './suite.js';

fuzzTarget('sse', ['sse']);
