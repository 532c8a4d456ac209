// Every error the API answers with: a status, a stable code clients can switch on, and a
// message that names the problem. The server's error handler turns anything else into
// one of these (see server.ts), so no request is ever answered with a bare 500.

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** Extra response headers, e.g. Retry-After on 503. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The JSON body of every 4xx/5xx answer. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
}

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  description: 'Every error: the HTTP status, a stable code, and a message naming the problem.',
  properties: {
    statusCode: { type: 'integer', example: 400 },
    error: { type: 'string', description: 'stable machine-readable code', example: 'corrupt' },
    message: { type: 'string', example: "the image could not be decoded: it is truncated or corrupt" },
  },
  required: ['statusCode', 'error', 'message'],
} as const;
