// Writes the headline table of one finished run into the project README, between its bench markers, with the date,
// the machine and the command: the README's figures always come from one full run, losses included.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './results.js';
import { SPREAD_NOTE, spreadTable } from './report.js';
import { SCENARIO_NAMES } from './scenarios.js';

export const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const BEGIN = '<!-- bench-table:begin (generated: npm run bench -- --readme bench/results/<run>.json) -->';
const END = '<!-- bench-table:end -->';

export function readmeSection(r: BenchResult): string {
  const m = r.machine;
  return [
    BEGIN,
    `One ${r.mode === 'full' ? 'full' : r.mode} run, ${r.startedAt.slice(0, 10)}, ${Math.round(r.seconds / 60)} min${r.complete ? '' : ' (**incomplete**)'}: \`${r.command}\` on ${m.cpus} × ${m.model}, Node ${m.node}${m.uws ? `, uWS from \`${m.uws}\`` : ''}.`,
    '',
    spreadTable(r),
    '',
    SPREAD_NOTE,
    END,
  ].join('\n');
}

/** Replaces the table between the markers (they must be there); returns the README's path. */
export function writeReadmeTable(resultJson: string, readme = README): string {
  const r = JSON.parse(readFileSync(resultJson, 'utf8')) as BenchResult;
  if (!Array.isArray(r.headlines)) throw new Error(`${resultJson}: no headline rows (written by an older harness?)`);
  // The README speaks for the whole bench: only a full run of every scenario may fill it.
  const missing = SCENARIO_NAMES.filter((n) => !r.scenarios.some((s) => s.name === n && s.runs.length > 0));
  if (r.mode !== 'full' || r.options.quick || missing.length) {
    throw new Error(
      `${resultJson}: not a full run of every scenario (${r.mode}${missing.length ? `; missing ${missing.join(', ')}` : ''}): run \`npm run bench\` first`,
    );
  }
  const text = readFileSync(readme, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${readme}: the markers ${BEGIN} … ${END} are missing`);
  writeFileSync(readme, text.slice(0, a) + readmeSection(r) + text.slice(b + END.length));
  return readme;
}
