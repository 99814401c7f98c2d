// Typed errors with the contract's stable codes, and the ack shapes they become.
export const ERROR_CODES = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'invalid_channel',
  'rate_limited',
  'too_large',
  'unavailable',
  'timeout',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const HTTP: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  invalid_channel: 400,
  rate_limited: 429,
  too_large: 413,
  unavailable: 503,
  timeout: 503,
  internal: 500,
};

export class SbError extends Error {
  override name = 'SbError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
  get httpStatus(): number {
    return HTTP[this.code];
  }
}

export interface ErrorAck {
  ok: false;
  error: { code: ErrorCode; message: string };
}

export function errorAck(err: unknown): ErrorAck {
  if (err instanceof SbError) return { ok: false, error: { code: err.code, message: err.message } };
  return { ok: false, error: { code: 'internal', message: 'internal error' } };
}
