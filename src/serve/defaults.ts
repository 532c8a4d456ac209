// The server's and the batcher's defaults, apart from their modules so that the CLI can
// show them in --help without loading Fastify or the model code.
export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  bodyLimit: 8 * 1024 * 1024,
  maxFiles: 64,
  maxPixels: 24_000_000,
  requestTimeoutMs: 30_000,
  rateLimit: { max: 6000, windowMs: 60_000 },
} as const;

export const DEFAULT_BATCHING = {
  maxBatch: 32,
  maxDelayMs: 2,
  maxQueue: 512,
  concurrency: 1,
  queueTimeoutMs: 10_000,
} as const;
