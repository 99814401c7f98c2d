// Fuzz, by target: Long-polling bodies on a connected session (cases and checks in suite.ts).
import { fuzzTarget } from './suite.js';

fuzzTarget('polling', ['polling']);
