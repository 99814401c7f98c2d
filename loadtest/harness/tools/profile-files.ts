// The profile files named on a tool's command line: files as given, directories for their files ending in `ext`.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function profileFiles(paths: string[], ext: string): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith(ext))
          .map((f) => join(p, f))
      : [p],
  );
}
