// The one way a zod validation failure becomes text: `path: message` per issue, joined with "; ".
import type { z } from 'zod';

export function formatIssues(err: z.ZodError): string {
  return err.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}
