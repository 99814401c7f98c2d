// The one pino root logger; each concern takes a child with `{ module }`.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, nodeId: string): Logger {
  return pino({
    level,
    base: { node: nodeId },
    // Tokens and cookies never reach the log, whatever a caller passes in.
    redact: { paths: ['token', 'auth.token', 'headers.cookie', 'headers.authorization', '*.token'], censor: '[redacted]' },
  });
}
