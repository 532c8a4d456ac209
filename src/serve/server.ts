// The HTTP server: a Fastify app built from options. Models come from a ModelRegistry that
// the caller fills; other subsystems add routes by passing Fastify plugins, which see the
// same registry, metrics and limits through `app.torchlet`.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyServerOptions } from 'fastify';
import { DEFAULTS } from './defaults.js';
import { ApiError, errorSchema, type ErrorBody } from './errors.js';
import { inBrowserAssets, onnxRoute } from './inbrowser.js';
import { serveProcessIndex } from './cluster.js';
import { ServerMetrics } from './metrics.js';
import { predictRoutes, predictSchemas } from './predict.js';
import type { ModelRegistry } from './registry.js';
import { healthResponse, modelsResponse } from './schemas.js';
import { webRoutes } from './web.js';

export interface ServeOptions {
  registry: ModelRegistry;
  /** Interface the server will listen on; decides whether a token is required (default 127.0.0.1). */
  host?: string;
  /** Bearer token for every request that starts work (anything but GET/HEAD/OPTIONS). Required off loopback. */
  token?: string;
  /** Largest request body in bytes, multipart uploads included (default 8 MiB). */
  bodyLimit?: number;
  /** Most files in one /predict/batch request (default 64). */
  maxFiles?: number;
  /** Largest image a header may declare, in pixels: a decompression-bomb guard (default 24 million). */
  maxPixels?: number;
  /** Time allowed to receive a whole request, in ms (default 30 s; 0: none). */
  requestTimeoutMs?: number;
  /** Requests per client IP per window; false turns the limit off (default 6000 per minute). */
  rateLimit?: { max: number; windowMs: number } | false;
  /** Serve the page at / (default true). */
  web?: boolean;
  /** Fastify's logger (default: off). */
  logger?: FastifyServerOptions['logger'];
  /** More routes: each is registered after the built-in ones, with app.torchlet available. */
  plugins?: FastifyPluginAsync[];
  /**
   * Answers `?run=ID` on the predict routes: loads (once) a run's weights into the registry
   * and gives the name they are served under, or throws an ApiError. Without it, ?run= is a 404.
   */
  runModel?: (run: string) => Promise<string>;
}

export interface ResolvedOptions {
  host: string;
  token: string | undefined;
  bodyLimit: number;
  maxFiles: number;
  maxPixels: number;
  requestTimeoutMs: number;
  rateLimit: { max: number; windowMs: number } | false;
  web: boolean;
}

/** What plugins get as `app.torchlet`. */
export interface ServeContext {
  registry: ModelRegistry;
  metrics: ServerMetrics;
  options: ResolvedOptions;
  startedAt: number;
  runModel: ((run: string) => Promise<string>) | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    torchlet: ServeContext;
  }
  interface FastifyContextConfig {
    /** Request bodies besides JSON, for the OpenAPI document only (the route parses them). */
    openapiBody?: Record<string, { schema: object }>;
  }
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host.startsWith('::ffff:127.');
}

function resolveOptions(o: ServeOptions): ResolvedOptions {
  const positive = (name: string, v: number): number => {
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
    return v;
  };
  const rateLimit = o.rateLimit === undefined ? { ...DEFAULTS.rateLimit } : o.rateLimit;
  if (rateLimit) {
    positive('rateLimit.max', rateLimit.max);
    positive('rateLimit.windowMs', rateLimit.windowMs);
  }
  const requestTimeoutMs = o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  if (requestTimeoutMs !== 0) positive('requestTimeoutMs', requestTimeoutMs);
  if (o.token !== undefined && o.token.length < 16) throw new RangeError('the token must be at least 16 characters');
  return {
    host: o.host ?? DEFAULTS.host,
    token: o.token,
    bodyLimit: positive('bodyLimit', o.bodyLimit ?? DEFAULTS.bodyLimit),
    maxFiles: positive('maxFiles', o.maxFiles ?? DEFAULTS.maxFiles),
    maxPixels: positive('maxPixels', o.maxPixels ?? DEFAULTS.maxPixels),
    requestTimeoutMs,
    rateLimit,
    web: o.web ?? true,
  };
}

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'empty',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_content_length',
  FST_ERR_CTP_EMPTY_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported_media_type',
  FST_REQ_FILE_TOO_LARGE: 'too_large',
  FST_FILES_LIMIT: 'too_many_files',
  FST_PARTS_LIMIT: 'too_many_parts',
  FST_FIELDS_LIMIT: 'too_many_fields',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'unsupported_media_type',
  FST_PROTO_VIOLATION: 'malformed_multipart',
};

export const MEDIA_HINT = "; send the image as multipart/form-data (field 'file'), as a raw image/* body, or JSON {\"pixels\": [784 values]}";

/** Any error as the API's JSON error: 4xx for everything the client can fix. */
export function toErrorBody(err: unknown): { body: ErrorBody; headers: Record<string, string> } {
  if (err instanceof ApiError) return { body: { statusCode: err.statusCode, error: err.code, message: err.message }, headers: err.headers };
  const e = err as FastifyError & { validationContext?: string };
  if (e.validation) return { body: { statusCode: 400, error: 'invalid_request', message: e.message }, headers: {} };
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code = FASTIFY_CODES[e.code] ?? (status === 429 ? 'rate_limited' : 'bad_request');
    const message = code === 'unsupported_media_type' && e.code?.startsWith('FST_ERR_CTP') ? `${e.message}${MEDIA_HINT}` : e.message;
    return { body: { statusCode: status === 406 ? 415 : status, error: code, message }, headers: {} };
  }
  return { body: { statusCode: 500, error: 'internal', message: 'internal error; the server log has the details' }, headers: {} };
}

function sameToken(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Builds the app (not listening). The registry stays the caller's: close it after app.close(). */
export async function buildServer(serveOptions: ServeOptions): Promise<FastifyInstance> {
  const options = resolveOptions(serveOptions);
  const { registry } = serveOptions;
  const app = Fastify({
    logger: serveOptions.logger ?? false,
    bodyLimit: options.bodyLimit,
    requestTimeout: options.requestTimeoutMs,
    // Node checks request deadlines on this interval (30 s by default), so a short timeout
    // needs a shorter interval to mean anything.
    ...(options.requestTimeoutMs > 0 && {
      http: {
        headersTimeout: Math.min(60_000, options.requestTimeoutMs),
        connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(options.requestTimeoutMs / 4))),
      },
    }),
    // Idle keep-alive sockets are closed at once on close(); requests in flight finish.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, useDefaults: true, coerceTypes: true, allErrors: false } },
  });
  const ctx: ServeContext = { registry, metrics: new ServerMetrics(registry), options, startedAt: Date.now(), runModel: serveOptions.runModel };
  app.decorate('torchlet', ctx);

  app.addSchema(errorSchema);
  for (const s of predictSchemas) app.addSchema(s);

  app.addContentTypeParser(/^image\/[\w.+-]+$/, { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_req, body, done) => done(null, body));
  // Uploads are buffered (bodyLimit bounds them) and parsed in the route: src/serve/multipart.ts.
  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err, req, reply) => {
    const { body, headers } = toErrorBody(err);
    if (body.statusCode >= 500 && body.error === 'internal') req.log.error({ err }, 'internal error');
    void reply.headers(headers).code(body.statusCode).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ statusCode: 404, error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}; the API is described at /docs` });
  });

  if (options.token !== undefined) {
    const token = options.token;
    app.addHook('onRequest', async (req) => {
      if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
      const header = req.headers.authorization ?? '';
      const given = /^Bearer (.+)$/i.exec(header)?.[1];
      if (given === undefined || !sameToken(given, token)) {
        throw new ApiError(401, 'unauthorized', 'this server needs a token for POST requests: send the header "Authorization: Bearer <TORCHLET_TOKEN>"');
      }
    });
  }
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    ctx.metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    ctx.metrics.latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  if (options.rateLimit) {
    const { max, windowMs } = options.rateLimit;
    await app.register(fastifyRateLimit, {
      global: true,
      max,
      timeWindow: windowMs,
      errorResponseBuilder: (_req, c) =>
        new ApiError(429, 'rate_limited', `rate limit: at most ${c.max} requests per ${Math.round(windowMs / 1000)} s from one client; retry in ${Math.ceil(c.ttl / 1000)} s`),
    });
  }

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'torchlet',
        description: 'Classify handwritten digits with tiny CNNs trained by torchlet. The page to draw on is at /.',
        version: '0.1.0',
      },
      tags: [
        { name: 'predict', description: 'Digits from images' },
        { name: 'server', description: 'Models, health and metrics' },
        ...(serveOptions.plugins?.length ? [{ name: 'runs', description: 'Training runs: queue them, follow them, fetch their artifacts' }] : []),
      ],
      ...(options.token !== undefined && {
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
      }),
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transform: ({ schema, url, route }) => {
      const extra = route.config?.openapiBody;
      if (!extra || !schema) return { schema, url };
      const body = (schema.body ?? {}) as { content?: Record<string, unknown> };
      return { schema: { ...schema, body: { content: { ...body.content, ...extra } } }, url };
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  predictRoutes(app, ctx);
  onnxRoute(app, ctx);

  app.get(
    '/models',
    { schema: { summary: 'The models this server answers with', tags: ['server'], response: { 200: modelsResponse } } },
    async () => ({
      ...(registry.default !== undefined && { default: registry.default }),
      models: registry.list().map((m) => ({
        name: m.name,
        description: m.description,
        params: m.params,
        accuracy: m.accuracy,
        source: m.source,
        default: m.name === registry.default,
        ...(m.ensemble !== undefined && { vote: m.ensemble.vote, members: m.ensemble.members }),
      })),
    }),
  );
  app.get(
    '/healthz',
    { schema: { summary: 'Liveness: 200 while the server takes requests (503 while it drains)', tags: ['server'], response: { 200: healthResponse } } },
    async () => ({
      status: 'ok' as const,
      models: registry.list().length,
      uptimeSeconds: (Date.now() - ctx.startedAt) / 1000,
      auth: options.token !== undefined,
      process: serveProcessIndex(),
    }),
  );
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text format): requests, latency, batch sizes, queue depth, model load',
        tags: ['server'],
        response: { 200: { type: 'string' } },
      },
    },
    async (_req, reply) => {
      void reply.type(ctx.metrics.registry.contentType);
      return ctx.metrics.text().catch((err: unknown) => {
        throw new ApiError(503, 'unavailable', err instanceof Error ? err.message : String(err));
      });
    },
  );
  if (options.web) {
    webRoutes(app);
    inBrowserAssets(app);
  }

  for (const plugin of serveOptions.plugins ?? []) await app.register(plugin);
  return app;
}

export interface Listening {
  app: FastifyInstance;
  /** http://host:port */
  url: string;
}

/** Builds and starts the server. Refuses to listen off loopback without a token. */
export async function startServer(serveOptions: ServeOptions & { port?: number }): Promise<Listening> {
  const host = serveOptions.host ?? DEFAULTS.host;
  if (!isLoopback(host) && serveOptions.token === undefined) {
    throw new Error(
      `refusing to listen on ${host} without a token: anyone who can reach it could run work on this machine. ` +
        'Set TORCHLET_TOKEN (16+ characters) or pass --token, or bind to 127.0.0.1',
    );
  }
  const app = await buildServer({ ...serveOptions, host });
  try {
    await app.listen({ host, port: serveOptions.port ?? DEFAULTS.port });
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : serveOptions.port;
  return { app, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
}

/**
 * On `signals` (SIGTERM and SIGINT): stop taking requests, answer those in flight, close the models,
 * then exit 0. A second signal exits at once.
 */
export function drainOnSignals(app: FastifyInstance, registry: ModelRegistry, log: (line: string) => void, signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): void {
  let draining = false;
  const drain = (signal: NodeJS.Signals): void => {
    if (draining) {
      log(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    draining = true;
    log(`${signal}: draining requests in flight`);
    app
      .close()
      .then(() => registry.close())
      .then(
        () => {
          log('drained; bye');
          process.exit(0);
        },
        (err: unknown) => {
          log(`error while draining: ${err instanceof Error ? err.message : String(err)}`);
          process.exit(1);
        },
      );
  };
  for (const signal of signals) process.on(signal, drain);
}
