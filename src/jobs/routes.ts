// Training over HTTP: POST /runs queues a config for the workers; GET /runs/{id} and its
// server-sent events follow it; cancel and delete end it. A Fastify plugin over a run
// store: `torchlet serve` mounts it (and its token hook guards the writes off loopback).
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify';
// The OpenAPI fields of route schemas (summary, tags) are @fastify/swagger's, which `torchlet serve` registers.
import type {} from '@fastify/swagger';
import { ConfigError, parseConfigText } from '../config.js';
import { RUN_STATUSES, RunNotFoundError, type Run, type RunStatus, type RunStore } from '../store/store.js';
import { checkJobConfig } from './config.js';

export interface JobsOptions {
  store: RunStore;
  /** The folder configs may name data under. */
  dataRoot: string;
  /** How often an event stream looks at the store for news (ms, default 500). */
  pollMs?: number;
  /** The most runs that may wait in the queue at once (default 1000): more is a 429. */
  maxQueued?: number;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly fields?: { field: string; message: string }[],
  ) {
    super(message);
  }
}

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[0-9a-fA-F]{4,32}$', description: 'the run id, or a unique prefix of at least 4 characters' } },
} as const;

const errorBody = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, error: { type: 'string' }, message: { type: 'string' }, fields: { type: 'array', items: { type: 'object', additionalProperties: true } } },
} as const;

const ARTIFACT_TYPES: Record<string, string> = { '.png': 'image/png', '.json': 'application/json', '.log': 'text/plain; charset=utf-8' };

const TERMINAL: RunStatus[] = ['finished', 'failed', 'cancelled'];

export const jobsRoutes: FastifyPluginAsync<JobsOptions> = async (app: FastifyInstance, options: JobsOptions) => {
  const { store } = options;
  const pollMs = options.pollMs ?? 500;
  // Open event streams end when the server closes, so that closing does not wait on them.
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => streams.forEach((end) => end()));

  // YAML bodies for POST /runs; JSON is Fastify's own. Both are capped at 64 KiB there.
  app.addContentTypeParser(/^(application|text)\/(x-)?yaml$/, { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: FastifyError | Error, _req, reply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).send({ statusCode: err.statusCode, error: err.code, message: err.message, ...(err.fields && { fields: err.fields }) });
    if (err instanceof RunNotFoundError) return reply.code(404).send({ statusCode: 404, error: 'not_found', message: err.message });
    if (err instanceof ConfigError) return reply.code(400).send({ statusCode: 400, error: 'invalid_config', message: err.message, fields: err.issues });
    const status = 'statusCode' in err ? err.statusCode : undefined;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const validation = 'validation' in err && err.validation !== undefined;
      return reply.code(status).send({ statusCode: status, error: validation ? 'invalid_request' : 'code' in err ? err.code : 'bad_request', message: err.message });
    }
    reply.log.error({ err }, 'internal error');
    return reply.code(500).send({ statusCode: 500, error: 'internal', message: 'internal error; the server log has the details' });
  });

  const find = async (id: string): Promise<Run> => {
    const run = await store.findRun(id);
    if (run === undefined || run.deleted) throw new HttpError(404, 'not_found', `no run '${id}'`);
    return run;
  };

  app.post<{ Querystring: { experiment?: string; name?: string } }>(
    '/runs',
    {
      bodyLimit: 64 * 1024,
      schema: {
        summary: 'Queue a training run: the body is a config (JSON or YAML) in the schema of `torchlet train --config`',
        tags: ['runs'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { experiment: { type: 'string', minLength: 1, maxLength: 200 }, name: { type: 'string', minLength: 1, maxLength: 200 } },
        },
        response: { 202: { type: 'object', properties: { id: { type: 'string' }, status: { type: 'string' }, url: { type: 'string' }, events: { type: 'string' } } }, 400: errorBody, 429: errorBody },
      },
    },
    async (req, reply) => {
      const body: unknown = req.body;
      const raw = typeof body === 'string' ? parseConfigText(body, 'yaml', 'config') : body;
      if (raw === undefined || raw === null) throw new HttpError(400, 'invalid_config', 'the body must be a config (JSON or YAML)');
      const { config } = checkJobConfig(raw, options.dataRoot, 'config');
      const queued = (await store.listRuns({ status: 'queued' })).length;
      if (queued >= (options.maxQueued ?? 1000)) throw new HttpError(429, 'queue_full', `${queued} runs are already queued; try again once some have started`);
      // The config as sent (data paths relative to the data root), so any worker can resolve it against its own.
      const run = await store.createRun({
        config: raw as Record<string, unknown>,
        params: { ...config, ...(config.dataDir !== undefined && { dataDir: (raw as { dataDir?: string }).dataDir }) },
        ...(req.query.experiment !== undefined && { experiment: req.query.experiment }),
        name: req.query.name ?? `${config.model}-${config.aug ? 'aug' : 'noaug'}`,
      });
      return reply
        .code(202)
        .header('location', `/runs/${run.id}`)
        .send({ id: run.id, status: run.status, url: `/runs/${run.id}`, events: `/runs/${run.id}/events` });
    },
  );

  app.get<{ Querystring: { experiment?: string; status?: RunStatus } }>(
    '/runs',
    {
      schema: {
        summary: 'Runs, newest first',
        tags: ['runs'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { experiment: { type: 'string', maxLength: 200 }, status: { type: 'string', enum: [...RUN_STATUSES] } },
        },
      },
    },
    async (req) => ({
      runs: await store.listRuns({
        ...(req.query.experiment !== undefined && { experiment: req.query.experiment }),
        ...(req.query.status !== undefined && { status: req.query.status }),
      }),
      experiments: await store.experiments(),
    }),
  );

  app.get<{ Params: { id: string } }>('/runs/:id', { schema: { summary: 'A run, its epochs and its artifacts', tags: ['runs'], params: idParams, response: { 404: errorBody } } }, async (req) => {
    const run = await find(req.params.id);
    return { run, epochs: await store.epochs(run.id), artifacts: await store.artifacts(run.id) };
  });

  app.get<{ Params: { id: string; name: string } }>(
    '/runs/:id/artifacts/:name',
    {
      schema: {
        summary: "One of a run's artifacts: best.pt, checkpoint.ckpt, train.log, curves.png, report.json",
        tags: ['runs'],
        params: { ...idParams, required: ['id', 'name'], properties: { ...idParams.properties, name: { type: 'string', pattern: '^[\\w.-]{1,100}$' } } },
      },
    },
    async (req, reply) => {
      const run = await find(req.params.id);
      const artifact = await store.artifact(run.id, req.params.name);
      if (artifact === undefined) throw new HttpError(404, 'not_found', `run ${run.id} has no artifact '${req.params.name}'`);
      const ext = /\.[^.]+$/.exec(artifact.name)?.[0] ?? '';
      return reply
        .type(ARTIFACT_TYPES[ext] ?? 'application/octet-stream')
        .header('etag', `"${artifact.sha256}"`)
        .header('content-disposition', `attachment; filename="${run.id.slice(0, 8)}-${artifact.name}"`)
        .send(artifact.data);
    },
  );

  app.post<{ Params: { id: string } }>('/runs/:id/cancel', { schema: { summary: 'Cancel a run: a queued one at once, a running one at its next heartbeat', tags: ['runs'], params: idParams } }, async (req) => {
    const run = await find(req.params.id);
    return { run: await store.cancelRun(run.id) };
  });

  app.delete<{ Params: { id: string } }>('/runs/:id', { schema: { summary: 'Delete a run (cancelling it first); `torchlet runs gc` removes it for good', tags: ['runs'], params: idParams } }, async (req, reply) => {
    const run = await find(req.params.id);
    await store.deleteRun(run.id);
    return reply.code(204).send();
  });

  app.get<{ Params: { id: string } }>(
    '/runs/:id/events',
    { schema: { summary: 'Server-sent events: the run, then each epoch, step progress and status change, until it ends', tags: ['runs'], params: idParams } },
    async (req, reply) => {
      streamEvents(reply, store, await find(req.params.id), pollMs, streams);
    },
  );
};

/** Streams a run's news as SSE, polling the store (workers may be on other machines). */
function streamEvents(reply: FastifyReply, store: RunStore, first: Run, pollMs: number, streams: Set<() => void>): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  let closed = false;
  let counter = 0;
  let lastWrite = Date.now();
  const send = (event: string, data: unknown): void => {
    if (closed) return;
    res.write(`id: ${++counter}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    lastWrite = Date.now();
  };
  const end = (): void => {
    if (closed) return;
    closed = true;
    streams.delete(end);
    clearTimeout(timer);
    res.end();
  };
  streams.add(end);
  res.on('close', end);
  let epochs = 0;
  let status: RunStatus = first.status;
  let progress = JSON.stringify(first.progress);
  send('run', first);
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    if (closed) return;
    try {
      const run = await store.getRun(first.id);
      const records = await store.epochs(first.id);
      for (const record of records.slice(epochs)) send('epoch', record);
      epochs = Math.max(epochs, records.length);
      if (JSON.stringify(run.progress) !== progress && run.progress !== null) send('progress', run.progress);
      progress = JSON.stringify(run.progress);
      if (run.status !== status) send('status', { status: run.status, error: run.error, run });
      status = run.status;
      if (TERMINAL.includes(run.status)) {
        send('end', { status: run.status });
        end();
        return;
      }
      // A comment now and then keeps proxies from closing a quiet stream.
      if (Date.now() - lastWrite > 15_000) {
        res.write(': keep-alive\n\n');
        lastWrite = Date.now();
      }
    } catch (err) {
      send('error', { message: err instanceof Error ? err.message : String(err) });
    }
    if (!closed) timer = setTimeout(() => void tick(), pollMs);
  };
  void tick();
}
