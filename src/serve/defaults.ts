// The server's default limits, apart from server.ts so that the CLI can show them in
// --help without loading Fastify.
export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  bodyLimit: 8 * 1024 * 1024,
  maxFiles: 64,
  maxPixels: 24_000_000,
  requestTimeoutMs: 30_000,
  rateLimit: { max: 6000, windowMs: 60_000 },
} as const;
