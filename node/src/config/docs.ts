// Renders the README's configuration table from the schema, so the two never drift.
import { FIELDS } from './schema.js';

export const TABLE_BEGIN = '<!-- config-table:begin (generated: `npm run build && node scripts/update-config-table.mjs`; do not edit) -->';
export const TABLE_END = '<!-- config-table:end -->';

function defaultOf(spec: (typeof FIELDS)[keyof typeof FIELDS]): string {
  if (spec.defaultText) return spec.defaultText;
  const r = spec.schema.safeParse(undefined);
  if (!r.success || r.data === undefined) return 'unset';
  return Array.isArray(r.data) ? r.data.join(',') || 'empty' : String(r.data);
}

export function configTable(): string {
  const rows = Object.values(FIELDS).map((spec) => `| \`${spec.env}\` | ${defaultOf(spec)} | ${spec.description.replace(/\|/g, '\\|')} |`);
  return [TABLE_BEGIN, '| env | default | meaning |', '|---|---|---|', ...rows, TABLE_END].join('\n');
}
