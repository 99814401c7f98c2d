// The README's code blocks as files, so the tests run what the README shows (the two can't drift).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(fileURLToPath(import.meta.url), '../../../../..');

/** The one fenced block of `lang` whose text contains `marker` (throws if none or several). */
export function readmeBlock(lang: string, marker: string): string {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm'))]
    .map((m) => m[1]!)
    .filter((b) => b.includes(marker));
  if (blocks.length !== 1)
    throw new Error(`README.md has ${blocks.length} \`${lang}\` blocks containing ${JSON.stringify(marker)}, not one`);
  return blocks[0]!;
}

/** Writes README blocks to files in a new temporary directory: `{ 'name.php': text }` → the directory. */
export function writeBlocks(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-readme-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
