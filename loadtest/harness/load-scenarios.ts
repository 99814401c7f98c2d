// Reads loadtest/scenarios/*.json from disk and validates each against the schema in scenarios.ts.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenario, SCENARIO_NAMES, type Scenario } from './scenarios.js';

/** loadtest/scenarios in the source tree (this file runs from dist/loadtest/harness/). */
export const SCENARIO_DIR = fileURLToPath(new URL('../../../loadtest/scenarios/', import.meta.url));

/** Reads and validates every scenario file (`*.json` but `*.schema.json`) in `dir`. */
export function loadScenarios(dir: string = SCENARIO_DIR): Scenario[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.endsWith('.schema.json'))
    .sort();
  const out = files.map((f) => {
    const path = join(dir, f);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new Error(`${path}: not JSON: ${(err as Error).message}`);
    }
    const s = parseScenario(json, path);
    if (`${s.name}.json` !== f) throw new Error(`${path}: scenario "${s.name}" must live in ${s.name}.json`);
    return s;
  });
  for (const name of SCENARIO_NAMES) if (!out.some((s) => s.name === name)) throw new Error(`${dir}: missing ${name}.json`);
  return out;
}
